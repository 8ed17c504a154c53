"""What this process published as each resource's status, and what it implies.

Status is written by the operator alone, so the status it last published is
newer than the status in any event still in flight. Kept per resource: that
last status, the few before it (to tell a late event from a hand edit), and
whether a hand edit must be put back. New versions of a resource that only
echo the operator's own status write are recognised here, so they are not
reconciled for nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from delegated_aws.models import dump, parse_status
from delegated_aws.state import Key

# Metadata a reconcile reads: a change to any of them is never an echo.
_INPUTS = ("generation", "labels", "annotations", "deletionTimestamp")
_HISTORY = 4


class PublishedStatuses:
    """Per resource: the status last published and what came before it."""

    def __init__(self) -> None:
        # Oldest first; the last entry is the status in force.
        self._history: dict[Key, deque[dict[str, Any]]] = {}
        self._repair: set[Key] = set()

    def last(self, key: Key) -> dict[str, Any] | None:
        history = self._history.get(key)
        return history[-1] if history else None

    def observe(
        self, key: Key, before: Mapping[str, Any] | None, body: Mapping[str, Any]
    ) -> bool:
        """Take note of a new version of a resource; True if it is only an echo.

        A version whose status this process never published was edited by
        hand: the next publication writes status even if nothing else changed.
        """
        if echoes_status(before, body, self.last(key)):
            return True
        history = self._history.get(key)
        if history and dump(parse_status(body.get("status"))) not in history:
            self._repair.add(key)
        return False

    def overlay(self, key: Key, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """``body`` with the status this process last published, if any."""
        last = self.last(key)
        return body if last is None else {**body, "status": last}

    def needs_repair(self, key: Key) -> bool:
        return key in self._repair

    def record(self, key: Key, status: dict[str, Any]) -> None:
        """``status`` is now the resource's status, as published."""
        self._repair.discard(key)
        self._history.setdefault(key, deque(maxlen=_HISTORY)).append(status)

    def forget(self, key: Key) -> None:
        self._history.pop(key, None)
        self._repair.discard(key)

    def clear(self) -> None:
        self._history.clear()
        self._repair.clear()


def echoes_status(
    before: Mapping[str, Any] | None,
    body: Mapping[str, Any],
    published: Mapping[str, Any] | None,
) -> bool:
    """Whether a new version of the resource only carries our own status write.

    Such an event brings nothing to decide on: reconciling it would re-read the
    Secret for nothing. A re-list (same resourceVersion) is still reconciled.
    """
    if before is None or published is None:
        return False
    meta, old = body["metadata"], before["metadata"]
    if meta.get("resourceVersion") == old.get("resourceVersion"):
        return False
    if any(meta.get(name) != old.get(name) for name in _INPUTS):
        return False
    return dump(parse_status(body.get("status"))) == published
