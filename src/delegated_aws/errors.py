"""The operator's error tree and the delay before a temporary error is retried.

Every failure that leaves the AWS seam (``sts``) is one of these; no raw
botocore exception reaches a handler. The tree::

    OperatorError                       reason + one-sentence message
    ├── TemporaryError                  retry after ``delay`` seconds
    │   └── OperatorIdentityError       the operator's OWN credentials fail
    └── PermanentError                  wait for a spec (or role) change
        ├── AssumeRoleDeniedError               trust policy, id or own policy
        ├── SessionDurationExceedsRoleMaximum   retry shorter, or tell the user
        └── RoleChainingLimitError              retry at 1 h, or tell the user

An ``OperatorIdentityError`` is reported once at operator level and on each
resource as "the operator's identity, not your role". The two duration errors
carry the duration that was refused, so the caller can fall back to a shorter
session and say so instead of failing blindly.

Messages are one sentence (what happened, what to do next) and never hold
credential text, request ids or signatures.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from delegated_aws.messages import Reason

DEFAULT_DELAY = 15.0


class OperatorError(Exception):
    """A failure the handlers report as a condition reason and message."""

    def __init__(
        self, reason: Reason, message: str, *, aws_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        # The AWS error code, for logs and metrics; never shown as the message.
        self.aws_code = aws_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason.value}: {self.message})"


class TemporaryError(OperatorError):
    """Worth retrying unchanged after ``delay`` seconds (throttling, 5xx, network)."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        delay: float = DEFAULT_DELAY,
        aws_code: str | None = None,
    ) -> None:
        super().__init__(reason, message, aws_code=aws_code)
        self.delay = delay


class OperatorIdentityError(TemporaryError):
    """The operator's own AWS credentials are missing, invalid or mis-signed."""

    def __init__(
        self, message: str, *, delay: float = 60.0, aws_code: str | None = None
    ) -> None:
        super().__init__(
            Reason.OPERATOR_CREDENTIALS_INVALID,
            message,
            delay=delay,
            aws_code=aws_code,
        )


class PermanentError(OperatorError):
    """Retrying unchanged cannot help; wait for the spec or the role to change."""


class AssumeRoleDeniedError(PermanentError):
    """AWS refused AssumeRole; ``operator_policy`` when AWS blamed our own policy.

    Otherwise the customer's side is the suspect (role missing, trust policy
    naming someone else, another External ID), and the caller, who knows the
    principal and the id, can phrase the checklist with their values.
    """

    def __init__(
        self, message: str, *, operator_policy: bool, aws_code: str | None
    ) -> None:
        super().__init__(Reason.ASSUME_ROLE_DENIED, message, aws_code=aws_code)
        self.operator_policy = operator_policy


class SessionDurationExceedsRoleMaximum(PermanentError):
    """The requested session is longer than the role's MaxSessionDuration."""

    def __init__(
        self, message: str, *, requested: timedelta | None, aws_code: str | None
    ) -> None:
        super().__init__(
            Reason.SESSION_DURATION_EXCEEDS_ROLE_MAXIMUM, message, aws_code=aws_code
        )
        self.requested = requested


class RoleChainingLimitError(PermanentError):
    """The operator is itself a role session, so AWS caps the session at 1 h."""

    LIMIT = timedelta(hours=1)

    def __init__(
        self, message: str, *, requested: timedelta | None, aws_code: str | None
    ) -> None:
        super().__init__(Reason.ROLE_CHAINING_LIMIT, message, aws_code=aws_code)
        self.requested = requested


def backoff_delay(
    attempt: int,
    *,
    base: float = 2.0,
    cap: float = 300.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Capped exponential backoff with full jitter: uniform in
    ``[0, min(cap, base * 2**attempt))``, so many resources failing at once
    (an STS outage) do not come back in lockstep. Kopf does the retrying;
    this only computes the delay.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, not {attempt}")

    # NB: the exponent is bounded so a long outage cannot overflow the float.
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    return rng() * ceiling
