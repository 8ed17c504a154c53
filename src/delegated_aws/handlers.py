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
from datetime import timedelta
from typing import Any

import kopf

from delegated_aws.errors import OperatorError, backoff_delay
from delegated_aws.liveness import WatchCanary
from delegated_aws.models import GROUP, PLURAL, VERSION
from delegated_aws.reconcile import Reconciler
from delegated_aws.secret_content import (
    MANAGED_BY_LABEL,
    MANAGER,
    OWNER_UID_ANNOTATION,
)
from delegated_aws.settings import Settings

logger = logging.getLogger("delegated_aws")

# A watch that delivered nothing, not even the API server's minutely bookmark,
# for this long is presumed dead and replaced.
WATCH_INACTIVITY_TIMEOUT = 90.0
# Connecting to the API server takes far less; more means it is unreachable.
CONNECT_TIMEOUT = 30.0


def build_registry(settings: Settings) -> kopf.OperatorRegistry:
    """Handlers for one operator instance, filtered by its label selector."""
    registry = kopf.OperatorRegistry()
    # The name ``settings`` is kopf's inside the handlers below.
    operator_settings = settings

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def configure(
        settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any
    ) -> None:
        _configure_kopf(settings, operator_settings)
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

    @kopf.on.probe(id="watchSilenceSeconds", registry=registry)
    def watch_silence(memo: kopf.Memo, **_: Any) -> float:
        # A failing probe handler makes kopf's /healthz answer 500, and the
        # kubelet restarts an operator that can no longer hear the cluster.
        return check_hearing(memo["canary"], deaf_after=operator_settings.deaf_after)

    return registry


def check_hearing(canary: WatchCanary, *, deaf_after: timedelta) -> float:
    """Seconds since a watch last worked; a permanent error once too long."""
    silence = round(canary.silence(), 1)
    if silence > deaf_after.total_seconds():
        raise kopf.PermanentError(
            f"No watch on the API server has worked for {silence:.0f}s; "
            "the operator is deaf."
        )
    return silence


def _configure_kopf(settings: kopf.OperatorSettings, ours: Settings) -> None:
    # Filtering happens in the API server, so a shard lists only its own share.
    if ours.label_selector:
        settings.watching.label_selectors[GROUP, PLURAL] = ours.label_selector
    settings.watching.label_selectors["secrets"] = f"{MANAGED_BY_LABEL}={MANAGER}"
    # NB: the API server ends each watch after server_timeout and kopf opens a
    # new one; the client gives up a little later should the server not.
    # The API server wants whole seconds ("300.0" is a 400 Bad Request).
    server_timeout = int(ours.watch_timeout.total_seconds())
    settings.watching.server_timeout = server_timeout
    settings.watching.client_timeout = server_timeout + 30
    settings.watching.connect_timeout = CONNECT_TIMEOUT
    settings.watching.inactivity_timeout = WATCH_INACTIVITY_TIMEOUT
    settings.networking.connect_timeout = CONNECT_TIMEOUT
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
