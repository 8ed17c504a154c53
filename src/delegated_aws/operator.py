"""Wiring: builds the reconciler from settings and runs kopf with it."""

from __future__ import annotations

import asyncio
import logging
import threading

import kopf
from kubernetes import client, config

from delegated_aws import metrics, peering
from delegated_aws.handlers import build_registry
from delegated_aws.liveness import WatchCanary
from delegated_aws.owners import OwnerLookup
from delegated_aws.reconcile import Reconciler
from delegated_aws.reporting import Reporter
from delegated_aws.secrets import SecretWriter
from delegated_aws.settings import Settings
from delegated_aws.sts import StsGateway

logger = logging.getLogger("delegated_aws")


def load_kubernetes() -> client.ApiClient:
    """In a pod, the service account; elsewhere, the current kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def build_reconciler(settings: Settings, api: client.ApiClient) -> Reconciler:
    return Reconciler(
        settings=settings,
        gateway=StsGateway(concurrency=settings.sts_concurrency),
        writer=SecretWriter(
            client.CoreV1Api(api), owners=OwnerLookup(client.CustomObjectsApi(api))
        ),
        reporter=Reporter(
            status_api=client.CustomObjectsApi(api), events_api=client.CoreV1Api(api)
        ),
    )


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # botocore logs request details at DEBUG; keep it quiet whatever the level.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    # kopf reports every handler run at INFO; our own lines already say what
    # changed, so its per-object chatter is steady state, not news.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)


async def operate(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run until stopped; the whole operator in one coroutine."""
    api = load_kubernetes()
    reconciler = build_reconciler(settings, api)
    canary = WatchCanary(
        # Its own client: a long watch must not hold a connection others need.
        client.ApiClient(configuration=api.configuration),
        namespace=settings.namespaces[0] if settings.namespaces else None,
        period=min(60.0, settings.deaf_after.total_seconds() / 3),
    ).start()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, ready=lambda: _ready(reconciler))
    identity = peering.detect_identity()
    priority = peering.pick_priority(settings.peering_priority)
    tasks = _start_gate(settings, api, reconciler, identity=identity, priority=priority)
    port = settings.liveness_port
    try:
        await kopf.operator(
            registry=build_registry(settings),
            memo=kopf.Memo(reconciler=reconciler, canary=canary),
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            standalone=settings.peering is None,
            peering_name=settings.peering,
            identity=identity,  # type: ignore[arg-type]  # kopf's NewType
            priority=priority,
            liveness_endpoint=f"http://0.0.0.0:{port}/healthz" if port else None,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        for task in tasks:
            task.cancel()


def _ready(reconciler: Reconciler) -> bool:
    # Ready once the operator knows its own AWS identity: until then every
    # resource would only be told to wait.
    return reconciler.identity is not None


def _start_gate(
    settings: Settings,
    api: client.ApiClient,
    reconciler: Reconciler,
    *,
    identity: str,
    priority: int,
) -> list[asyncio.Task[None]]:
    """With peering, refresh timers act only while this instance is active."""
    if settings.peering is None:
        return []
    gate = peering.PeeringGate(
        api,
        name=settings.peering,
        namespaces=settings.namespaces,
        identity=identity,
        priority=priority,
        on_standby=reconciler.standby,
    )
    reconciler.may_act = lambda: gate.active
    logger.info(
        "Peering in %r as %s with priority %d.", settings.peering, identity, priority
    )
    return [asyncio.create_task(gate.run())]


def run(settings: Settings) -> None:
    configure_logging(settings)
    asyncio.run(operate(settings))
