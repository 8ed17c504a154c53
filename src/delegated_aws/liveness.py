"""Knowing when the operator has gone deaf to the API server.

kopf replaces a watch that idles past its inactivity timeout, but it keeps no
record a probe could read, and a watch that keeps failing to reconnect looks
the same as a quiet cluster. The canary here runs its own short watches of the
served resource, from a daemon thread, with the operator's own credentials
and route to the API server: each watch that ends cleanly, or delivers an
event, is a heartbeat. The liveness probe (see ``handlers``) fails once the
last heartbeat is older than ``settings.deaf_after``, so the kubelet restarts a
process that can no longer hear the cluster.

Notes: the canary proves the path to the API server (network, credentials,
RBAC, API server health), not kopf's own streams; kopf's inactivity timeout
covers those.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch

from delegated_aws.models import GROUP, PLURAL, VERSION

logger = logging.getLogger("delegated_aws")

# After a failed watch, wait this long before the next try.
_RETRY_PAUSE = 1.0


class WatchCanary:
    """Short watches in a loop; ``silence()`` is the time since the last beat."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str | None,
        period: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._namespace = namespace
        self._period = max(1, round(period))
        self._clock = clock
        self._last_beat = clock()

    def silence(self) -> float:
        """Seconds since a watch last worked."""
        return self._clock() - self._last_beat

    def start(self) -> WatchCanary:
        threading.Thread(target=self._loop, name="watch-canary", daemon=True).start()
        return self

    def _loop(self) -> None:
        while True:
            try:
                self._one_watch()
            except Exception as error:
                logger.debug("The watch canary failed: %s", type(error).__name__)
                time.sleep(_RETRY_PAUSE)

    def _one_watch(self) -> None:
        # Start from the current version: the canary wants new events, not a
        # replay of every existing object.
        listed = self._list(limit=1)
        version = listed["metadata"]["resourceVersion"]
        stream = watch.Watch().stream(
            self._list,
            resource_version=version,
            timeout_seconds=self._period,
            allow_watch_bookmarks=True,
            # A connection that hangs must fail too, not block the canary.
            _request_timeout=(5, self._period + 10),
        )
        for _ in stream:
            self._beat()
        self._beat()

    def _list(self, **kwargs: Any) -> Any:
        if self._namespace is None:
            return self._custom.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, **kwargs
            )
        return self._custom.list_namespaced_custom_object(
            GROUP, VERSION, self._namespace, PLURAL, **kwargs
        )

    def _beat(self) -> None:
        self._last_beat = self._clock()
