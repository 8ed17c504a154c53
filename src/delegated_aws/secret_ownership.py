"""Who owns a Secret, and what the operator may know of one it owns.

Ownership is decided from the Secret alone: a controller owner reference to
the resource, or, for a Secret retained by an earlier resource of the same
name, the operator's labels together with a content hash that proves the
operator wrote the data. ``ManagedSecret`` is the value-free view the
reconciler works with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    Owner,
    SecretShape,
    conforms,
    content_hash,
    decoded_data,
    label_value,
)


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


@dataclass(frozen=True)
class Ownership:
    """Whether a Secret belongs to a resource, and if not, who holds it."""

    ours: bool
    holder: str = ""
    # Owned by an earlier resource of the same name, deleted since: the garbage
    # collector removes the Secret shortly.
    predecessor: bool = False


def ownership_of(secret: Mapping[str, Any], owner: Owner) -> Ownership:
    """Judge ``secret`` (in API form) against the resource ``owner``."""
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
        return Ownership(ours=False, holder="it has no owner")
    # A retained Secret of an earlier resource with this name is adopted: only
    # one resource of a name lives in a namespace at a time. Labels alone are
    # easily copied, so the content must also be what the operator wrote.
    named = annotations.get(OWNER_UID_ANNOTATION) == owner.uid or labels.get(
        OWNER_NAME_LABEL
    ) == label_value(owner.name)
    if named and _written_by_us(secret):
        return Ownership(ours=True)
    if named:
        holder = "its labels name this resource, but the operator did not write it"
        return Ownership(ours=False, holder=holder)
    holder = f"it was retained by {KIND} {labels.get(OWNER_NAME_LABEL, '?')}"
    return Ownership(ours=False, holder=holder)


def _written_by_us(secret: Mapping[str, Any]) -> bool:
    """The recorded content hash matches the data: the operator wrote it."""
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    data = decoded_data(secret)
    recorded = annotations.get(CONTENT_HASH_ANNOTATION)
    return data is not None and recorded is not None and recorded == content_hash(data)


def _controlled(reference: Mapping[str, Any], owner: Owner) -> Ownership:
    if reference.get("uid") == owner.uid:
        return Ownership(ours=True)
    kind, name = reference.get("kind", "?"), reference.get("name", "?")
    ours_kind = kind == KIND and reference.get("apiVersion", "").startswith(
        API_VERSION.split("/")[0] + "/"
    )
    return Ownership(
        ours=False,
        holder=f"it is owned by {kind} {name}",
        predecessor=ours_kind and name == owner.name,
    )


def view(
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
