"""Wiring: builds the reconciler from settings and runs kopf with it."""

from __future__ import annotations

import asyncio
import logging
import threading

import kopf
from kubernetes import client, config

from delegated_aws.handlers import build_registry
from delegated_aws.reconcile import Reconciler
from delegated_aws.reporting import Reporter
from delegated_aws.secrets import SecretWriter
from delegated_aws.settings import Settings
from delegated_aws.sts import StsGateway


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
        writer=SecretWriter(client.CoreV1Api(api)),
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


async def operate(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run until stopped; the whole operator in one coroutine."""
    api = load_kubernetes()
    reconciler = build_reconciler(settings, api)
    liveness = (
        f"http://0.0.0.0:{settings.metrics_port}/healthz"
        if settings.metrics_port
        else None
    )
    await kopf.operator(
        registry=build_registry(settings),
        memo=kopf.Memo(reconciler=reconciler),
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        standalone=settings.peering is None,
        peering_name=settings.peering,
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def run(settings: Settings) -> None:
    configure_logging(settings)
    asyncio.run(operate(settings))
