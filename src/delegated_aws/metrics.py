"""Prometheus metrics and the /metrics + /readyz HTTP endpoint.

The metrics live in the process-wide prometheus_client registry; the reconciler
records into them through the small functions below, so no other module needs
to know metric names. Credential values never become a label.

Port layout: ``settings.metrics_port`` serves ``/metrics`` and ``/readyz`` from
a thread; kopf serves its liveness endpoint ``/healthz`` on
``settings.liveness_port`` (by default the next port), because kopf's server
answers one path only and runs the probe handlers on each request.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

T = TypeVar("T")

CREDENTIALS_EXPIRY = Gauge(
    "delegated_aws_credentials_expiry_timestamp_seconds",
    "Unix time at which the credentials in each resource's Secret expire.",
    ["namespace", "name"],
)
REFRESHES = Counter(
    "delegated_aws_credential_refreshes_total",
    "Credentials written to a Secret, by what caused the write.",
    ["action"],
)
FAILURES = Counter(
    "delegated_aws_reconcile_failures_total",
    "Reconcile passes that failed, by condition reason.",
    ["reason"],
)
ASSUME_ROLE_SECONDS = Histogram(
    "delegated_aws_assume_role_duration_seconds",
    "Latency of sts:AssumeRole calls, by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def credentials_written(
    namespace: str, name: str, *, expiration: float, action: str | None
) -> None:
    """The Secret holds credentials expiring at ``expiration`` (Unix time).

    ``action`` names what wrote them (Validate, Refresh, Restore); None when
    they were already in place, as after a restart.
    """
    CREDENTIALS_EXPIRY.labels(namespace, name).set(expiration)
    if action is not None:
        REFRESHES.labels(action).inc()


def reconcile_failed(reason: str) -> None:
    FAILURES.labels(reason).inc()


def resource_gone(namespace: str, name: str) -> None:
    """Drop the series of a deleted resource, so dashboards do not alarm on it."""
    # KeyError: it never had credentials.
    with contextlib.suppress(KeyError):
        CREDENTIALS_EXPIRY.remove(namespace, name)


async def timed_assume_role(call: Awaitable[T]) -> T:
    """Await one AssumeRole call and record how long it took."""
    started = time.monotonic()
    outcome = "error"
    try:
        result = await call
        outcome = "ok"
        return result
    finally:
        ASSUME_ROLE_SECONDS.labels(outcome).observe(time.monotonic() - started)


class _Server(ThreadingMixIn, WSGIServer):
    # A slow scrape must not hold up the readiness probe.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # Probes every few seconds would drown the operator's own log.


def _app(ready: Callable[[], bool]) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/readyz":
            ok = ready()
            start("200 OK" if ok else "503 Service Unavailable", [])
            return [b"ok\n" if ok else b"not ready\n"]
        if path == "/metrics":
            return metrics(environ, start)  # type: ignore[no-any-return]
        start("404 Not Found", [])
        return [b"not found\n"]

    return app


def serve(port: int, *, ready: Callable[[], bool]) -> WSGIServer:
    """Serve /metrics and /readyz on ``port`` from a daemon thread."""
    server = make_server(
        "", port, _app(ready), server_class=_Server, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
