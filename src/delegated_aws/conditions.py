"""Standard Kubernetes conditions: building them and merging them into status.

A condition's ``lastTransitionTime`` moves only when its status flips, so a
reconcile that learns nothing new produces an identical condition list and no
status write. ``Ready`` is derived from the others, never set by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from delegated_aws.messages import ConditionType, Reason
from delegated_aws.models import Condition

# The order conditions appear in status, and the order Ready looks at them.
ORDER = (
    ConditionType.ROLE_VALIDATED,
    ConditionType.EXTERNAL_ID_ENFORCED,
    ConditionType.SECRET_SYNCED,
    ConditionType.ACCESS_VERIFIED,
    ConditionType.READY,
)


@dataclass(frozen=True)
class Verdict:
    """What one reconcile concluded about one condition type."""

    type: ConditionType
    status: bool | None
    reason: Reason
    message: str


def merge(
    previous: Sequence[Condition],
    verdicts: Iterable[Verdict],
    *,
    generation: int | None,
    now: datetime,
) -> tuple[Condition, ...]:
    """New conditions from ``verdicts``; untouched types keep their old entry."""
    by_type = {c.type: c for c in previous}
    for verdict in verdicts:
        by_type[verdict.type] = _apply(
            by_type.get(verdict.type), verdict, generation=generation, now=now
        )
    rank = {str(t): i for i, t in enumerate(ORDER)}
    return tuple(sorted(by_type.values(), key=lambda c: rank.get(c.type, 99)))


def _apply(
    old: Condition | None, verdict: Verdict, *, generation: int | None, now: datetime
) -> Condition:
    status = _status_text(verdict.status)
    flipped = old is None or old.status != status
    return Condition(
        type=verdict.type,
        status=status,
        reason=verdict.reason,
        message=verdict.message,
        observed_generation=generation,
        last_transition_time=(
            now.strftime("%Y-%m-%dT%H:%M:%SZ")
            if flipped or old is None
            else old.last_transition_time
        ),
    )


def _status_text(value: bool | None) -> Literal["True", "False", "Unknown"]:
    return "Unknown" if value is None else ("True" if value else "False")


def find(conditions: Sequence[Condition], kind: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == kind), None)


def is_true(conditions: Sequence[Condition], kind: ConditionType) -> bool:
    found = find(conditions, kind)
    return found is not None and found.status == "True"
