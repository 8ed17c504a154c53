"""Reading, writing and deleting managed Secrets through the Kubernetes API.

This module owns the calls and their failures; what a managed Secret holds is
``secret_content``'s job, and who owns a Secret is ``secret_ownership``'s. The
rule it enforces: a Secret this operator did not create is never written to,
whatever the spec says.

Errors (no ``ApiException`` leaves this module)::

    SecretError                  has ``reason`` and a one-sentence ``message``
    ├── SecretConflict           not ours; wait for a spec change (F16)
    ├── SecretForbidden          the operator's RBAC lacks a verb; a person acts
    ├── SecretRejected           the API refused the content (422); a spec fix
    └── SecretRetry              conflicts, 5xx, timeouts; ``delay`` in seconds

Messages and log lines name namespace/name, the role ARN and the expiry; never
a value from the Secret's data.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar

import urllib3
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from delegated_aws.messages import Reason
from delegated_aws.secret_content import (
    KIND,
    MANAGER,
    DesiredSecret,
    Owner,
    SecretShape,
    is_current,
    new_body,
    updated_body,
)
from delegated_aws.secret_ownership import ManagedSecret, ownership_of, view

logger = logging.getLogger(__name__)

T = TypeVar("T")
# "abandoned": no Secret was created because its resource is gone.
WriteOutcome = Literal["created", "updated", "unchanged", "abandoned"]

SECRET_FORBIDDEN = Reason.SECRET_WRITE_FORBIDDEN
SECRET_REJECTED = Reason.SECRET_REJECTED
SECRET_RETRYING = Reason.SECRET_WRITE_RETRYING

CONFLICT_DELAY = 1.0
UNAVAILABLE_DELAY = 10.0
GARBAGE_COLLECTION_DELAY = 10.0


class SecretError(Exception):
    """A Secret could not be read or written; the message is safe to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SecretConflict(SecretError):
    """A Secret of that name exists and the resource does not own it."""

    def __init__(self, namespace: str, name: str, *, holder: str) -> None:
        super().__init__(
            Reason.SECRET_NAME_CONFLICT,
            f"Secret {namespace}/{name} already exists and this resource does not "
            f"own it ({holder}); choose another spec.secret.name or delete that "
            "Secret.",
        )
        self.holder = holder


class SecretForbidden(SecretError):
    """The operator's RBAC does not allow the call."""


class SecretRejected(SecretError):
    """The API server refused the Secret's content as invalid."""


