"""Which resource holds which External ID, so that no two share one.

An External ID is the customer's only protection against a confused deputy:
two resources with the same id could each assume the other's role. An id the
operator generated belongs to the resource it was generated for, whatever
their ages: pinning it elsewhere is refused. Between two resources pinning the
same id in spec, the older (by creation time, then uid) keeps it.

NB: the index covers the resources this operator instance serves. Shards split
by label selector or namespace do not see each other's ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Holder = tuple[str, str, str, str]  # created, uid, namespace, name


class ExternalIdIndex:
    """External IDs in use by the resources this operator watches."""

    def __init__(self) -> None:
        self._by_id: dict[str, dict[str, Holder]] = {}
        self._by_uid: dict[str, set[str]] = {}
        # (id, uid) pairs where the id was generated for that resource.
        self._generated: set[tuple[str, str]] = set()

    def observe(self, body: Mapping[str, Any]) -> None:
        holder = _holder(body)
        self.forget(body)
        pinned, in_status = _pinned(body), _generated(body)
        ids = {v for v in (pinned, in_status) if v}
        for external_id in ids:
            self._by_id.setdefault(external_id, {})[holder[1]] = holder
        if in_status and in_status != pinned:
            self._generated.add((in_status, holder[1]))
        self._by_uid[holder[1]] = ids

    def forget(self, body: Mapping[str, Any]) -> None:
        uid = body["metadata"]["uid"]
        for external_id in self._by_uid.pop(uid, set()):
            self._generated.discard((external_id, uid))
            holders = self._by_id.get(external_id, {})
            holders.pop(uid, None)
            if not holders:
                self._by_id.pop(external_id, None)

    def holder_other_than(
        self, external_id: str, body: Mapping[str, Any]
    ) -> str | None:
        """``namespace/name`` of the resource that keeps the id, if not ``body``."""
        me = _holder(body)
        if (external_id, me[1]) in self._generated:
            return None
        others = [h for h in self._by_id.get(external_id, {}).values() if h[1] != me[1]]
        owners = [h for h in others if (external_id, h[1]) in self._generated]
        keeper = min(owners or [h for h in others if h[:2] < me[:2]], default=None)
        return None if keeper is None else f"{keeper[2]}/{keeper[3]}"


def _holder(body: Mapping[str, Any]) -> Holder:
    meta = body["metadata"]
    return (
        meta.get("creationTimestamp") or "",
        meta["uid"],
        meta["namespace"],
        meta["name"],
    )


def _pinned(body: Mapping[str, Any]) -> str | None:
    value = (body.get("spec") or {}).get("externalId")
    return value if isinstance(value, str) else None


def _generated(body: Mapping[str, Any]) -> str | None:
    value = (body.get("status") or {}).get("externalId")
    return value if isinstance(value, str) else None
