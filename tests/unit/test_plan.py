"""The pure policy layer as a table: what to do, and what each outcome says.

Every row is one situation (spec, earlier status, the Secret, the clock) and
the exact action or conditions expected; ids read as the situation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from delegated_aws import plan
from delegated_aws.conditions import Verdict
from delegated_aws.messages import ConditionType as T
from delegated_aws.messages import Reason as R
from delegated_aws.models import Condition, CredentialsStatus
from delegated_aws.plan import Action

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::111122223333:role/reader"
FINGERPRINT = "fp-1"


def _credentials(
    *, expires_in: timedelta, refresh_in: timedelta, fingerprint: str = FINGERPRINT
) -> CredentialsStatus:
    return CredentialsStatus(
        expiration=plan.format_time(NOW + expires_in),
        refresh_at=plan.format_time(NOW + refresh_in),
        last_refresh_time=plan.format_time(NOW - timedelta(minutes=20)),
        session_duration="1h",
        assumed_role_arn="arn:aws:sts::111122223333:assumed-role/reader/ns.name",
        role_arn=ROLE,
        secret_name="reader",
        spec_fingerprint=fingerprint,
    )


def _condition(kind: T, status: str, reason: R) -> Condition:
    return Condition(
        type=kind,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        message="earlier",
        last_transition_time="2030-01-01T00:00:00Z",
    )


VALIDATED = (_condition(T.ROLE_VALIDATED, "True", R.ROLE_ASSUMED),)
DENIED = (_condition(T.ROLE_VALIDATED, "False", R.ASSUME_ROLE_DENIED),)
CURRENT = _credentials(
    expires_in=timedelta(minutes=40), refresh_in=timedelta(minutes=20)
)
DUE = _credentials(expires_in=timedelta(minutes=17), refresh_in=-timedelta(minutes=1))
STALE_SPEC = _credentials(
    expires_in=timedelta(minutes=40),
    refresh_in=timedelta(minutes=20),
    fingerprint="fp-0",
)


def _seen(
    credentials: CredentialsStatus | None = CURRENT,
    conditions: tuple[Condition, ...] = VALIDATED,
    *,
    present: bool = True,
    intact: bool = True,
    cached: bool = True,
    requested: bool = False,
) -> plan.Observed:
    return plan.Observed(
        fingerprint=FINGERPRINT,
        credentials=credentials,
        conditions=conditions,
        secret_present=present,
        secret_intact=intact,
        cached_expiration=(
            plan.parse_time(credentials.expiration) if cached and credentials else None
        ),
        refresh_requested=requested,
    )


@pytest.mark.parametrize(
    ("role_arn", "seen", "expected"),
    [
        pytest.param(None, _seen(None, ()), Action.AWAIT_ROLE, id="no-role-arn-yet"),
        pytest.param(
            None, _seen(), Action.AWAIT_ROLE, id="role-arn-removed-after-success"
        ),
        pytest.param(ROLE, _seen(None, ()), Action.VALIDATE, id="new-role-arn"),
        pytest.param(ROLE, _seen(STALE_SPEC), Action.VALIDATE, id="spec-changed"),
        pytest.param(
            ROLE, _seen(CURRENT, DENIED), Action.VALIDATE, id="denied-before-retried"
        ),
        pytest.param(
            ROLE, _seen(CURRENT, ()), Action.VALIDATE, id="never-validated-conditions"
        ),
        pytest.param(ROLE, _seen(DUE), Action.REFRESH, id="refresh-time-reached"),
        pytest.param(
            ROLE, _seen(requested=True), Action.REFRESH, id="refresh-annotation"
        ),
        pytest.param(ROLE, _seen(), Action.KEEP, id="all-in-place"),
        pytest.param(
            ROLE,
            _seen(present=False, intact=False),
            Action.RESTORE,
            id="secret-deleted-credentials-in-memory",
        ),
        pytest.param(
            ROLE,
            _seen(intact=False),
            Action.RESTORE,
            id="secret-edited-credentials-in-memory",
        ),
        pytest.param(
            ROLE,
            _seen(present=False, intact=False, cached=False),
            Action.REFRESH,
            id="secret-deleted-after-restart",
        ),
        pytest.param(
            ROLE,
            _seen(DUE, present=False, intact=False),
            Action.REFRESH,
            id="secret-deleted-and-refresh-due",
        ),
    ],
)
def test_decide(role_arn: str | None, seen: plan.Observed, expected: Action) -> None:
    assert plan.decide(role_arn=role_arn, seen=seen, now=NOW) is expected


# --- failure verdicts ------------------------------------------------------

VALID = _credentials(expires_in=timedelta(hours=2), refresh_in=timedelta(hours=1))
EXPIRED = _credentials(
    expires_in=-timedelta(minutes=5), refresh_in=-timedelta(minutes=1)
)
KEEPING = "keeping"
GONE = "expired"


def _shape(verdicts: list[Verdict]) -> list[tuple[str, bool | None, str]]:
    return [(str(v.type), v.status, str(v.reason)) for v in verdicts]


def _row(
    reason: R, current: CredentialsStatus | None, *expected: tuple[T, bool, R]
) -> tuple[R, CredentialsStatus | None, list[tuple[str, bool, str]]]:
    return reason, current, [(str(t), s, str(r)) for t, s, r in expected]


@pytest.mark.parametrize(
    ("reason", "current", "expected"),
    [
        # No Secret yet: the failing condition and Ready both say why.
        pytest.param(
            *_row(
                R.ASSUME_ROLE_DENIED,
                None,
                (T.ROLE_VALIDATED, False, R.ASSUME_ROLE_DENIED),
                (T.READY, False, R.ASSUME_ROLE_DENIED),
            ),
            id="denied-without-secret",
        ),
        pytest.param(
            *_row(
                R.WAITING_FOR_IAM_PROPAGATION,
                None,
                (T.ROLE_VALIDATED, False, R.WAITING_FOR_IAM_PROPAGATION),
                (T.READY, False, R.WAITING_FOR_IAM_PROPAGATION),
            ),
            id="iam-propagating-without-secret",
        ),
        pytest.param(
            *_row(
                R.REGION_DISABLED,
                None,
                (T.ROLE_VALIDATED, False, R.REGION_DISABLED),
                (T.READY, False, R.REGION_DISABLED),
            ),
            id="region-disabled-without-secret",
        ),
        pytest.param(
            *_row(
                R.INVALID_SPEC,
                None,
                (T.ROLE_VALIDATED, False, R.INVALID_SPEC),
                (T.READY, False, R.INVALID_SPEC),
            ),
            id="invalid-spec-without-secret",
        ),
        pytest.param(
            *_row(
                R.EXTERNAL_ID_NOT_ENFORCED,
                None,
                (T.EXTERNAL_ID_ENFORCED, False, R.EXTERNAL_ID_NOT_ENFORCED),
                (T.READY, False, R.EXTERNAL_ID_NOT_ENFORCED),
            ),
            id="external-id-not-enforced-without-secret",
        ),
        pytest.param(
            *_row(
                R.EXTERNAL_ID_CONFLICT,
                None,
                (T.ROLE_VALIDATED, False, R.EXTERNAL_ID_CONFLICT),
                (T.READY, False, R.EXTERNAL_ID_CONFLICT),
            ),
            id="external-id-conflict-without-secret",
        ),
        pytest.param(
            *_row(
                R.SECRET_NAME_CONFLICT,
                None,
                (T.SECRET_SYNCED, False, R.SECRET_NAME_CONFLICT),
                (T.READY, False, R.SECRET_NAME_CONFLICT),
            ),
            id="secret-name-conflict-without-secret",
        ),
        # Not about the role: no condition of its own, Ready names it.
        pytest.param(
            *_row(
                R.OPERATOR_CREDENTIALS_INVALID,
                None,
                (T.READY, False, R.OPERATOR_CREDENTIALS_INVALID),
            ),
            id="operator-identity-without-secret",
        ),
        pytest.param(
            *_row(R.THROTTLED, None, (T.READY, False, R.THROTTLED)),
            id="throttled-without-secret",
        ),
        # A still-valid Secret keeps Ready true; the cause stays visible.
        pytest.param(
            *_row(
                R.ASSUME_ROLE_DENIED,
                VALID,
                (T.ROLE_VALIDATED, False, R.ASSUME_ROLE_DENIED),
                (T.SECRET_SYNCED, True, R.REFRESH_FAILING),
                (T.READY, True, R.REFRESH_FAILING),
            ),
            id="denied-on-refresh-secret-still-valid",
        ),
        pytest.param(
            *_row(
                R.OPERATOR_CREDENTIALS_INVALID,
                VALID,
                (T.SECRET_SYNCED, True, R.REFRESH_FAILING),
                (T.READY, True, R.OPERATOR_CREDENTIALS_INVALID),
            ),
            id="operator-identity-secret-still-valid",
        ),
        pytest.param(
            *_row(
                R.THROTTLED,
                VALID,
                (T.SECRET_SYNCED, True, R.REFRESH_FAILING),
                (T.READY, True, R.THROTTLED),
            ),
            id="throttled-secret-still-valid",
        ),
        pytest.param(
            *_row(
                R.AWS_UNAVAILABLE,
                VALID,
                (T.SECRET_SYNCED, True, R.REFRESH_FAILING),
                (T.READY, True, R.AWS_UNAVAILABLE),
            ),
            id="5xx-secret-still-valid",
        ),
        pytest.param(
            *_row(
                R.SECRET_NAME_CONFLICT,
                VALID,
                (T.SECRET_SYNCED, False, R.SECRET_NAME_CONFLICT),
                (T.READY, True, R.REFRESH_FAILING),
            ),
            id="secret-renamed-onto-foreign-secret",
        ),
        # Expired credentials: Ready false, SecretSynced says so.
        pytest.param(
            *_row(
                R.ASSUME_ROLE_DENIED,
                EXPIRED,
                (T.ROLE_VALIDATED, False, R.ASSUME_ROLE_DENIED),
                (T.SECRET_SYNCED, False, R.CREDENTIALS_EXPIRED),
                (T.READY, False, R.CREDENTIALS_EXPIRED),
            ),
            id="denied-and-secret-expired",
        ),
        pytest.param(
            *_row(
                R.OPERATOR_CREDENTIALS_INVALID,
                EXPIRED,
                (T.SECRET_SYNCED, False, R.CREDENTIALS_EXPIRED),
                (T.READY, False, R.OPERATOR_CREDENTIALS_INVALID),
            ),
            id="operator-identity-and-secret-expired",
        ),
    ],
)
def test_failure_verdicts(
    reason: R,
    current: CredentialsStatus | None,
    expected: list[tuple[str, bool, str]],
) -> None:
    verdicts = plan.failure_verdicts(
        reason=reason, message="What happened.", current=current, now=NOW
    )

    assert _shape(verdicts) == expected
    assert all(v.message.startswith("What happened.") for v in verdicts)


def test_failure_with_valid_secret_says_how_long_it_lasts() -> None:
    verdicts = plan.failure_verdicts(
        reason=R.THROTTLED, message="AWS throttled.", current=VALID, now=NOW
    )

    assert verdicts[-1].message == (
        "AWS throttled. The Secret keeps the current credentials, valid until "
        "2030-01-01T14:00:00Z (2h left)."
    )


def test_failure_with_expired_secret_says_when_it_expired() -> None:
    verdicts = plan.failure_verdicts(
        reason=R.ASSUME_ROLE_DENIED, message="Denied.", current=EXPIRED, now=NOW
    )

    assert verdicts[-1].message == (
        "Denied. The credentials in the Secret expired at 2030-01-01T11:55:00Z."
    )


# --- durations ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "role_session", "granted", "reason"),
    [
        pytest.param(timedelta(hours=1), False, timedelta(hours=1), None, id="1h"),
        pytest.param(timedelta(hours=12), False, timedelta(hours=12), None, id="12h"),
        pytest.param(
            timedelta(minutes=15),
            True,
            timedelta(minutes=15),
            None,
            id="role-session-15m-unchanged",
        ),
        pytest.param(
            timedelta(hours=1), True, timedelta(hours=1), None, id="role-session-1h"
        ),
        pytest.param(
            timedelta(hours=1, seconds=1),
            True,
            timedelta(hours=1),
            R.ROLE_CHAINING_LIMIT,
            id="role-session-just-over-1h",
        ),
        pytest.param(
            timedelta(hours=12),
            True,
            timedelta(hours=1),
            R.ROLE_CHAINING_LIMIT,
            id="role-session-12h",
        ),
    ],
)
def test_granted_request(
    requested: timedelta, role_session: bool, granted: timedelta, reason: R | None
) -> None:
    asked, note = plan.granted_request(requested, role_session=role_session)

    assert asked == granted
    assert (note.reason if note else None) == reason
    if note is not None:
        # A grant below the request is never silent and never a failure.
        assert note.type is T.ROLE_VALIDATED and note.status is True


def test_role_chaining_message_explains_the_ceiling() -> None:
    assert plan.role_chaining_verdict(timedelta(hours=12)).message == (
        "Requested 12h but the operator's own identity is a role session, and AWS "
        "caps sessions started from one at 1h; granted 1h, refreshed accordingly. "
        "Run the operator with non-role credentials to get longer sessions."
    )


def test_role_maximum_message_names_requested_and_granted() -> None:
    verdict = plan.role_maximum_verdict(timedelta(hours=12), timedelta(hours=1))

    assert (verdict.type, verdict.status, verdict.reason) == (
        T.ROLE_VALIDATED,
        True,
        R.SESSION_DURATION_EXCEEDS_ROLE_MAXIMUM,
    )
    assert verdict.message.startswith(
        "Requested 12h exceeds the role's maximum session duration; granted 1h."
    )


# --- ready verdicts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("assumed", "probed", "types"),
    [
        pytest.param(
            True,
            True,
            [T.ROLE_VALIDATED, T.EXTERNAL_ID_ENFORCED, T.SECRET_SYNCED, T.READY],
            id="validated",
        ),
        # A refresh does not probe: an earlier ExternalIdNotEnforced must stand.
        pytest.param(
            True, False, [T.ROLE_VALIDATED, T.SECRET_SYNCED, T.READY], id="refreshed"
        ),
        # A restore from memory calls nothing: the role's reasons must stand.
        pytest.param(False, False, [T.SECRET_SYNCED, T.READY], id="restored"),
    ],
)
def test_ready_restates_only_what_was_proved(
    assumed: bool, probed: bool, types: list[T]
) -> None:
    verdicts = plan.ready_verdicts(
        role_arn=ROLE,
        expiration=NOW + timedelta(hours=1),
        refresh_at=NOW + timedelta(minutes=40),
        assumed=assumed,
        probed=probed,
    )

    assert [v.type for v in verdicts] == types
    assert all(v.status is True for v in verdicts)


@pytest.mark.parametrize(
    ("operator_policy", "expected"),
    [
        pytest.param(
            False,
            "AWS denied sts:AssumeRole: check that the role in spec.roleArn exists, "
            "that its trust policy allows the principal "
            "arn:aws:iam::444455556666:root, that it requires sts:ExternalId "
            "ext-123 (status.externalId), and that the operator's own IAM policy "
            "allows sts:AssumeRole on the role.",
            id="customer-side-checklist",
        ),
        pytest.param(
            True,
            "AWS denied sts:AssumeRole because the operator's own permissions "
            "(identity policy, permissions boundary or an SCP) do not allow it on "
            "this role: grant sts:AssumeRole on the role to the operator's "
            "principal.",
            id="operator-own-policy",
        ),
    ],
)
def test_denied_message(operator_policy: bool, expected: str) -> None:
    assert (
        plan.denied_message(
            trust_principal="arn:aws:iam::444455556666:root",
            external_id="ext-123",
            operator_policy=operator_policy,
        )
        == expected
    )
