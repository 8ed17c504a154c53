"""Durations as Kubernetes users write them: ``1h``, ``90m``, ``1h30m``, ``45s``."""

from __future__ import annotations

import re
from datetime import timedelta

# Up to five digits a part: more is never a sensible lifetime, and stays within
# what the API server's CEL duration() can represent.
DURATION_PATTERN = r"^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$"
_PARTS = re.compile(
    r"^(?:(?P<h>[0-9]{1,5})h)?(?:(?P<m>[0-9]{1,5})m)?(?:(?P<s>[0-9]{1,5})s)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parse ``XhYmZs`` (any part optional, at least one present)."""
    match = _PARTS.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration such as 1h, 45m or 1h30m")
    hours, minutes, seconds = (int(match[k] or 0) for k in "hms")
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest ``XhYmZs`` form; ``0s`` for zero."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(
        f"{amount}{unit}"
        for amount, unit in ((hours, "h"), (minutes, "m"), (seconds, "s"))
        if amount
    )
    return text or "0s"
