"""Whether this instance is the active one among kopf peers.

kopf pauses its watch streams when a live peer with a higher (or equal)
priority shares the peering object, but the reconciler's own refresh timers
are not kopf's: a paused replica would keep rewriting Secrets. The gate reads
the same peering objects kopf keeps (``status`` maps each peer's identity to
its priority, lifetime and last keep-alive) and applies kopf's rule, so the
timers stand down exactly when kopf does. On a step down the reconciler drops
its in-memory state: the active peer writes status meanwhile, and kopf lists
everything again when this instance resumes.

Equal priorities pause every peer in kopf, so each instance picks a random
priority unless one is configured: two replicas never tie in practice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

logger = logging.getLogger("delegated_aws")

KOPF_GROUP, KOPF_VERSION = "kopf.dev", "v1"
POLL_SECONDS = 5.0


def pick_priority(configured: int | None) -> int:
    return configured if configured is not None else random.randint(1, 2**30)


def outranked(
    peers: Mapping[str, Any], *, identity: str, priority: int, now: datetime
) -> bool:
    """kopf's rule: a live other peer of higher or equal priority pauses us."""
    for other, info in peers.items():
        if other == identity or not isinstance(info, Mapping):
            continue
        lastseen = datetime.fromisoformat(str(info.get("lastseen")))
        deadline = lastseen + timedelta(seconds=int(info.get("lifetime", 60)))
        if deadline > now and int(info.get("priority", 0)) >= priority:
            return True
    return False


class PeeringGate:
    """Polls the peering objects; ``active`` is False while kopf pauses us."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        name: str,
        namespaces: tuple[str, ...],
        identity: str,
        priority: int,
        on_standby: Callable[[], None],
    ) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._name = name
        self._namespaces = namespaces
        self._identity = identity
        self._priority = priority
        self._on_standby = on_standby
        # Start passive: kopf, too, waits for the first peering event.
        self.active = False

    async def run(self) -> None:
        while True:
            try:
                active = await asyncio.to_thread(self._check)
            except ApiException as error:
                logger.debug("Could not read the peering object: %s", error.status)
            else:
                self._switch(active)
            await asyncio.sleep(POLL_SECONDS)

    def _switch(self, active: bool) -> None:
        if active == self.active:
            return
        self.active = active
        if active:
            logger.info("This instance is the active peer in %r.", self._name)
            return
        logger.info("Another peer in %r is active; standing by.", self._name)
        self._on_standby()

    def _check(self) -> bool:
        now = datetime.now(UTC)
        for body in self._peering_objects():
            peers = body.get("status") or {}
            if self._identity not in peers:
                return False  # kopf has not announced us yet.
            if outranked(
                peers, identity=self._identity, priority=self._priority, now=now
            ):
                return False
        return True

    def _peering_objects(self) -> list[dict[str, Any]]:
        if not self._namespaces:
            return [
                self._custom.get_cluster_custom_object(
                    KOPF_GROUP, KOPF_VERSION, "clusterkopfpeerings", self._name
                )
            ]
        return [
            self._custom.get_namespaced_custom_object(
                KOPF_GROUP, KOPF_VERSION, namespace, "kopfpeerings", self._name
            )
            for namespace in self._namespaces
        ]


def detect_identity() -> str:
    """The name this instance announces: the pod's name in a cluster (POD_ID,
    as kopf reads it), else host and pid, unique per process."""
    pod = os.environ.get("POD_ID")
    if pod:
        return pod
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(2)}"
