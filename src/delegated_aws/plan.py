"""Pure decisions: given what is known about one resource, what to do next.

No I/O here. ``decide`` takes the parsed spec, the status an earlier run wrote,
what was observed of the Secret and the clock, and names one action. The
reconciler carries it out; the verdict helpers phrase each outcome as the
conditions a person reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from delegated_aws.conditions import Verdict, is_true
from delegated_aws.durations import format_duration
from delegated_aws.messages import ConditionType as T
from delegated_aws.messages import Reason as R
from delegated_aws.models import Condition, CredentialsStatus

# Sessions a role session may start are capped at one hour by AWS.
ROLE_CHAINING_MAX = timedelta(hours=1)


class Action(StrEnum):
    AWAIT_ROLE = "AwaitRole"
    """Publish instructions; nothing to assume yet."""
    VALIDATE = "Validate"
    """Assume, probe a wrong External ID, then write the Secret."""
    REFRESH = "Refresh"
    """Assume and rewrite the Secret; the role was validated before."""
    RESTORE = "Restore"
    """Rewrite the Secret from credentials still held in memory."""
    KEEP = "Keep"
    """Everything is in place; come back at the refresh time."""


@dataclass(frozen=True)
class Observed:
    """What the reconciler saw before deciding."""

    fingerprint: str
    credentials: CredentialsStatus | None
    conditions: tuple[Condition, ...]
    secret_present: bool
    secret_intact: bool
    cached_expiration: datetime | None
    refresh_requested: bool


def decide(*, role_arn: str | None, seen: Observed, now: datetime) -> Action:
    """The single next action for one resource."""
    if role_arn is None:
        return Action.AWAIT_ROLE
    current = seen.credentials
    if current is None or not _validated(seen, current):
        return Action.VALIDATE
    if seen.refresh_requested or now >= parse_time(current.refresh_at):
        return Action.REFRESH
    if seen.secret_present and seen.secret_intact:
        return Action.KEEP
    # The Secret was deleted or edited: put back what is still in memory, or
    # fetch new credentials when the operator restarted since they were issued.
    expiration = parse_time(current.expiration)
    if seen.cached_expiration == expiration:
        return Action.RESTORE
    return Action.REFRESH


def _validated(seen: Observed, current: CredentialsStatus) -> bool:
    # NB: ExternalIdEnforced is not required here: credentials exist for this
    # fingerprint only if the probe passed, or the operator allows unenforced
    # roles.
    return current.spec_fingerprint == seen.fingerprint and is_true(
        seen.conditions, T.ROLE_VALIDATED
    )


def validated_for(current: CredentialsStatus | None, fingerprint: str) -> bool:
    """Whether the credentials in status were issued for this spec."""
    return current is not None and current.spec_fingerprint == fingerprint


def validation_waits_for_secret(secret_name: str) -> list[Verdict]:
    """Role conditions while the Secret, checked first, cannot be written."""
    message = (
        f"Not validated yet: Secret {secret_name} cannot be written (see "
        "SecretSynced), and no role is assumed until it can."
    )
    return [
        Verdict(T.ROLE_VALIDATED, None, R.PENDING, message),
        Verdict(T.EXTERNAL_ID_ENFORCED, None, R.PENDING, message),
    ]


def granted_request(
    requested: timedelta, *, role_session: bool
) -> tuple[timedelta, Verdict | None]:
    """The duration to ask for, and why it is less than requested, if it is."""
    if role_session and requested > ROLE_CHAINING_MAX:
        return ROLE_CHAINING_MAX, role_chaining_verdict(requested)
    return requested, None


def role_chaining_verdict(requested: timedelta) -> Verdict:
    return Verdict(
        T.ROLE_VALIDATED,
        True,
        R.ROLE_CHAINING_LIMIT,
        f"Requested {format_duration(requested)} but the operator's own identity "
        "is a role session, and AWS caps sessions started from one at 1h; granted "
        "1h, refreshed accordingly. Run the operator with non-role credentials to "
        "get longer sessions.",
    )


def role_maximum_verdict(requested: timedelta, granted: timedelta) -> Verdict:
    return Verdict(
        T.ROLE_VALIDATED,
        True,
        R.SESSION_DURATION_EXCEEDS_ROLE_MAXIMUM,
        f"Requested {format_duration(requested)} exceeds the role's maximum "
        f"session duration; granted {format_duration(granted)}. Raise the role's "
        "maximum session duration (12h recommended) or lower "
        "spec.sessionDuration.",
    )


def awaiting_role_verdicts(namespace: str, name: str) -> list[Verdict]:
    message = (
        "No spec.roleArn yet; have the customer create the role as "
        "status.instructions describes (delegated-aws instructions "
        f"{name} -n {namespace}), then set spec.roleArn."
    )
    return [
        Verdict(T.ROLE_VALIDATED, False, R.AWAITING_ROLE_ARN, message),
        Verdict(T.READY, False, R.AWAITING_ROLE_ARN, message),
    ]


def ready_verdicts(
    *,
    role_arn: str,
    expiration: datetime,
    refresh_at: datetime,
    assumed: bool = True,
    probed: bool = True,
) -> list[Verdict]:
    """Conditions after the Secret was written.

    Only what this pass proved is restated: a refresh did not probe the
    External ID, and a restore from memory did not assume the role, so the
    earlier verdicts on those stand (and keep their reasons).
    """
    verdicts = []
    if assumed:
        verdicts.append(
            Verdict(T.ROLE_VALIDATED, True, R.ROLE_ASSUMED, f"Assumed {role_arn}.")
        )
    if probed:
        verdicts.append(
            Verdict(
                T.EXTERNAL_ID_ENFORCED,
                True,
                R.EXTERNAL_ID_ENFORCED,
                "A wrong External ID was denied, so the trust policy enforces it.",
            )
        )
    return [
        *verdicts,
        synced_verdict(expiration),
        Verdict(
            T.READY,
            True,
            R.READY,
            f"Credentials valid until {format_time(expiration)}; "
            f"next refresh at {format_time(refresh_at)}.",
        ),
    ]


def synced_verdict(expiration: datetime, *, note: str | None = None) -> Verdict:
    """SecretSynced after a write; ``note`` says why refresh timing differs."""
    held = f"The Secret holds credentials valid until {format_time(expiration)}"
    text = f"{held}; {note[0].lower()}{note[1:]}" if note else f"{held}."
    return Verdict(T.SECRET_SYNCED, True, R.SECRET_WRITTEN, text)


def failure_verdicts(
    *,
    reason: R,
    message: str,
    current: CredentialsStatus | None,
    now: datetime,
) -> list[Verdict]:
    """Conditions for a failure; a still-valid Secret keeps Ready true.

    A failure about the role shows on its own condition and Ready says
    ``RefreshFailing``; one that is not (AWS busy, the operator's own
    identity) has no condition of its own, so Ready carries its reason.
    """
    kind = _failed_condition(reason)
    own = [] if kind is T.READY else [Verdict(kind, False, reason, message)]
    if current is None:
        return [*own, Verdict(T.READY, False, reason, message)]
    expiration = parse_time(current.expiration)
    if expiration <= now:
        expired = (
            f"{message} The credentials in the Secret expired at "
            f"{format_time(expiration)}."
        )
        headline = reason if kind is T.READY else R.CREDENTIALS_EXPIRED
        return [
            *own,
            *_unless(
                kind,
                T.SECRET_SYNCED,
                status=False,
                reason=R.CREDENTIALS_EXPIRED,
                message=expired,
            ),
            Verdict(T.READY, False, headline, expired),
        ]
    left = format_duration(expiration - now)
    keeping = (
        f"{message} The Secret keeps the current credentials, valid until "
        f"{format_time(expiration)} ({left} left)."
    )
    headline = reason if kind is T.READY else R.REFRESH_FAILING
    return [
        *own,
        *_unless(
            kind,
            T.SECRET_SYNCED,
            status=True,
            reason=R.REFRESH_FAILING,
            message=keeping,
        ),
        Verdict(T.READY, True, headline, keeping),
    ]


def _unless(
    failed: T, kind: T, *, status: bool, reason: R, message: str
) -> list[Verdict]:
    # The failed condition already speaks for itself; do not overwrite it.
    return [] if failed is kind else [Verdict(kind, status, reason, message)]


def denied_message(
    *, trust_principal: str, external_id: str, operator_policy: bool
) -> str:
    """The AssumeRoleDenied checklist, with the values to compare against."""
    if operator_policy:
        return (
            "AWS denied sts:AssumeRole because the operator's own permissions "
            "(identity policy, permissions boundary or an SCP) do not allow it on "
            "this role: grant sts:AssumeRole on the role to the operator's "
            "principal."
        )
    return (
        "AWS denied sts:AssumeRole: check that the role in spec.roleArn exists, "
        f"that its trust policy allows the principal {trust_principal}, that it "
        f"requires sts:ExternalId {external_id} (status.externalId), and that the "
        "operator's own IAM policy allows sts:AssumeRole on the role."
    )


# Reasons that say nothing about the customer's role.
_NOT_ABOUT_THE_ROLE = {
    R.OPERATOR_CREDENTIALS_INVALID,
    R.THROTTLED,
    R.AWS_UNAVAILABLE,
    R.SECRET_WRITE_RETRYING,
}


def _failed_condition(reason: R) -> T:
    if reason in _NOT_ABOUT_THE_ROLE:
        return T.READY
    if reason == R.EXTERNAL_ID_NOT_ENFORCED:
        return T.EXTERNAL_ID_ENFORCED
    if reason in (R.SECRET_NAME_CONFLICT, R.SECRET_WRITE_FORBIDDEN, R.SECRET_REJECTED):
        return T.SECRET_SYNCED
    if reason == R.ACCESS_CHECK_FAILED:
        return T.ACCESS_VERIFIED
    return T.ROLE_VALIDATED


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_precise(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
