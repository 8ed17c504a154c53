"""Operator settings, from ``DELEGATED_AWS_*`` environment variables or flags.

One place for every knob; the README's configuration reference mirrors this
class. Flags of ``delegated-aws run`` override the environment.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from delegated_aws.models import Duration


class Settings(BaseSettings):
    """How this operator instance behaves."""

    model_config = SettingsConfigDict(env_prefix="DELEGATED_AWS_", frozen=True)

    namespaces: tuple[str, ...] = Field(
        default=(),
        description="Namespaces to watch; empty means the whole cluster.",
    )
    label_selector: str | None = Field(
        default=None,
        description="Serve only resources matching this selector (sharding).",
    )
    default_region: str = Field(
        default="us-east-1",
        description="Region used when spec.region is empty.",
    )
    trust_principal: Literal["account", "principal"] = Field(
        default="account",
        description=(
            "Whom the generated trust policy trusts: the operator's account root "
            "or its exact principal ARN."
        ),
    )
    allow_external_id_override: bool = Field(
        default=True,
        description="Whether spec.externalId may replace the generated id.",
    )
    require_external_id_enforcement: bool = Field(
        default=True,
        description=(
            "Refuse to issue credentials when the role accepts a wrong External ID."
        ),
    )
    min_refresh_margin: Duration = Field(
        default=timedelta(minutes=17),
        description=(
            "Least time before expiry at which the Secret is rewritten: the SDKs' "
            "15-minute refresh window plus kubelet propagation."
        ),
    )
    iam_propagation_grace: Duration = Field(
        default=timedelta(minutes=2),
        description="How long AccessDenied after a spec change is retried.",
    )
    sts_concurrency: int = Field(
        default=8, ge=1, description="Most STS calls in flight at once."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log line format."
    )
    metrics_port: int = Field(
        default=8080,
        ge=0,
        description="Port of /metrics (Prometheus) and /readyz; 0 turns both off.",
    )
    health_port: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Port of kopf's liveness endpoint /healthz; default metrics_port + 1, "
            "off when metrics_port is 0 unless set; 0 turns it off."
        ),
    )
    watch_timeout: Duration = Field(
        default=timedelta(minutes=5),
        description=(
            "Server-side timeout of each watch request; kopf reconnects after it, "
            "so a silently dead connection is replaced within this bound."
        ),
    )
    deaf_after: Duration = Field(
        default=timedelta(minutes=3),
        description=(
            "Liveness fails when no watch on the API server has worked for this "
            "long: the operator is deaf and a restart is the cure."
        ),
    )
    peering: str | None = Field(
        default=None,
        description=(
            "kopf peering object name; instances sharing it keep exactly one "
            "active. Unset: standalone."
        ),
    )
    peering_priority: int | None = Field(
        default=None,
        ge=0,
        description=(
            "This instance's peering priority; the highest live one acts. "
            "Default: random, so equal replicas never tie."
        ),
    )

    @property
    def liveness_port(self) -> int | None:
        """Where /healthz is served, or None when it is off."""
        if self.health_port is not None:
            return self.health_port or None
        return self.metrics_port + 1 if self.metrics_port else None
