"""The kopf side: which events reach the reconciler, and kopf's own settings.

Only event handlers are used. They add no finalizer, store no progress in the
object and never write ``spec``, so a resource kept in Git shows no drift and
can always be deleted, with or without a running operator. Retries and
refreshes are the reconciler's own schedule.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import kopf

from delegated_aws.errors import OperatorError, backoff_delay
from delegated_aws.reconcile import Reconciler
from delegated_aws.reporting import GROUP, PLURAL, VERSION
from delegated_aws.secret_content import (
    MANAGED_BY_LABEL,
    MANAGER,
    OWNER_UID_ANNOTATION,
)
from delegated_aws.settings import Settings

logger = logging.getLogger("delegated_aws")

# NB: the API server ends a watch after this many seconds and kopf opens a new
# one, so a silently dead connection is noticed within this bound.
WATCH_SERVER_TIMEOUT = 300


def build_registry(settings: Settings) -> kopf.OperatorRegistry:
    """Handlers for one operator instance, filtered by its label selector."""
    registry = kopf.OperatorRegistry()
    selector = settings.label_selector

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def configure(
        settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any
    ) -> None:
        _configure_kopf(settings, selector=selector)
        reconciler: Reconciler = memo["reconciler"]
        memo["identity_task"] = asyncio.create_task(_establish_identity(reconciler))

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def resource_event(
        type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
    ) -> None:
        reconciler: Reconciler = memo["reconciler"]
        plain = copy.deepcopy(dict(body))
        if type == "DELETED" or body.metadata.get("deletionTimestamp"):
            reconciler.forget(plain)
        else:
            await reconciler.observe(plain)

    @kopf.on.event(
        "",
        "v1",
        "secrets",
        labels={MANAGED_BY_LABEL: MANAGER},
        registry=registry,
    )
    async def secret_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        owner_uid = body.metadata.annotations.get(OWNER_UID_ANNOTATION)
        if owner_uid:
            await memo["reconciler"].secret_changed(owner_uid)

    @kopf.on.probe(id="awsIdentity", registry=registry)
    def aws_identity(memo: kopf.Memo, **_: Any) -> str:
        reconciler: Reconciler = memo["reconciler"]
        return reconciler.identity.arn if reconciler.identity else "unknown"

    return registry


def _configure_kopf(settings: kopf.OperatorSettings, *, selector: str | None) -> None:
    # Filtering happens in the API server, so a shard lists only its own share.
    if selector:
        settings.watching.label_selectors[GROUP, PLURAL] = selector
    settings.watching.label_selectors["secrets"] = f"{MANAGED_BY_LABEL}={MANAGER}"
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_SERVER_TIMEOUT + 30
    settings.watching.connect_timeout = 30
    settings.persistence.finalizer = "delegatedaws.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="delegatedaws.io"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="delegatedaws.io"
    )
    # kopf would post its own Events for handler failures; ours say more.
    settings.posting.enabled = False


async def _establish_identity(reconciler: Reconciler) -> None:
    """GetCallerIdentity until it works, then reconcile everything waiting."""
    attempt = 0
    while True:
        try:
            reconciler.identity = await reconciler.gateway.identity(
                reconciler.settings.default_region
            )
        except OperatorError as error:
            attempt += 1
            reconciler.identity_error = error
            reconciler.reporter.operator_identity_failed(error)
            await asyncio.sleep(backoff_delay(attempt, cap=60.0))
            continue
        logger.info(
            "Operating as %s in account %s.",
            reconciler.identity.arn,
            reconciler.identity.account_id,
        )
        reconciler.identity_error = None
        reconciler.reporter.operator_identity_ok()
        await reconciler.reconcile_all()
        return
