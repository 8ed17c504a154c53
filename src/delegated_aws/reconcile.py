"""Carrying out one reconcile of one DelegatedAWSSecret.

The reconciler is the only stateful piece: it holds the AWS gateway, the Secret
writer, the operator's identity, the External ID index, the credentials it
issued (in memory only, to restore a deleted Secret without a new STS call) and
the refresh scheduler. Each pass: parse, decide (``plan.decide``), act, report.
Reports write status only when it changed and post Events only on transitions.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from delegated_aws import arns, metrics, plan
from delegated_aws.conditions import Verdict
from delegated_aws.durations import format_duration
from delegated_aws.errors import (
    AssumeRoleDeniedError,
    OperatorError,
    OperatorIdentityError,
    PermanentError,
    TemporaryError,
    backoff_delay,
)
from delegated_aws.extid import ExternalIdIndex
from delegated_aws.instructions import build_instructions
from delegated_aws.messages import ConditionType as T
from delegated_aws.messages import Reason as R
from delegated_aws.models import (
    AccessCheck,
    CredentialsStatus,
    InvalidSpecError,
    Spec,
    Status,
    TrustedPrincipal,
    dump,
    parse_spec,
    parse_status,
)
from delegated_aws.reporting import Reporter
from delegated_aws.schedule import plan_refresh, spec_fingerprint
from delegated_aws.scheduler import Scheduler
from delegated_aws.secret_content import Owner, build_secret, secret_shape
from delegated_aws.secrets import SecretError, SecretRetry, SecretWriter
from delegated_aws.settings import Settings
from delegated_aws.sts import CallerIdentity, IssuedCredentials, StsGateway

REFRESH_ANNOTATION = "delegatedaws.io/refresh-requested"
# A role that refuses us, or accepts any External ID, is checked again this often:
# customers fix trust policies without touching the resource.
PERMANENT_RECHECK = timedelta(minutes=10)
_TIMER_SLACK = timedelta(seconds=1)

Key = tuple[str, str]


@dataclass
class Memory:
    """Per-resource state that lives only as long as the process."""

    credentials: IssuedCredentials | None = None
    attempts: int = 0
    first_denied: dict[str, datetime] = field(default_factory=dict)
    refresh_handled: str | None = None
    hold: Hold | None = None


@dataclass(frozen=True)
class Hold:
    """A failed STS pass: until ``until``, events repeat it instead of calling."""

    fingerprint: str
    until: datetime
    verdicts: list[Verdict]


@dataclass
class Outcome:
    """What a pass concluded: the status to publish and when to come back."""

    status: Status
    verdicts: list[Verdict]
    retry_in: timedelta | None = None
    warnings: list[tuple[R, str]] = field(default_factory=list)


class Reconciler:
    """Reconciles resources; safe to call concurrently for different keys."""

    def __init__(
        self,
        *,
        settings: Settings,
        gateway: StsGateway,
        writer: SecretWriter,
        reporter: Reporter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.writer = writer
        self.reporter = reporter
        self.clock = clock
        self.identity: CallerIdentity | None = None
        self.identity_error: OperatorError | None = None
        self.external_ids = ExternalIdIndex()
        self.scheduler = Scheduler(self._fire)
        # Whether refresh timers may act; False while a kopf peer is active.
        self.may_act: Callable[[], bool] = lambda: True
        self._bodies: dict[Key, Mapping[str, Any]] = {}
        self._keys_by_uid: dict[str, Key] = {}
        self._published: dict[Key, dict[str, Any]] = {}
        self._memory: dict[Key, Memory] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    # --- entry points -----------------------------------------------------

    async def observe(self, body: Mapping[str, Any]) -> None:
        """A resource was created, changed or listed: reconcile it."""
        key = _key(body)
        echo = _echoes_status(self._bodies.get(key), body, self._published.get(key))
        self._bodies[key] = body
        self._keys_by_uid[body["metadata"]["uid"]] = key
        self.external_ids.observe(body)
        if not echo:
            await self.reconcile(key)

    def forget(self, body: Mapping[str, Any]) -> None:
        """A resource is gone; its Secret goes by owner reference (or stays)."""
        key = _key(body)
        self.scheduler.cancel(key)
        self.external_ids.forget(body)
        self._keys_by_uid.pop(body["metadata"]["uid"], None)
        for table in (self._bodies, self._memory, self._locks, self._published):
            table.pop(key, None)
        metrics.resource_gone(*key)

    def standby(self) -> None:
        """Another peer took over: drop timers and what this process believed."""
        for key in list(self._bodies):
            self.scheduler.cancel(key)
        for table in (self._bodies, self._keys_by_uid, self._memory, self._published):
            table.clear()
        self.external_ids = ExternalIdIndex()

    async def secret_changed(self, owner_uid: str) -> None:
        """A managed Secret was edited or deleted: put it back if needed."""
        key = self._keys_by_uid.get(owner_uid)
        if key is not None:
            await self.reconcile(key)

    async def reconcile(self, key: Key) -> None:
        body = self._bodies.get(key)
        if body is None:
            return
        async with self._locks.setdefault(key, asyncio.Lock()):
            body = self._bodies.get(key, body)
            # Status is written by this process only, so what it last published
            # is newer than the status of any body still in flight.
            if key in self._published:
                body = {**body, "status": self._published[key]}
            outcome = await self._pass(body)
            self._published[key] = await self.reporter.publish(
                body, outcome.status, outcome.verdicts, warnings=outcome.warnings
            )
            self._schedule(key, outcome)

    async def reconcile_all(self) -> None:
        """Reconcile every known resource, e.g. once the identity is known."""
        await asyncio.gather(*(self.reconcile(key) for key in list(self._bodies)))

    async def _fire(self, key: Key) -> None:
        if self.may_act():
            await self.reconcile(key)

    # --- one pass ---------------------------------------------------------

    async def _pass(self, body: Mapping[str, Any]) -> Outcome:
        old = parse_status(body.get("status"))
        meta = body["metadata"]
        try:
            spec = parse_spec(body.get("spec"))
        except InvalidSpecError as error:
            return self._invalid(old, body, error)
        external_id, problem = self._external_id(spec, old, body)
        if problem is not None:
            # The generated id still goes to status: the message points there.
            return Outcome(old.model_copy(update={"external_id": external_id}), problem)
        if self.identity is None and self.identity_error is None:
            # Still asking STS who we are; everything is reconciled once known.
            return Outcome(old.model_copy(update={"external_id": external_id}), [])
        if self.identity is None:
            return self._identity_missing(old, external_id)
        region = spec.region or self.settings.default_region
        trusted = self._trusted()
        instructions = build_instructions(
            spec=spec,
            namespace=meta["namespace"],
            name=meta["name"],
            external_id=external_id,
            trusted=trusted,
            region=region,
        )
        status = old.model_copy(
            update={
                "external_id": external_id,
                "trusted_principal": trusted,
                "instructions": instructions,
            }
        )
        if spec.role_arn is None:
            return Outcome(
                status, plan.awaiting_role_verdicts(meta["namespace"], meta["name"])
            )
        return await self._with_role(body, spec, status, region=region)

    async def _with_role(
        self, body: Mapping[str, Any], spec: Spec, status: Status, *, region: str
    ) -> Outcome:
        assert spec.role_arn is not None and status.external_id is not None
        meta = body["metadata"]
        key = _key(body)
        memory = self._memory.setdefault(key, Memory())
        session = arns.session_name(
            meta["namespace"], meta["name"], spec.role_session_name
        )
        fingerprint = spec_fingerprint(
            role_arn=spec.role_arn,
            external_id=status.external_id,
            region=region,
            session_name=session,
            duration=spec.session_duration,
        )
        secret_name = spec.secret.name or meta["name"]
        try:
            secret = await self.writer.read(
                meta["namespace"],
                secret_name,
                owner=_owner(body),
                # A spec change to labels, policy or paths rewrites the Secret now.
                shape=secret_shape(spec, owner=_owner(body), region=region),
            )
        except SecretError as error:
            return self._on_error(key, status, _secret_error(error), fingerprint)
        requested = self._refresh_requested(body, memory, status)
        seen = plan.Observed(
            fingerprint=fingerprint,
            credentials=status.credentials,
            conditions=status.conditions,
            secret_present=secret is not None,
            secret_intact=secret is not None
            and not secret.edited
            and status.credentials is not None
            and secret.expiration == plan.parse_time(status.credentials.expiration),
            # Status keeps whole seconds; STS may answer with a fraction.
            cached_expiration=(
                memory.credentials.expiration.replace(microsecond=0)
                if memory.credentials
                else None
            ),
            refresh_requested=requested is not None,
        )
        action = plan.decide(role_arn=spec.role_arn, seen=seen, now=self.clock())
        held = self._held(memory, action, fingerprint, requested=requested)
        if held is not None:
            return Outcome(status, held.verdicts, retry_in=held.until - self.clock())
        try:
            outcome = await self._act(
                action,
                body,
                spec,
                status,
                region=region,
                session=session,
                fingerprint=fingerprint,
                secret_name=secret_name,
            )
        except (OperatorError, SecretError) as error:
            failed = self._on_error(key, status, _as_operator_error(error), fingerprint)
            memory.hold = self._hold(failed, fingerprint)
            return failed
        memory.hold = None
        if action in (plan.Action.VALIDATE, plan.Action.REFRESH):
            # An STS call just worked, so the operator's own identity does.
            self.reporter.operator_identity_ok()
        _record(meta, action, outcome.status.credentials)
        memory.attempts = 0
        memory.first_denied.pop(fingerprint, None)
        if requested is not None:
            memory.refresh_handled = requested
        return outcome

    async def _act(
        self,
        action: plan.Action,
        body: Mapping[str, Any],
        spec: Spec,
        status: Status,
        **how: Any,
    ) -> Outcome:
        if action is plan.Action.KEEP:
            return Outcome(status, [], retry_in=None)
        if action is plan.Action.RESTORE:
            creds = self._memory[_key(body)].credentials
            assert creds is not None
            # Nothing was assumed or probed: the role's conditions stand.
            return await self._write(
                body, spec, status, creds, [], assumed=False, probed=False, **how
            )
        validating = action is plan.Action.VALIDATE
        creds, notes = await self._assume(
            spec, status, region=how["region"], session=how["session"]
        )
        if validating:
            notes += await self._probe(
                spec, region=how["region"], session=how["session"]
            )
        outcome = await self._write(
            body, spec, status, creds, notes, probed=validating, **how
        )
        if validating:
            await self._verify_access(outcome, spec, creds, region=how["region"])
        return outcome

    async def _probe(self, spec: Spec, *, region: str, session: str) -> list[Verdict]:
        """The confused-deputy check: a wrong External ID must be denied."""
        assert spec.role_arn is not None
        enforced = await self.gateway.external_id_enforced(
            role_arn=spec.role_arn, session_name=session, region=region
        )
        if enforced:
            return []
        if self.settings.require_external_id_enforcement:
            raise PermanentError(R.EXTERNAL_ID_NOT_ENFORCED, _NOT_ENFORCED)
        return [
            Verdict(
                T.EXTERNAL_ID_ENFORCED,
                False,
                R.EXTERNAL_ID_NOT_ENFORCED,
                _NOT_ENFORCED_ALLOWED,
            )
        ]

    async def _verify_access(
        self, outcome: Outcome, spec: Spec, creds: IssuedCredentials, *, region: str
    ) -> None:
        """Optional proof that the listed resources answer the new credentials."""
        if not spec.access_checks.enabled:
            outcome.verdicts.append(
                Verdict(
                    T.ACCESS_VERIFIED,
                    None,
                    R.ACCESS_CHECKS_DISABLED,
                    "Access checks are off; set spec.accessChecks.enabled to verify "
                    "the listed resources.",
                )
            )
            outcome.status = outcome.status.model_copy(update={"access_checks": ()})
            return
        checks = await self.gateway.check_access(
            creds, resources=spec.resources, region=region
        )
        outcome.status = outcome.status.model_copy(
            update={"access_checks": tuple(checks)}
        )
        outcome.verdicts.append(_access_verdict(checks))

    async def _assume(
        self, spec: Spec, status: Status, *, region: str, session: str
    ) -> tuple[IssuedCredentials, list[Verdict]]:
        """AssumeRole, falling back to what AWS allows and saying so."""
        assert self.identity is not None and spec.role_arn is not None
        duration, note = plan.granted_request(
            spec.session_duration, role_session=self.identity.is_role_session
        )
        notes = [note] if note else []
        assert status.external_id is not None
        external_id, role_arn = status.external_id, spec.role_arn
        try:
            creds = await metrics.timed_assume_role(
                self.gateway.assume_role(
                    role_arn=role_arn,
                    external_id=external_id,
                    session_name=session,
                    duration=duration,
                    region=region,
                )
            )
            return creds, notes
        except PermanentError as error:
            fallback = _fallback_for(error, duration)
            if fallback is None:
                raise
        creds = await metrics.timed_assume_role(
            self.gateway.assume_role(
                role_arn=role_arn,
                external_id=external_id,
                session_name=session,
                duration=fallback[0],
                region=region,
            )
        )
        return creds, [fallback[1]]

    async def _write(
        self,
        body: Mapping[str, Any],
        spec: Spec,
        status: Status,
        creds: IssuedCredentials,
        notes: list[Verdict],
        *,
        assumed: bool = True,
        probed: bool = True,
        region: str,
        session: str,
        fingerprint: str,
        secret_name: str,
    ) -> Outcome:
        meta = body["metadata"]
        desired = build_secret(spec, creds, owner=_owner(body), region=region)
        await self.writer.write(meta["namespace"], desired)
        self._memory[_key(body)].credentials = creds
        await self._release_renamed(body, spec, status, secret_name)
        refresh = plan_refresh(
            issued_at=creds.issued_at,
            expiration=creds.expiration,
            refresh_before=spec.refresh.before,
            min_margin=self.settings.min_refresh_margin,
        )
        assert spec.role_arn is not None
        credentials = CredentialsStatus(
            expiration=plan.format_time(creds.expiration),
            refresh_at=plan.format_time(refresh.refresh_at),
            last_refresh_time=plan.format_time(creds.issued_at),
            session_duration=_granted(creds),
            assumed_role_arn=creds.assumed_role_arn,
            role_arn=spec.role_arn,
            secret_name=secret_name,
            spec_fingerprint=fingerprint,
        )
        verdicts = plan.ready_verdicts(
            role_arn=spec.role_arn,
            expiration=creds.expiration,
            refresh_at=refresh.refresh_at,
            assumed=assumed,
            probed=probed,
        )
        verdicts.extend(notes)
        if refresh.note:
            # The refresh time differs from what the spec asked: say why.
            verdicts.append(_synced_with_note(creds.expiration, refresh.note))
        warnings = [(n.reason, n.message) for n in notes]
        if not refresh.margin_met and refresh.note:
            warnings.append((R.REFRESH_FAILING, refresh.note))
        new = status.model_copy(update={"credentials": credentials})
        return Outcome(new, verdicts, warnings=warnings)

    async def _release_renamed(
        self, body: Mapping[str, Any], spec: Spec, status: Status, secret_name: str
    ) -> None:
        """spec.secret.name changed: the old Secret follows the deletion policy."""
        previous = status.credentials.secret_name if status.credentials else None
        if previous is None or previous == secret_name:
            return
        if spec.secret.deletion_policy == "Delete":
            await self.writer.delete_if_owned(
                body["metadata"]["namespace"], previous, owner=_owner(body)
            )

    # --- failures ---------------------------------------------------------

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

    # --- helpers ----------------------------------------------------------

    def _external_id(
        self, spec: Spec, old: Status, body: Mapping[str, Any]
    ) -> tuple[str, list[Verdict] | None]:
        generated = old.external_id or str(uuid.uuid4())
        if spec.external_id is None:
            return generated, None
        if not self.settings.allow_external_id_override:
            return generated, self._refuse(
                R.EXTERNAL_ID_OVERRIDE_FORBIDDEN,
                "This operator refuses spec.externalId; remove it to use the "
                "generated External ID in status.",
                old,
            )
        holder = self.external_ids.holder_other_than(spec.external_id, body)
        if holder is not None:
            return generated, self._refuse(
                R.EXTERNAL_ID_CONFLICT,
                f"spec.externalId is already used by {holder}, which keeps it; "
                "choose another value.",
                old,
            )
        return spec.external_id, None

    def _refuse(self, reason: R, message: str, old: Status) -> list[Verdict]:
        return plan.failure_verdicts(
            reason=reason, message=message, current=old.credentials, now=self.clock()
        )

    def _trusted(self) -> TrustedPrincipal:
        assert self.identity is not None
        identity = self.identity
        principal = arns.iam_principal_of(identity.arn)
        trust = (
            principal
            if self.settings.trust_principal == "principal"
            else arns.account_root_arn(identity.partition, identity.account_id)
        )
        return TrustedPrincipal(
            account_id=identity.account_id,
            arn=principal,
            partition=identity.partition,
            trust_principal=trust,
        )

    def _refresh_requested(
        self, body: Mapping[str, Any], memory: Memory, status: Status
    ) -> str | None:
        """The refresh annotation's value, if it asks for more than was done.

        A timestamp at or before the last refresh was served already, perhaps
        by an earlier operator process: a restart must not refresh again.
        """
        annotations = body["metadata"].get("annotations") or {}
        value = str(annotations.get(REFRESH_ANNOTATION) or "")
        if not value or value == memory.refresh_handled:
            return None
        last = status.credentials.last_refresh_time if status.credentials else None
        if last is not None and _served(value, last=plan.parse_time(last)):
            return None
        return value

    def _schedule(self, key: Key, outcome: Outcome) -> None:
        when = self.clock() + outcome.retry_in if outcome.retry_in else None
        if outcome.status.credentials is not None:
            refresh_at = plan.parse_time(outcome.status.credentials.refresh_at)
            # A refresh time already past is what failed: the retry's backoff
            # decides, or a failing refresh would be retried in a hot loop.
            if when is None or refresh_at > self.clock():
                when = min(when, refresh_at) if when else refresh_at
        if when is None:
            self.scheduler.cancel(key)
        else:
            self.scheduler.at(key, when, now=self.clock())


_NOT_ENFORCED_ALLOWED = (
    "AssumeRole succeeded with a wrong External ID, so the role's trust policy "
    "does not enforce sts:ExternalId; credentials are issued only because this "
    "operator allows it. Add the StringEquals condition from "
    "status.instructions.trustPolicy."
)
_NOT_ENFORCED = (
    "AssumeRole succeeded with a wrong External ID, so the role's trust policy "
    "does not enforce sts:ExternalId; add the StringEquals condition from "
    "status.instructions.trustPolicy. No credentials are issued until then."
)


def _fallback_for(
    error: OperatorError, duration: timedelta
) -> tuple[timedelta, Verdict] | None:
    """AWS refused the duration: one hour is always within a role's maximum."""
    hour = plan.ROLE_CHAINING_MAX
    if duration <= hour:
        return None
    if error.reason == R.SESSION_DURATION_EXCEEDS_ROLE_MAXIMUM:
        return hour, plan.role_maximum_verdict(duration, hour)
    if error.reason == R.ROLE_CHAINING_LIMIT:
        return hour, plan.role_chaining_verdict(duration)
    return None


