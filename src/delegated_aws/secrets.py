"""Reading, writing and deleting managed Secrets through the Kubernetes API.

This module owns the calls and their failures; what a managed Secret holds is
``secret_content``'s job. The rule it enforces: a Secret this operator did not
create is never written to, whatever the spec says.

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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

import urllib3
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from delegated_aws.messages import Reason
from delegated_aws.secret_content import (
    API_VERSION,
    CONTENT_HASH_ANNOTATION,
    EXPIRATION_ANNOTATION,
    KIND,
    MANAGED_BY_LABEL,
    MANAGER,
    OWNER_NAME_LABEL,
    OWNER_UID_ANNOTATION,
    ROLE_ARN_ANNOTATION,
    DesiredSecret,
    Owner,
    SecretShape,
    conforms,
    content_hash,
    decoded_data,
    is_current,
    label_value,
    new_body,
    updated_body,
)

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


@dataclass(frozen=True)
class ManagedSecret:
    """What the operator needs to know about a Secret it owns; no values."""

    namespace: str
    name: str
    resource_version: str
    expiration: datetime | None
    role_arn: str | None
    recorded_hash: str | None
    actual_hash: str | None
    garbage_collected: bool
    """Whether an owner reference makes it go with the resource."""
    conforming: bool = True
    """Whether its metadata and settings still say what the spec asks for."""

    @property
    def edited(self) -> bool:
        """Changed since the operator wrote it, or no longer what the spec says."""
        tampered = self.actual_hash is None or self.recorded_hash != self.actual_hash
        return tampered or not self.conforming


# --- ownership -----------------------------------------------------------------


@dataclass(frozen=True)
class _Ownership:
    ours: bool
    holder: str = ""
    # Owned by an earlier resource of the same name, deleted since: the garbage
    # collector removes the Secret shortly.
    predecessor: bool = False


def _ownership(secret: Mapping[str, Any], owner: Owner) -> _Ownership:
    metadata = secret.get("metadata") or {}
    controller = next(
        (r for r in metadata.get("ownerReferences") or [] if r.get("controller")),
        None,
    )
    if controller is not None:
        return _controlled(controller, owner)
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGER:
        return _Ownership(ours=False, holder="it has no owner")
    # A retained Secret of an earlier resource with this name is adopted: only
    # one resource of a name lives in a namespace at a time. Labels alone are
    # easily copied, so the content must also be what the operator wrote.
    named = annotations.get(OWNER_UID_ANNOTATION) == owner.uid or labels.get(
        OWNER_NAME_LABEL
    ) == label_value(owner.name)
    if named and _written_by_us(secret):
        return _Ownership(ours=True)
    if named:
        holder = "its labels name this resource, but the operator did not write it"
        return _Ownership(ours=False, holder=holder)
    holder = f"it was retained by {KIND} {labels.get(OWNER_NAME_LABEL, '?')}"
    return _Ownership(ours=False, holder=holder)


def _written_by_us(secret: Mapping[str, Any]) -> bool:
    """The recorded content hash matches the data: the operator wrote it."""
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    data = decoded_data(secret)
    recorded = annotations.get(CONTENT_HASH_ANNOTATION)
    return data is not None and recorded is not None and recorded == content_hash(data)


def _controlled(reference: Mapping[str, Any], owner: Owner) -> _Ownership:
    if reference.get("uid") == owner.uid:
        return _Ownership(ours=True)
    kind, name = reference.get("kind", "?"), reference.get("name", "?")
    ours_kind = kind == KIND and reference.get("apiVersion", "").startswith(
        API_VERSION.split("/")[0] + "/"
    )
    return _Ownership(
        ours=False,
        holder=f"it is owned by {kind} {name}",
        predecessor=ours_kind and name == owner.name,
    )


def _view(
    secret: Mapping[str, Any], *, owner: Owner, shape: SecretShape | None
) -> ManagedSecret:
    metadata = secret.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    data = decoded_data(secret)
    return ManagedSecret(
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        resource_version=metadata.get("resourceVersion", ""),
        expiration=_parse_time(annotations.get(EXPIRATION_ANNOTATION)),
        role_arn=annotations.get(ROLE_ARN_ANNOTATION),
        recorded_hash=annotations.get(CONTENT_HASH_ANNOTATION),
        actual_hash=None if data is None else content_hash(data),
        garbage_collected=any(
            r.get("controller") for r in metadata.get("ownerReferences") or []
        ),
        conforming=shape is None or conforms(secret, shape, owner=owner),
    )


def _parse_time(text: str | None) -> datetime | None:
    try:
        return None if text is None else datetime.fromisoformat(text)
    except ValueError:
        return None


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
        return _view(live, owner=owner, shape=shape)

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
        if live is None or not _ownership(live, owner).ours:
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
        ownership = _ownership(live, owner)
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