class SecretRetry(SecretError):
    """A transient failure; try again after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(SECRET_RETRYING, message)
        self.delay = delay


# --- the writer ----------------------------------------------------------------


class OwnerCheck(Protocol):
    async def present(self, namespace: str, owner: Owner) -> bool: ...


class SecretWriter:
    """Managed Secrets over a synchronous ``CoreV1Api``, awaitable from kopf.

    Each call runs in a worker thread; ``request_timeout`` bounds it so a dead
    connection fails as ``SecretRetry`` instead of hanging a handler. With
    ``owners``, a Secret is created only while its resource still exists.
    """

    def __init__(
        self,
        api: CoreV1Api,
        *,
        owners: OwnerCheck | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self._api = api
        self._owners = owners
        self._timeout = request_timeout

    async def read(
        self,
        namespace: str,
        name: str,
        *,
        owner: Owner,
        shape: SecretShape | None = None,
    ) -> ManagedSecret | None:
        """Our Secret, None when absent; ``SecretConflict`` when not ours.

        With ``shape``, a Secret whose metadata or settings differ from it
        reads as edited, so the reconciler rewrites it.
        """
        live = await self._get(namespace, name)
        if live is None:
            return None
        self._ensure_ours(live, owner, namespace=namespace, name=name)
        return view(live, owner=owner, shape=shape)

    async def write(self, namespace: str, desired: DesiredSecret) -> WriteOutcome:
        """Make the Secret say ``desired``; a no-op when it already does."""
        # Two rounds: a create that loses a race re-reads and decides again.
        for _ in range(2):
            live = await self._get(namespace, desired.name)
            if live is None:
                if not await self._owner_present(namespace, desired):
                    return "abandoned"
                if await self._create(namespace, desired):
                    return "created"
                continue
            self._ensure_ours(
                live, desired.owner, namespace=namespace, name=desired.name
            )
            if is_current(live, desired):
                logger.debug("Secret %s/%s is up to date.", namespace, desired.name)
                return "unchanged"
            await self._replace(namespace, updated_body(live, desired), desired)
            return "updated"
        raise SecretRetry(
            f"Secret {namespace}/{desired.name} was created and deleted concurrently; "
            "retrying.",
            delay=CONFLICT_DELAY,
        )

    async def delete_if_owned(self, namespace: str, name: str, *, owner: Owner) -> bool:
        """Delete our Secret; False when there is none or it is not ours.

        A Secret replaced since the read fails the preconditions and surfaces
        as ``SecretRetry``, so the next attempt judges the new one.
        """
        live = await self._get(namespace, name)
        if live is None or not ownership_of(live, owner).ours:
            return False
        metadata = live["metadata"]
        # Preconditions: never delete a Secret that was replaced since the read.
        options = {
            "preconditions": {
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            }
        }
        call = functools.partial(
            self._api.delete_namespaced_secret, name, namespace, body=options
        )
        try:
            await self._call(call, verb="delete", namespace=namespace, name=name)
        except _NotFound:
            return True
        logger.info(
            "Secret %s/%s deleted; its resource no longer names it.", namespace, name
        )
        return True

    # --- steps ---

    def _ensure_ours(
        self, live: Mapping[str, Any], owner: Owner, *, namespace: str, name: str
    ) -> None:
        ownership = ownership_of(live, owner)
        if ownership.predecessor:
            raise SecretRetry(
                f"Secret {namespace}/{name} belongs to a deleted earlier {KIND} "
                f"{owner.name}; waiting for the garbage collector to remove it.",
                delay=GARBAGE_COLLECTION_DELAY,
            )
        if not ownership.ours:
            raise SecretConflict(namespace, name, holder=ownership.holder)
        if (live.get("metadata") or {}).get("deletionTimestamp"):
            raise SecretRetry(
                f"Secret {namespace}/{name} is being deleted; it is written again "
                "once it is gone.",
                delay=GARBAGE_COLLECTION_DELAY,
            )

    async def _get(self, namespace: str, name: str) -> dict[str, Any] | None:
        call = functools.partial(self._api.read_namespaced_secret, name, namespace)
        try:
            secret = await self._call(call, verb="get", namespace=namespace, name=name)
        except _NotFound:
            return None
        return _api_form(secret)

    async def _owner_present(self, namespace: str, desired: DesiredSecret) -> bool:
        owner = desired.owner
        if self._owners is None or await self._owners.present(namespace, owner):
            return True
        logger.info(
            "Secret %s/%s not created: %s %s was deleted meanwhile.",
            namespace,
            desired.name,
            KIND,
            owner.name,
        )
        return False

    async def _create(self, namespace: str, desired: DesiredSecret) -> bool:
        """Create the Secret; False when one of that name appeared meanwhile."""
        call = functools.partial(
            self._api.create_namespaced_secret,
            namespace,
            new_body(desired, namespace=namespace),
            field_manager=MANAGER,
        )
        try:
            await self._call(
                call, verb="create", namespace=namespace, name=desired.name
            )
        except _AlreadyExists:
            return False
        _log_written("created", namespace, desired)
        return True

    async def _replace(
        self, namespace: str, body: dict[str, Any], desired: DesiredSecret
    ) -> None:
        call = functools.partial(
            self._api.replace_namespaced_secret,
            desired.name,
            namespace,
            body,
            field_manager=MANAGER,
        )
        try:
            await self._call(
                call, verb="update", namespace=namespace, name=desired.name
            )
        except _NotFound:
            raise SecretRetry(
                f"Secret {namespace}/{desired.name} was deleted while being updated; "
                "it is created again on the next attempt.",
                delay=CONFLICT_DELAY,
            ) from None
        _log_written("updated", namespace, desired)

    async def _call(
        self, call: Callable[..., T], *, verb: str, namespace: str, name: str
    ) -> T:
        bound = functools.partial(call, _request_timeout=self._timeout)
        try:
            return await asyncio.to_thread(bound)
        except ApiException as error:
            raise _translated(
                error, verb=verb, namespace=namespace, name=name
            ) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise SecretRetry(
                f"Could not reach the Kubernetes API to {verb} Secret "
                f"{namespace}/{name} ({type(error).__name__}); retrying.",
                delay=UNAVAILABLE_DELAY,
            ) from error


def _log_written(outcome: str, namespace: str, desired: DesiredSecret) -> None:
    logger.info(
        "Secret %s/%s %s with credentials for %s expiring at %s.",
        namespace,
        desired.name,
        outcome,
        desired.role_arn,
        desired.expiration,
    )


# --- error mapping -------------------------------------------------------------


class _NotFound(Exception):
    pass


class _AlreadyExists(Exception):
    pass


def _translated(
    error: ApiException, *, verb: str, namespace: str, name: str
) -> Exception:
    status, details = error.status or 0, _status_body(error)
    subject = f"Secret {namespace}/{name}"
    if status == 404:
        return _NotFound()
    if status == 409 and details.get("reason") == "AlreadyExists":
        return _AlreadyExists()
    if status == 409:
        return SecretRetry(
            f"{subject} changed while being written; retrying with a fresh read.",
            delay=CONFLICT_DELAY,
        )
    if status == 403 and "being terminated" in str(details.get("message", "")):
        return SecretRetry(
            f"Namespace {namespace} is being deleted; {subject} is not written.",
            delay=UNAVAILABLE_DELAY,
        )
    if status == 403:
        return SecretForbidden(
            SECRET_FORBIDDEN,
            f"The operator's RBAC does not allow '{verb}' on secrets in namespace "
            f"{namespace}; grant it to the operator's service account.",
        )
    if status == 422:
        return SecretRejected(
            SECRET_REJECTED,
            f"The API server rejected {subject} as invalid ({_fields(details)}); "
            "check spec.secret.labels and spec.secret.annotations.",
        )
    if status == 429 or status >= 500 or status in (0, 401):
        return SecretRetry(
            f"The Kubernetes API answered HTTP {status} to {verb} {subject}; retrying.",
            delay=_retry_after(error) or UNAVAILABLE_DELAY,
        )
    return SecretError(
        SECRET_REJECTED,
        f"The Kubernetes API answered HTTP {status} to {verb} {subject}.",
    )


def _status_body(error: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _fields(details: Mapping[str, Any]) -> str:
    # Only the field paths: a cause's message may quote the offending value.
    causes = (details.get("details") or {}).get("causes") or []
    fields = sorted({c.get("field", "") for c in causes if c.get("field")})
    return ", ".join(fields) or "no field named"


def _retry_after(error: ApiException) -> float | None:
    headers = error.headers or {}
    try:
        return float(headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return None


@functools.cache
def _serializer() -> ApiClient:
    return ApiClient()


def _api_form(secret: Any) -> dict[str, Any]:
    """A client model as the API writes it: camelCase keys, plain values."""
    form: dict[str, Any] = _serializer().sanitize_for_serialization(secret)
    return form