def _as_operator_error(error: OperatorError | SecretError) -> OperatorError:
    return _secret_error(error) if isinstance(error, SecretError) else error


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


def _access_verdict(checks: list[AccessCheck]) -> Verdict:
    failed = [c for c in checks if c.result == "Failed"]
    if not failed:
        return Verdict(
            T.ACCESS_VERIFIED,
            True,
            R.ACCESS_VERIFIED,
            f"All {len(checks)} access checks passed.",
        )
    first = failed[0]
    return Verdict(
        T.ACCESS_VERIFIED,
        False,
        R.ACCESS_CHECK_FAILED,
        f"{len(failed)} of {len(checks)} access checks failed; first: "
        f"{first.action} on {first.resource}: {first.reason}",
    )


def _record(
    meta: Mapping[str, Any],
    action: plan.Action,
    credentials: CredentialsStatus | None,
) -> None:
    """Export the expiry of the credentials in force, and count writes."""
    if credentials is None:
        return
    metrics.credentials_written(
        meta["namespace"],
        meta["name"],
        expiration=plan.parse_time(credentials.expiration).timestamp(),
        action=None if action is plan.Action.KEEP else action.value,
    )


def _secret_error(error: SecretError) -> OperatorError:
    """Secret failures in the reconciler's terms: retry, or wait for a fix."""
    if isinstance(error, SecretRetry):
        return TemporaryError(R(error.reason), error.message, delay=error.delay)
    return PermanentError(R(error.reason), error.message)


