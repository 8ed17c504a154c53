"""Refresh planning from the expiry STS returned (F08, F09)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from delegated_aws.schedule import is_fresh, plan_refresh, spec_fingerprint

ISSUED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MARGIN = timedelta(minutes=17)


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


# lifetime STS granted, refresh.before, min margin -> before, margin met, note?
PLANS = [
    pytest.param(minutes(60), None, MARGIN, minutes(20), True, False, id="1h-third"),
    pytest.param(minutes(720), None, MARGIN, minutes(240), True, False, id="12h-third"),
    pytest.param(minutes(45), None, MARGIN, minutes(17), True, False, id="45m-margin"),
    pytest.param(minutes(51), None, MARGIN, minutes(17), True, False, id="51m-third"),
    pytest.param(
        minutes(15), None, MARGIN, minutes(7.5), False, True, id="15m-too-short"
    ),
    pytest.param(
        minutes(34), None, MARGIN, minutes(17), True, False, id="34m-exactly-twice"
    ),
    pytest.param(
        minutes(30), None, MARGIN, minutes(17), True, False, id="30m-margin-fits"
    ),
    pytest.param(
        minutes(18), None, MARGIN, minutes(17), True, False, id="18m-just-fits"
    ),
    pytest.param(
        minutes(17), None, MARGIN, minutes(8.5), False, True, id="17m-equals-margin"
    ),
    pytest.param(
        minutes(60), minutes(30), MARGIN, minutes(30), True, False, id="before-30m"
    ),
    pytest.param(
        minutes(60), minutes(5), MARGIN, minutes(17), True, False, id="before-raised"
    ),
    pytest.param(
        minutes(60), minutes(120), MARGIN, minutes(30), True, True, id="before-2h"
    ),
    pytest.param(
        minutes(60), minutes(60), MARGIN, minutes(30), True, True, id="before-equal"
    ),
    pytest.param(
        minutes(15), minutes(60), MARGIN, minutes(7.5), False, True, id="both-long"
    ),
    # STS granted 1 h although 12 h was asked (role chaining, role maximum):
    # the plan follows the 1 h, so a third of it, not of 12 h.
    pytest.param(
        minutes(60), None, MARGIN, minutes(20), True, False, id="sts-granted-less"
    ),
    pytest.param(
        seconds(30), None, seconds(1), seconds(10), True, False, id="tiny-test-third"
    ),
    pytest.param(
        seconds(3), None, seconds(4), seconds(1.5), False, True, id="tiny-test-half"
    ),
    pytest.param(
        seconds(6), seconds(1), seconds(2), seconds(2), True, False, id="tiny-margin"
    ),
]


@pytest.mark.parametrize(
    ("lifetime", "refresh_before", "min_margin", "before", "margin_met", "noted"),
    PLANS,
)
def test_plan_refresh(
    lifetime: timedelta,
    refresh_before: timedelta | None,
    min_margin: timedelta,
    before: timedelta,
    margin_met: bool,
    noted: bool,
) -> None:
    expiration = ISSUED + lifetime
    plan = plan_refresh(
        issued_at=ISSUED,
        expiration=expiration,
        refresh_before=refresh_before,
        min_margin=min_margin,
    )
    assert plan.before == before
    assert plan.refresh_at == expiration - before
    assert ISSUED < plan.refresh_at < expiration
    assert plan.margin_met is margin_met
    assert (plan.note is not None) is noted


def test_plan_uses_the_expiration_sts_returned() -> None:
    # Issued a little after the request; the lifetime counts from issue.
    plan = plan_refresh(
        issued_at=ISSUED,
        expiration=datetime(2025, 3, 1, 13, 0, 30, tzinfo=UTC),
        refresh_before=None,
        min_margin=MARGIN,
    )
    assert plan.refresh_at == datetime(2025, 3, 1, 12, 40, 20, tzinfo=UTC)


def test_plan_keeps_the_timezone_of_the_expiry() -> None:
    plan = plan_refresh(
        issued_at=ISSUED,
        expiration=ISSUED + minutes(60),
        refresh_before=None,
        min_margin=MARGIN,
    )
    assert plan.refresh_at.utcoffset() == timedelta(0)


def test_note_names_refresh_before_when_it_is_too_long() -> None:
    plan = plan_refresh(
        issued_at=ISSUED,
        expiration=ISSUED + minutes(60),
        refresh_before=minutes(120),
        min_margin=MARGIN,
    )
    assert plan.note == (
        "refresh.before (2h) is not shorter than the 1h lifetime STS granted, "
        "so the Secret is rewritten at half the lifetime, 30m before expiry."
    )


def test_note_names_the_margin_when_the_lifetime_is_too_short() -> None:
    plan = plan_refresh(
        issued_at=ISSUED,
        expiration=ISSUED + minutes(15),
        refresh_before=None,
        min_margin=MARGIN,
    )
    assert plan.note == (
        "The 15m lifetime STS granted is too short to rewrite the Secret 17m "
        "before expiry (at least 17m is needed), so it is rewritten 7m30s "
        "before expiry; raise spec.sessionDuration or the role's maximum."
    )


@pytest.mark.parametrize(
    "lifetime",
    [pytest.param(timedelta(0), id="zero"), pytest.param(minutes(-5), id="negative")],
)
def test_expiry_not_after_issue_refreshes_now(lifetime: timedelta) -> None:
    plan = plan_refresh(
        issued_at=ISSUED,
        expiration=ISSUED + lifetime,
        refresh_before=None,
        min_margin=MARGIN,
    )
    assert plan.refresh_at == ISSUED
    assert not plan.margin_met
    assert plan.note is not None
    assert "clock" in plan.note


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_refresh(
            issued_at=ISSUED.replace(tzinfo=None),
            expiration=ISSUED + minutes(60),
            refresh_before=None,
            min_margin=MARGIN,
        )


@pytest.mark.parametrize(
    ("left", "fresh"),
    [
        pytest.param(minutes(60), True, id="an-hour-left"),
        pytest.param(minutes(17) + seconds(1), True, id="just-above-margin"),
        pytest.param(minutes(17), False, id="exactly-margin-is-due"),
        pytest.param(minutes(5), False, id="inside-sdk-window"),
        pytest.param(minutes(-1), False, id="expired"),
    ],
)
def test_is_fresh(left: timedelta, fresh: bool) -> None:
    now = ISSUED
    assert is_fresh(expiration=now + left, now=now, min_margin=MARGIN) is fresh


BASE = {
    "role_arn": "arn:aws:iam::123456789012:role/reader",
    "external_id": "5f0c1a6e-0000-4000-8000-000000000000",
    "region": "eu-west-1",
    "session_name": "prod.ingest",
    "duration": timedelta(hours=1),
}


def test_spec_fingerprint_is_short_stable_hex() -> None:
    first = spec_fingerprint(**BASE)  # type: ignore[arg-type]
    assert first == spec_fingerprint(**BASE)  # type: ignore[arg-type]
    assert len(first) == 16
    assert int(first, 16) >= 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("role_arn", "arn:aws:iam::123456789012:role/other", id="role"),
        pytest.param("external_id", "another-id", id="external-id"),
        pytest.param("region", "us-east-1", id="region"),
        pytest.param("session_name", "prod.other", id="session-name"),
        pytest.param("duration", timedelta(hours=2), id="duration"),
    ],
)
def test_spec_fingerprint_changes_with_each_field(field: str, value: object) -> None:
    changed = {**BASE, field: value}
    assert spec_fingerprint(**changed) != spec_fingerprint(**BASE)  # type: ignore[arg-type]


def test_default_margin_covers_the_sdk_window_and_kubelet_propagation() -> None:
    """F09: SDKs refresh 15 min before expiry; kubelet needs a minute or two."""
    from delegated_aws.settings import Settings

    margin = Settings().min_refresh_margin
    assert margin >= timedelta(minutes=15) + timedelta(minutes=2)
