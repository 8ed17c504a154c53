"""When to rewrite a Secret: refresh planning from the expiry STS returned.

This module owns the timing rules. A refresh is planned from the
``Expiration`` in the AssumeRole answer, never from local now plus the
requested duration, because STS may grant less than was asked (F08). It also
owns the freshness test used after a restart and the fingerprint of the spec
fields that credentials were issued for. Pure: datetimes in, plans out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from delegated_aws.durations import format_duration
from delegated_aws.plan import parse_time

_FINGERPRINT_LENGTH = 16


@dataclass(frozen=True)
class RefreshPlan:
    """When to rewrite the Secret and how far ahead of expiry that is.

    ``margin_met`` is false when the lifetime is too short to keep the
    minimum margin; ``note`` then says why, in one sentence for a condition.
    """

    refresh_at: datetime
    before: timedelta
    margin_met: bool
    note: str | None = None


def plan_refresh(
    *,
    issued_at: datetime,
    expiration: datetime,
    refresh_before: timedelta | None,
    min_margin: timedelta,
) -> RefreshPlan:
    """Plan the next refresh of credentials valid from ``issued_at``.

    ``before`` is ``refresh_before`` or a third of the lifetime, and never less
    than ``min_margin`` (the SDKs' 15-minute refresh window plus kubelet
    propagation). When that would fall at or before the issue time, the plan
    falls back to half the lifetime and says so. Both datetimes must be aware.
    """
    _require_aware(issued_at, expiration)
    lifetime = expiration - issued_at
    if lifetime <= timedelta(0):
        return _refresh_now(issued_at, expiration)

    before = max(refresh_before or lifetime / 3, min_margin)
    if expiration - before > issued_at:
        return RefreshPlan(expiration - before, before, margin_met=True)

    # Refreshing at half the lifetime keeps the Secret valid with the widest
    # margin the lifetime allows, without a rewrite loop at issue time.
    half = lifetime / 2
    return RefreshPlan(
        refresh_at=issued_at + half,
        before=half,
        margin_met=half >= min_margin,
        note=_fallback_note(
            lifetime, refresh_before, before=before, min_margin=min_margin
        ),
    )


def is_fresh(*, expiration: datetime, now: datetime, min_margin: timedelta) -> bool:
    """Whether credentials expiring at ``expiration`` can stay in the Secret.

    Used after a restart: the current Secret is kept while more than
    ``min_margin`` of its lifetime remains.
    """
    _require_aware(expiration, now)
    return expiration - now > min_margin


def spec_fingerprint(
    *,
    role_arn: str,
    external_id: str,
    region: str,
    session_name: str,
    duration: timedelta,
) -> str:
    """A short, stable digest of the spec fields credentials were issued for."""
    fields = [role_arn, external_id, region, session_name, duration.total_seconds()]
    encoded = json.dumps(fields).encode()
    return hashlib.sha256(encoded).hexdigest()[:_FINGERPRINT_LENGTH]


def _refresh_now(issued_at: datetime, expiration: datetime) -> RefreshPlan:
    note = (
        f"STS returned credentials expiring at {expiration.isoformat()}, not "
        f"after the operator's clock time {issued_at.isoformat()}, so they are "
        "refreshed now; check the clock of the operator's node."
    )
    return RefreshPlan(issued_at, timedelta(0), margin_met=False, note=note)


def _fallback_note(
    lifetime: timedelta,
    refresh_before: timedelta | None,
    *,
    before: timedelta,
    min_margin: timedelta,
) -> str:
    granted = format_duration(lifetime)
    half = format_duration(lifetime / 2)
    if refresh_before is not None and refresh_before >= lifetime:
        return (
            f"refresh.before ({format_duration(refresh_before)}) is not shorter "
            f"than the {granted} lifetime STS granted, so the Secret is "
            f"rewritten at half the lifetime, {half} before expiry."
        )
    return (
        f"The {granted} lifetime STS granted is too short to rewrite the Secret "
        f"{format_duration(before)} before expiry (at least "
        f"{format_duration(min_margin)} is needed), so it is rewritten {half} "
        "before expiry; raise spec.sessionDuration or the role's maximum."
    )


def _require_aware(*moments: datetime) -> None:
    # Naive datetimes would compare against local time; expiries are UTC.
    if any(moment.utcoffset() is None for moment in moments):
        raise ValueError("refresh planning needs timezone-aware datetimes")


# How far ahead of the operator's clock the requester's clock may run.
REQUEST_CLOCK_SKEW = timedelta(minutes=5)


def refresh_request_pending(
    requested: str, *, last_refresh: datetime | None, now: datetime
) -> bool:
    """Whether the refresh annotation's value asks for a refresh now.

    The value is the time of the request (RFC 3339; without a zone, UTC). A
    request at or before the last refresh was served, perhaps by an earlier
    operator process, so a restart does not refresh again. A value that is
    not a time, or a time further ahead than clocks plausibly disagree, asks
    for nothing (yet): it could never be served, and every restart would
    refresh again.
    """
    try:
        moment = parse_time(requested)
    except ValueError:
        return False
    # The CLI and lastRefreshTime both keep microseconds, so a request just
    # after a refresh is not lost.
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if aware > now + REQUEST_CLOCK_SKEW:
        return False
    return last_refresh is None or aware > last_refresh
