"""What the benchmark observes: watch streams, process counters, percentiles.

This module owns the measuring instruments of ``make bench``: a recorder that
follows DelegatedAWSSecrets and Secrets of one namespace through watch streams
and keeps every event with the local time it arrived, the operator process's
RSS and CPU time from ``/proc``, and the percentile arithmetic. Nothing here
knows the scenarios.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config, watch

from delegated_aws.models import GROUP, PLURAL, VERSION

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def api_client(kubeconfig: str, *, pool: int = 32) -> client.ApiClient:
    """An admin client whose connection pool serves ``pool`` threads at once."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = pool
    return client.ApiClient(configuration)


@dataclass(frozen=True)
class Seen:
    """One watch event, reduced to what the scenarios ask about."""

    at: float
    kind: str  # "das" or "secret"
    type: str  # ADDED, MODIFIED, DELETED
    name: str
    resource_version: str
    instructions: bool = False
    ready: bool = False
    last_refresh: str | None = None


class Recorder:
    """Watches one namespace's DelegatedAWSSecrets and Secrets from now on."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.namespace = namespace
        self._api = api_client(kubeconfig, pool=4)
        self._events: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Recorder:
        custom = client.CustomObjectsApi(self._api)
        core = client.CoreV1Api(self._api)
        streams: list[tuple[str, Callable[..., Any]]] = [
            (
                "das",
                lambda **kw: custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, **kw
                ),
            ),
            ("secret", lambda **kw: core.list_namespaced_secret(self.namespace, **kw)),
        ]
        for kind, lister in streams:
            since = _resource_version(lister(limit=1))
            thread = threading.Thread(
                target=self._follow, args=(kind, lister, since), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._api.close()

    def mark(self) -> int:
        """A position in the event log; ``since(mark)`` reads what came after."""
        with self._lock:
            return len(self._events)

    def since(self, position: int = 0) -> list[Seen]:
        with self._lock:
            return self._events[position:]

    def _follow(self, kind: str, lister: Callable[..., Any], since: str) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    lister,
                    resource_version=since,
                    timeout_seconds=5,
                    allow_watch_bookmarks=True,
                ):
                    obj = event["object"]
                    seen = _seen(kind, event["type"], obj)
                    since = seen.resource_version or since
                    if event["type"] != "BOOKMARK":
                        with self._lock:
                            self._events.append(seen)
                    if self._stop.is_set():
                        break
            except Exception:  # a dropped watch resumes
                time.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    stream.stop()


def _resource_version(listing: Any) -> str:
    if isinstance(listing, dict):
        return str(listing["metadata"]["resourceVersion"])
    return str(listing.metadata.resource_version)


def _seen(kind: str, kind_of_event: str, obj: Any) -> Seen:
    if not isinstance(obj, dict):
        obj = client.ApiClient().sanitize_for_serialization(obj)
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return Seen(
        at=time.monotonic(),
        kind=kind,
        type=kind_of_event,
        name=meta.get("name", ""),
        resource_version=meta.get("resourceVersion", ""),
        instructions=bool(status.get("instructions")),
        ready=ready,
        last_refresh=(status.get("credentials") or {}).get("lastRefreshTime"),
    )


def api_requests(api: client.ApiClient) -> dict[str, float]:
    """kube-apiserver's request counters so far, by "VERB resource[/sub]"."""
    response = api.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False
    )
    if isinstance(response, tuple):  # older clients answer (data, status, headers)
        response = response[0]
    counts: dict[str, float] = {}
    for line in response.data.decode().splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(_LABEL.findall(line))
        if labels.get("resource") in (None, "", "metrics"):
            continue
        key = f"{labels['verb']} {labels['resource']}"
        if labels.get("subresource"):
            key += f"/{labels['subresource']}"
        counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def requests_since(
    api: client.ApiClient, before: dict[str, float], *, per: int
) -> dict[str, float]:
    """Requests made since ``before``, divided by ``per`` (resources)."""
    after = api_requests(api)
    return {
        key: round((after[key] - before.get(key, 0)) / per, 2)
        for key in sorted(after)
        if after[key] - before.get(key, 0) > 0
    }


# --- the operator process ----------------------------------------------------


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may contain spaces; fields resume after its ')'.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def children() -> dict[str, int]:
    """This process's children by role: kube-apiserver, etcd, awsemu, operator."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            if ppid != os.getpid():
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as raw:
                argv = raw.read().decode(errors="replace").split("\0")
            found[_role(argv)] = int(entry)
    return found


def _role(argv: list[str]) -> str:
    if "delegated_aws.devenv.awsemu" in argv:
        return "aws_emulator"
    if "delegated_aws" in argv:
        return "operator"
    return os.path.basename(argv[0]).replace("-", "_")


def cpu_by_role() -> dict[str, float]:
    """CPU seconds so far of every child process, by role."""
    usage = {"bench": cpu_seconds(os.getpid())}
    for role, pid in children().items():
        with contextlib.suppress(OSError):
            usage[role] = cpu_seconds(pid)
    return usage


def cpu_delta(before: dict[str, float]) -> dict[str, float]:
    after = cpu_by_role()
    return {role: round(after[role] - before.get(role, 0.0), 2) for role in after}


def wait_idle(
    pid: int, *, window: float = 2.0, busy: float = 0.05, timeout: float = 600.0
) -> float:
    """Block until ``pid`` used under ``busy`` CPU seconds in ``window``.

    Returns the monotonic time at which the idle window began: the moment
    the process had finished its work.
    """
    deadline = time.monotonic() + timeout
    samples = [(time.monotonic(), cpu_seconds(pid))]
    while time.monotonic() < deadline:
        time.sleep(0.25)
        samples.append((time.monotonic(), cpu_seconds(pid)))
        now, used = samples[-1]
        start = next((s for s in samples if s[0] >= now - window), samples[0])
        if now - samples[0][0] >= window and used - start[1] < busy:
            return start[0]
    raise TimeoutError(f"process {pid} stayed busy for {timeout}s")


# --- arithmetic ----------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; ``fraction`` in (0, 1]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else math.nan,
    }
