"""Carrying out one reconcile of one DelegatedAWSSecret.

The reconciler is the only stateful piece: it holds the AWS gateway, the Secret
writer, the operator's identity, the External ID index, the credentials it
issued (in memory only, to restore a deleted Secret without a new STS call) and
the refresh scheduler. Each pass: parse, decide (``plan.decide``), act, report.
Reports write status only when it changed and post Events only on transitions.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from delegated_aws import arns, metrics, plan
from delegated_aws.actions import Actions
from delegated_aws.conditions import Verdict
from delegated_aws.errors import OperatorError
from delegated_aws.extid import ExternalIdIndex
from delegated_aws.failures import (
    PERMANENT_RECHECK,
    Failures,
    as_operator_error,
    secret_error,
)
from delegated_aws.instructions import build_instructions
from delegated_aws.messages import Reason as R
from delegated_aws.models import (
    REFRESH_ANNOTATION,
    CredentialsStatus,
    InvalidSpecError,
    Spec,
    Status,
    TrustedPrincipal,
    parse_spec,
    parse_status,
)
from delegated_aws.published import PublishedStatuses
from delegated_aws.reporting import Reporter, StatusWriteFailed
from delegated_aws.schedule import refresh_request_pending, spec_fingerprint
from delegated_aws.scheduler import Scheduler
from delegated_aws.secret_content import secret_shape
from delegated_aws.secrets import SecretConflict, SecretError, SecretWriter
from delegated_aws.settings import Settings
from delegated_aws.state import Key, Memory, Outcome, key_of, owner_of
from delegated_aws.sts import CallerIdentity, StsGateway

__all__ = ["PERMANENT_RECHECK", "REFRESH_ANNOTATION", "Reconciler"]

STATUS_RETRY = timedelta(seconds=10)
# How often a Secret name held by someone else is looked at again.
SECRET_CONFLICT_RECHECK = timedelta(minutes=1)

logger = logging.getLogger("delegated_aws")


class Reconciler(Actions, Failures):
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
        self.published = PublishedStatuses()
        self._bodies: dict[Key, Mapping[str, Any]] = {}
        self._keys_by_uid: dict[str, Key] = {}
        self._memory: dict[Key, Memory] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    # --- entry points -----------------------------------------------------

    async def observe(self, body: Mapping[str, Any]) -> None:
        """A resource was created, changed or listed: reconcile it."""
        key = key_of(body)
        previous = self._bodies.get(key)
        if previous is not None and _uid(previous) != _uid(body):
            # The name now belongs to a new object: nothing known of the old
            # one (credentials, published status, holds) applies to it.
            self.forget(previous)
            previous = None
        echo = self.published.observe(key, previous, body)
        self._bodies[key] = body
        self._keys_by_uid[body["metadata"]["uid"]] = key
        self.external_ids.observe(body)
        if not echo:
            await self.reconcile(key)

    def forget(self, body: Mapping[str, Any]) -> None:
        """A resource is gone; its Secret goes by owner reference (or stays)."""
        key = key_of(body)
        self.external_ids.forget(body)
        self._keys_by_uid.pop(_uid(body), None)
        current = self._bodies.get(key)
        if current is not None and _uid(current) != _uid(body):
            # kopf serves objects by uid, so an old object's deletion can arrive
            # after a new object of the same name was seen: keep the new one.
            return
        self.scheduler.cancel(key)
        for table in (self._bodies, self._memory, self._locks):
            table.pop(key, None)
        self.published.forget(key)
        metrics.resource_gone(*key)

    def standby(self) -> None:
        """Another peer took over: drop timers and what this process believed."""
        for key in list(self._bodies):
            self.scheduler.cancel(key)
        for table in (self._bodies, self._keys_by_uid, self._memory):
            table.clear()
        self.published.clear()
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
            body = self.published.overlay(key, self._bodies.get(key, body))
            outcome = await self._pass(body)
            current = self._bodies.get(key)
            if current is None or _uid(current) != _uid(body):
                # Deleted, or replaced by a new object of the same name, while
                # the pass ran: what it concluded belongs to no object now.
                return
            try:
                published = await self.reporter.publish(
                    body,
                    outcome.status,
                    outcome.verdicts,
                    warnings=outcome.warnings,
                    force=self.published.needs_repair(key),
                )
            except StatusWriteFailed as failed:
                if not failed.gone:
                    logger.warning("%s; trying again shortly.", failed)
                    self.scheduler.at(
                        key, self.clock() + STATUS_RETRY, now=self.clock()
                    )
                return
            self.published.record(key, published)
            self._schedule(key, outcome)

    def _partition_mismatch(self, role_arn: str, status: Status) -> Outcome | None:
        """A role in another partition (aws-cn, aws-us-gov, ...) is unreachable."""
        assert self.identity is not None
        role_partition = arns.parse_role_arn(role_arn).partition
        if role_partition == self.identity.partition:
            return None
        message = (
            f"spec.roleArn is in the {role_partition} partition but the operator's "
            f"identity is in {self.identity.partition}, and AssumeRole cannot cross "
            f"partitions; use an operator running with {role_partition} credentials."
        )
        verdicts = plan.failure_verdicts(
            reason=R.PARTITION_MISMATCH,
            message=message,
            current=status.credentials,
            now=self.clock(),
        )
        return Outcome(status, verdicts)

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
        key = key_of(body)
        mismatch = self._partition_mismatch(spec.role_arn, status)
        if mismatch is not None:
            return mismatch
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
                owner=owner_of(body),
                # A spec change to labels, policy or paths rewrites the Secret now.
                shape=secret_shape(spec, owner=owner_of(body), region=region),
            )
        except SecretError as error:
            failed = self._on_error(key, status, secret_error(error), fingerprint)
            if not plan.validated_for(status.credentials, fingerprint):
                # Nothing was asked of STS: what the role conditions said
                # before (no roleArn yet, another role) no longer holds.
                failed.verdicts.extend(plan.validation_waits_for_secret(secret_name))
            if isinstance(error, SecretConflict):
                # Foreign Secrets are not watched; a look costs one GET, no STS.
                failed.retry_in = SECRET_CONFLICT_RECHECK
            return failed
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
        # Any spec change releases a hold, even one the fingerprint ignores
        # (the Secret's labels, say): the change may be the fix.
        attempt = f"{fingerprint}/{meta.get('generation')}"
        held = self._held(memory, action, attempt, requested=requested)
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
            failed = self._on_error(key, status, as_operator_error(error), fingerprint)
            memory.hold = self._hold(failed, attempt)
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
        """The refresh annotation's value, if it asks for more than was done."""
        annotations = body["metadata"].get("annotations") or {}
        value = str(annotations.get(REFRESH_ANNOTATION) or "")
        if not value or value == memory.refresh_handled:
            return None
        last = status.credentials.last_refresh_time if status.credentials else None
        if refresh_request_pending(
            value,
            last_refresh=plan.parse_time(last) if last else None,
            now=self.clock(),
        ):
            return value
        try:
            plan.parse_time(value)
        except ValueError:
            memory.refresh_handled = value  # Say so once, not on every pass.
            meta = body["metadata"]
            logger.info(
                "%s/%s %s=%r is not a time, so it asks for no refresh; "
                "delegated-aws refresh sets it correctly.",
                meta["namespace"],
                meta["name"],
                REFRESH_ANNOTATION,
                value[:64],
            )
        return None

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


def _uid(body: Mapping[str, Any]) -> str:
    return str(body["metadata"]["uid"])
