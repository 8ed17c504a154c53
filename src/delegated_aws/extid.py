"""Which resource holds which External ID, so that no two share one.

An External ID is the customer's only protection against a confused deputy:
two resources with the same id could each assume the other's role. The older
resource (by creation time, then uid) keeps a contested id.
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

    def observe(self, body: Mapping[str, Any]) -> None:
        holder = _holder(body)
        self.forget(body)
        ids = {v for v in (_pinned(body), _generated(body)) if v}
        for external_id in ids:
            self._by_id.setdefault(external_id, {})[holder[1]] = holder
        self._by_uid[holder[1]] = ids

    def forget(self, body: Mapping[str, Any]) -> None:
        uid = body["metadata"]["uid"]
        for external_id in self._by_uid.pop(uid, set()):
            holders = self._by_id.get(external_id, {})
            holders.pop(uid, None)
            if not holders:
                self._by_id.pop(external_id, None)

    def holder_other_than(
        self, external_id: str, body: Mapping[str, Any]
    ) -> str | None:
        """``namespace/name`` of an older resource using the id, if any."""
        me = _holder(body)
        older = [
            h
            for h in self._by_id.get(external_id, {}).values()
            if h[1] != me[1] and h[:2] < me[:2]
        ]
        if not older:
            return None
        first = min(older)
        return f"{first[2]}/{first[3]}"


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