def _synced_with_note(expiration: datetime, note: str) -> Verdict:
    return Verdict(
        T.SECRET_SYNCED,
        True,
        R.SECRET_WRITTEN,
        f"The Secret holds credentials valid until {plan.format_time(expiration)}; "
        f"{note[0].lower()}{note[1:]}",
    )


def _served(requested: str, *, last: datetime) -> bool:
    """Whether a refresh requested at ``requested`` happened at ``last``."""
    try:
        moment = plan.parse_time(requested)
    except ValueError:
        return False
    # A date without a zone is read as UTC, as the CLI writes it.
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware <= last


def _owner(body: Mapping[str, Any]) -> Owner:
    return Owner(name=body["metadata"]["name"], uid=body["metadata"]["uid"])


def _granted(creds: IssuedCredentials) -> str:
    lifetime = creds.expiration - creds.issued_at
    return format_duration(timedelta(seconds=round(lifetime.total_seconds())))


def _key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return meta["namespace"], meta["name"]


_INPUTS = ("generation", "labels", "annotations", "deletionTimestamp")


def _echoes_status(
    before: Mapping[str, Any] | None,
    body: Mapping[str, Any],
    published: Mapping[str, Any] | None,
) -> bool:
    """Whether a new version of the resource only carries our own status write.

    Such an event brings nothing to decide on: reconciling it would re-read the
    Secret for nothing. A re-list (same resourceVersion) is still reconciled.
    """
    if before is None or published is None:
        return False
    meta, old = body["metadata"], before["metadata"]
    if meta.get("resourceVersion") == old.get("resourceVersion"):
        return False
    if any(meta.get(name) != old.get(name) for name in _INPUTS):
        return False
    return dump(parse_status(body.get("status"))) == published
