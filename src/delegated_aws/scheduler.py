"""Wake-ups at a wall-clock time, one pending per resource.

Refreshes are scheduled here rather than with kopf timers or daemons, which
put a finalizer on every object they serve: a resource must stay deletable
even while no operator runs. The schedule lives in memory and is rebuilt from
``status.credentials.refreshAt`` when the operator starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from datetime import datetime
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Scheduler(Generic[K]):
    """Calls ``fire(key)`` at the time last set for that key."""

    def __init__(self, fire: Callable[[K], Coroutine[object, object, None]]) -> None:
        self._fire = fire
        self._handles: dict[K, asyncio.TimerHandle] = {}
        self._due: dict[K, datetime] = {}
        self._running: set[asyncio.Task[None]] = set()

    def at(self, key: K, when: datetime, *, now: datetime) -> None:
        if self._due.get(key) == when:
            return
        self.cancel(key)
        delay = max(0.0, (when - now).total_seconds())
        loop = asyncio.get_running_loop()
        self._handles[key] = loop.call_later(delay, self._spawn, key)
        self._due[key] = when

    def cancel(self, key: K) -> None:
        handle = self._handles.pop(key, None)
        self._due.pop(key, None)
        if handle is not None:
            handle.cancel()

    def due(self, key: K) -> datetime | None:
        return self._due.get(key)

    def __len__(self) -> int:
        return len(self._handles)

    def _spawn(self, key: K) -> None:
        self._handles.pop(key, None)
        self._due.pop(key, None)
        task = asyncio.get_running_loop().create_task(self._fire(key))
        # Keep a reference so the task is not collected mid-flight.
        self._running.add(task)
        task.add_done_callback(self._running.discard)
