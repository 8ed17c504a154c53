"""Turning failures into conditions, retry times and holds.

Mixed into the ``Reconciler``: temporary errors come back after a jittered
backoff; permanent ones are re-checked slowly, since customers fix trust
policies without touching the resource; AccessDenied right after a change is
given time for IAM to propagate; and a failed call is held, not repeated, until
its retry is due.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from delegated_aws import metrics, plan
from delegated_aws.errors import (
    AssumeRoleDeniedError,
    OperatorError,
    OperatorIdentityError,
    PermanentError,
    TemporaryError,
    backoff_delay,
)
from delegated_aws.messages import Reason as R
from delegated_aws.models import InvalidSpecError, Status
from delegated_aws.reporting import Reporter
from delegated_aws.secrets import SecretError, SecretRetry
from delegated_aws.settings import Settings
from delegated_aws.state import Hold, Key, Memory, Outcome

# A role that refuses us, or accepts any External ID, is checked again this often:
# customers fix trust policies without touching the resource.
PERMANENT_RECHECK = timedelta(minutes=10)
_TIMER_SLACK = timedelta(seconds=1)


class Failures:
    """What a failed pass reports, and when it is tried again."""

    settings: Settings
    reporter: Reporter
    clock: Callable[[], datetime]
    identity_error: OperatorError | None
    _memory: dict[Key, Memory]

    def _held(
        self,
        memory: Memory,
        action: plan.Action,
        fingerprint: str,
        *,
        requested: str | None,
    ) -> Hold | None:
        """The last failure, while its retry is not due and nothing changed.

        Without this, the status write of a failure (or any other event) would
        trigger the failed STS call again at once, ignoring the backoff.
        """
        hold = memory.hold
        if action not in (plan.Action.VALIDATE, plan.Action.REFRESH):
            return None
        if hold is None or hold.fingerprint != fingerprint or requested is not None:
            return None
        # NB: timers may fire a little early; a second's slack avoids a re-arm.
        return hold if self.clock() + _TIMER_SLACK < hold.until else None

    def _hold(self, failed: Outcome, fingerprint: str) -> Hold | None:
        if failed.retry_in is None:
            return None
        return Hold(fingerprint, self.clock() + failed.retry_in, failed.verdicts)

    def _on_error(
        self, key: Key, status: Status, error: OperatorError, fingerprint: str
    ) -> Outcome:
        memory = self._memory.setdefault(key, Memory())
        metrics.reconcile_failed(error.reason)
        if isinstance(error, OperatorIdentityError):
            self.reporter.operator_identity_failed(error)
        if error.reason == R.ASSUME_ROLE_DENIED:
            return self._denied(
                status, _with_checklist(error, status), memory, fingerprint
            )
        if isinstance(error, TemporaryError):
            return self._failed(status, error, retry=self._backoff(memory))
        return self._failed(status, error, retry=PERMANENT_RECHECK)

    def _denied(
        self, status: Status, error: OperatorError, memory: Memory, fingerprint: str
    ) -> Outcome:
        """AccessDenied right after a change may be IAM still propagating."""
        now = self.clock()
        first = memory.first_denied.setdefault(fingerprint, now)
        if now - first < self.settings.iam_propagation_grace:
            waiting = OperatorError(
                R.WAITING_FOR_IAM_PROPAGATION,
                "AssumeRole was denied; waiting for IAM propagation (up to "
                f"{int(self.settings.iam_propagation_grace.total_seconds())}s "
                "after the change) before reporting AssumeRoleDenied.",
            )
            return self._failed(status, waiting, retry=self._backoff(memory))
        return self._failed(status, error, retry=PERMANENT_RECHECK)

    def _failed(
        self, status: Status, error: OperatorError, *, retry: timedelta
    ) -> Outcome:
        verdicts = plan.failure_verdicts(
            reason=error.reason,
            message=error.message,
            current=status.credentials,
            now=self.clock(),
        )
        return Outcome(status, verdicts, retry_in=retry)

    def _backoff(self, memory: Memory) -> timedelta:
        memory.attempts += 1
        return timedelta(seconds=backoff_delay(memory.attempts))

    def _invalid(
        self, old: Status, body: Mapping[str, Any], error: InvalidSpecError
    ) -> Outcome:
        external_id = old.external_id or str(uuid.uuid4())
        status = old.model_copy(update={"external_id": external_id})
        message = f"{error}; correct {error.field} and apply again."
        verdicts = plan.failure_verdicts(
            reason=R.INVALID_SPEC,
            message=message,
            current=old.credentials,
            now=self.clock(),
        )
        return Outcome(status, verdicts)

    def _identity_missing(self, old: Status, external_id: str) -> Outcome:
        error = self.identity_error or OperatorIdentityError(
            "The operator has not established its own AWS identity yet; this is "
            "about the operator, not your role."
        )
        status = old.model_copy(update={"external_id": external_id})
        verdicts = plan.failure_verdicts(
            reason=error.reason,
            message=error.message,
            current=old.credentials,
            now=self.clock(),
        )
        return Outcome(status, verdicts)


def as_operator_error(error: OperatorError | SecretError) -> OperatorError:
    return secret_error(error) if isinstance(error, SecretError) else error


def _with_checklist(error: OperatorError, status: Status) -> OperatorError:
    """AssumeRoleDenied naming the principal and External ID to compare against."""
    if not isinstance(error, AssumeRoleDeniedError) or error.operator_policy:
        return error
    trusted, external_id = status.trusted_principal, status.external_id
    if trusted is None or external_id is None:
        return error
    message = plan.denied_message(
        trust_principal=trusted.trust_principal,
        external_id=external_id,
        operator_policy=False,
    )
    return AssumeRoleDeniedError(
        message, operator_policy=False, aws_code=error.aws_code
    )


def secret_error(error: SecretError) -> OperatorError:
    """Secret failures in the reconciler's terms: retry, or wait for a fix."""
    if isinstance(error, SecretRetry):
        return TemporaryError(R(error.reason), error.message, delay=error.delay)
    return PermanentError(R(error.reason), error.message)
