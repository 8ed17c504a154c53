"""Telling people what happened: status, Events and log lines.

Status is patched only when it differs from what the object already carries,
and Events are posted only when a condition changes status or reason: a resync
that learns nothing writes nothing. Normal Events mark progress; Warning
Events mark something a person has to act on. Credential values never reach
this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from delegated_aws import conditions
from delegated_aws.conditions import Verdict
from delegated_aws.messages import ConditionType
from delegated_aws.messages import Reason as R
from delegated_aws.models import (
    GROUP,
    PLURAL,
    VERSION,
    Condition,
    Status,
    dump,
    parse_status,
)
from delegated_aws.owners import CustomObjectsReader, OwnerLookup
from delegated_aws.secret_content import Owner

logger = logging.getLogger("delegated_aws")

COMPONENT = "delegated-aws-operator"

# Conditions that are False for these reasons ask nothing of a person yet.
_IN_PROGRESS = {R.AWAITING_ROLE_ARN, R.PENDING, R.WAITING_FOR_IAM_PROPAGATION}
# True conditions with these reasons still deserve a person's attention.
_ATTENTION = {
    R.SESSION_DURATION_EXCEEDS_ROLE_MAXIMUM,
    R.ROLE_CHAINING_LIMIT,
    R.REFRESH_FAILING,
    R.EXTERNAL_ID_NOT_ENFORCED,
    # Ready stays True on a still-valid Secret, but someone must fix the operator.
    R.OPERATOR_CREDENTIALS_INVALID,
}


class StatusWriteFailed(Exception):
    """The status patch failed; ``gone`` when the resource no longer exists.

    A resource deleted and created again under the same name is gone too: the
    patch names the object by uid, so it never lands on the successor.
    """

    def __init__(
        self, meta: Mapping[str, Any], error: ApiException, *, replaced: bool = False
    ) -> None:
        self.gone = error.status == 404 or replaced
        super().__init__(
            f"status of {meta['namespace']}/{meta['name']} not written: "
            f"HTTP {error.status} {error.reason}"
        )


class StatusApi(CustomObjectsReader, Protocol):
    def patch_namespaced_custom_object_status(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: Any,
        **kwargs: Any,
    ) -> Any: ...


class EventsApi(Protocol):
    def create_namespaced_event(self, namespace: str, body: Any) -> Any: ...


class Reporter:
    """Publishes one reconcile's outcome for one resource."""

    def __init__(self, *, status_api: StatusApi, events_api: EventsApi) -> None:
        self._status_api = status_api
        self._objects = OwnerLookup(status_api)
        self._events_api = events_api
        self._identity_reported: str | None = None

    async def publish(
        self,
        body: Mapping[str, Any],
        status: Status,
        verdicts: Sequence[Verdict],
        *,
        warnings: Sequence[tuple[str, str]] = (),
        force: bool = False,
    ) -> dict[str, Any]:
        """Write what changed; return the status now on the object."""
        old = parse_status(body.get("status"))
        meta = body["metadata"]
        merged = conditions.merge(
            old.conditions,
            verdicts,
            generation=meta.get("generation"),
            now=datetime.now(UTC),
        )
        new = status.model_copy(
            update={
                "conditions": merged,
                "observed_generation": meta.get("generation"),
            }
        )
        # ``force``: the object's status was edited by hand; put ours back.
        if force or dump(new) != _comparable(body.get("status")):
            await self._patch_status(meta, new)
        changed = _transitions(old.conditions, merged)
        for condition in _unique(changed):
            _log_transition(meta, condition)
        eventful = [
            c for c in changed if c.type == ConditionType.READY or _needs_person(c)
        ]
        for condition in _unique(eventful):
            await self._event(body, condition)
        for _, message in warnings:
            logger.warning("%s/%s: %s", meta["namespace"], meta["name"], message)
        return dump(new)

    def operator_identity_failed(self, error: Exception) -> None:
        """Say once, at operator level, that the operator's own identity fails."""
        text = str(error)
        if text != self._identity_reported:
            logger.error(
                "The operator's own AWS identity is failing (%s); every resource "
                "is affected until its credentials are fixed.",
                text,
            )
            self._identity_reported = text

    def operator_identity_ok(self) -> None:
        if self._identity_reported is not None:
            logger.info("The operator's own AWS identity works again.")
        self._identity_reported = None

    async def _patch_status(self, meta: Mapping[str, Any], new: Status) -> None:
        # A JSON patch whose first step tests the uid: the API server applies
        # none of it to another object that took the name meanwhile.
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
            {"op": "add", "path": "/status", "value": dump(new)},
        ]
        try:
            await asyncio.to_thread(
                self._status_api.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                meta["namespace"],
                PLURAL,
                meta["name"],
                patch,
                _content_type="application/json-patch+json",
            )
        except ApiException as error:
            replaced = error.status == 422 and await self._replaced(meta)
            raise StatusWriteFailed(meta, error, replaced=replaced) from None

    async def _replaced(self, meta: Mapping[str, Any]) -> bool:
        """Whether the name now belongs to no object or to another one."""
        owner = Owner(name=meta["name"], uid=meta["uid"])
        return not await self._objects.present(meta["namespace"], owner)

    async def _event(self, body: Mapping[str, Any], condition: Condition) -> None:
        meta = body["metadata"]
        kind = "Warning" if _needs_person(condition) else "Normal"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {
                "generateName": f"{meta['name']}.",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DelegatedAWSSecret",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": kind,
            "reason": condition.reason,
            "message": condition.message,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await asyncio.to_thread(
                self._events_api.create_namespaced_event, meta["namespace"], event
            )
        except Exception as error:
            logger.debug(
                "Could not post an Event for %s/%s: %s",
                meta["namespace"],
                meta["name"],
                type(error).__name__,
            )


def _comparable(raw: Any) -> dict[str, Any]:
    return dump(parse_status(raw)) if raw else {}


def _transitions(old: Sequence[Condition], new: Sequence[Condition]) -> list[Condition]:
    """Conditions whose status or reason changed."""
    before = {c.type: (c.status, c.reason) for c in old}
    return [c for c in new if before.get(c.type) != (c.status, c.reason)]


def _unique(conditions: Sequence[Condition]) -> list[Condition]:
    """One per reason and message: Ready often repeats another condition."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for condition in conditions:
        if (condition.reason, condition.message) not in seen:
            seen.add((condition.reason, condition.message))
            unique.append(condition)
    return unique


def _log_transition(meta: Mapping[str, Any], condition: Condition) -> None:
    """Every transition is a log line; only some are also Events.

    Progress on the conditions other than Ready is in status and this line; an
    Event for each would cost an API write per condition per resource.
    """
    log = logger.warning if _needs_person(condition) else logger.info
    log(
        "%s/%s %s=%s (%s): %s",
        meta["namespace"],
        meta["name"],
        condition.type,
        condition.status,
        condition.reason,
        condition.message,
    )


def _needs_person(condition: Condition) -> bool:
    if condition.reason in _ATTENTION:
        return True
    return condition.status == "False" and condition.reason not in _IN_PROGRESS
