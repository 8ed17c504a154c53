"""Carrying out what ``plan.decide`` chose: assume, probe, write, verify.

The STS and Secret side of a pass, mixed into the ``Reconciler``: AssumeRole
with a fallback to what AWS allows, the wrong-External-ID probe, the Secret
write with the status it implies, the optional access checks, and the old
Secret's fate when ``spec.secret.name`` changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from delegated_aws import metrics, plan
from delegated_aws.conditions import Verdict
from delegated_aws.durations import format_duration
from delegated_aws.errors import OperatorError, PermanentError
from delegated_aws.messages import ConditionType as T
from delegated_aws.messages import Reason as R
from delegated_aws.models import AccessCheck, CredentialsStatus, Spec, Status
from delegated_aws.schedule import plan_refresh
from delegated_aws.secret_content import build_secret
from delegated_aws.secrets import SecretWriter
from delegated_aws.settings import Settings
from delegated_aws.state import Key, Memory, Outcome, key_of, owner_of
from delegated_aws.sts import CallerIdentity, IssuedCredentials, StsGateway


class Actions:
    """Assume, probe, write and verify for one resource at a time."""

    settings: Settings
    gateway: StsGateway
    writer: SecretWriter
    identity: CallerIdentity | None
    _memory: dict[Key, Memory]

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
            creds = self._memory[key_of(body)].credentials
            assert creds is not None  # RESTORE is chosen only with credentials held
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
        memory = self._memory.get(key_of(body))
        if memory is None:
            # Deleted while this pass ran: a Secret now would only be orphaned.
            return Outcome(status, [])
        desired = build_secret(spec, creds, owner=owner_of(body), region=region)
        if await self.writer.write(meta["namespace"], desired) == "abandoned":
            # The API says the resource is gone; its deletion event will follow.
            return Outcome(status, [])
        memory.credentials = creds
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
            # Microseconds: refresh requests are compared against it.
            last_refresh_time=plan.format_precise(creds.issued_at),
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
            verdicts.append(plan.synced_verdict(creds.expiration, note=refresh.note))
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
                body["metadata"]["namespace"], previous, owner=owner_of(body)
            )


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


def _granted(creds: IssuedCredentials) -> str:
    lifetime = creds.expiration - creds.issued_at
    return format_duration(timedelta(seconds=round(lifetime.total_seconds())))
