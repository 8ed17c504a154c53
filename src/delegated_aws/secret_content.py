"""What a managed Secret holds and how to recognise one: pure, no API calls.

This module owns the Secret's shape: the data keys for ``envFrom``, the AWS
shared-credentials and config files, the ``credential_process`` document, the
labels, annotations and owner reference that mark the Secret as ours, the
content hash that reveals a hand edit, and the merge that turns a live Secret
into its desired form. ``secrets.py`` does the API calls around it.

Supported ways for a pod to consume the Secret:

- ``envFrom``: the ``AWS_*`` keys. Environment variables never update, so the
  process must be restarted before ``AWS_CREDENTIAL_EXPIRATION``.
- The whole Secret mounted as a volume at ``spec.secret.mountPath`` (not with
  ``subPath``, whose files kubelet never updates) and
  ``AWS_CONFIG_FILE=<mountPath>/config``: the SDK runs the ``credential_process``
  command, reads the ``Expiration`` and calls it again before it passes, so a
  long-running process picks up each rewrite by itself. The command is
  ``cat``, so the image needs a ``cat`` binary; distroless images and SDKs
  without ``credential_process`` need another route. Do not combine this with
  the ``AWS_*`` variables: the SDKs prefer them and would never refresh.
- ``AWS_SHARED_CREDENTIALS_FILE=<mountPath>/credentials``: read once at start,
  like the variables.

Nothing here puts a credential value in a repr, a log line or an error.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import hashlib
import io
import json
import posixpath
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from delegated_aws.models import Spec

API_VERSION = "delegatedaws.io/v1alpha1"
KIND = "DelegatedAWSSecret"
MANAGER = "delegated-aws-operator"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
OWNER_NAME_LABEL = "delegatedaws.io/owner-name"
EXPIRATION_ANNOTATION = "delegatedaws.io/expiration"
ROLE_ARN_ANNOTATION = "delegatedaws.io/role-arn"
OWNER_UID_ANNOTATION = "delegatedaws.io/owner-uid"
CONTENT_HASH_ANNOTATION = "delegatedaws.io/content-hash"
# The label and annotation keys copied from spec.secret at the last write, so a
# key removed from the spec is removed from the Secret while keys other tools
# added are left alone.
USER_KEYS_ANNOTATION = "delegatedaws.io/user-metadata-keys"

CREDENTIAL_PROCESS_KEY = "credential-process.json"
CONFIG_KEY = "config"
CREDENTIALS_KEY = "credentials"

_LABEL_VALUE_MAX = 63


class IssuedCredentialsLike(Protocol):
    """The fields of ``sts.IssuedCredentials`` this module reads."""

    @property
    def access_key_id(self) -> str: ...
    @property
    def secret_access_key(self) -> str: ...
    @property
    def session_token(self) -> str: ...
    @property
    def expiration(self) -> datetime: ...
    @property
    def assumed_role_arn(self) -> str: ...


@dataclass(frozen=True)
class Owner:
    """The DelegatedAWSSecret a Secret belongs to."""

    name: str
    uid: str


@dataclass(frozen=True)
class DesiredSecret:
    """The Secret as it should be; ``data`` is kept out of repr and str."""

    name: str
    owner: Owner
    data: Mapping[str, str] = field(repr=False)
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    owner_references: tuple[Mapping[str, Any], ...]

    @property
    def content_hash(self) -> str:
        return self.annotations[CONTENT_HASH_ANNOTATION]

    @property
    def expiration(self) -> str:
        return self.annotations[EXPIRATION_ANNOTATION]

    @property
    def role_arn(self) -> str:
        return self.annotations[ROLE_ARN_ANNOTATION]


# --- building ------------------------------------------------------------------


def build_secret(
    spec: Spec,
    credentials: IssuedCredentialsLike,
    *,
    owner: Owner,
    region: str,
) -> DesiredSecret:
    """The desired Secret for ``owner``; ``region`` is the one already resolved."""
    shape = secret_shape(spec, owner=owner, region=region)
    data = secret_data(credentials, region=region, mount_path=spec.secret.mount_path)
    annotations = {
        **shape.annotations,
        EXPIRATION_ANNOTATION: format_expiration(credentials.expiration),
        CONTENT_HASH_ANNOTATION: content_hash(_encoded(data)),
    }
    return DesiredSecret(
        name=spec.secret.name or owner.name,
        owner=owner,
        data=data,
        labels=shape.labels,
        annotations=annotations,
        owner_references=shape.owner_references,
    )


@dataclass(frozen=True)
class SecretShape:
    """What the spec decides about a managed Secret, the credentials aside.

    Comparing a live Secret with it reveals a spec change (labels, deletion
    policy, region, mount path) or a hand edit of the metadata, which the
    content hash alone does not.
    """

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    owner_references: tuple[Mapping[str, Any], ...]
    settings: Mapping[str, str]
    """The data keys that hold no credential: the region and the config file."""


def secret_shape(spec: Spec, *, owner: Owner, region: str) -> SecretShape:
    if spec.role_arn is None:
        raise ValueError("spec.roleArn is empty; there is nothing to write yet")
    annotations = {
        **spec.secret.annotations,
        ROLE_ARN_ANNOTATION: spec.role_arn,
        OWNER_UID_ANNOTATION: owner.uid,
        USER_KEYS_ANNOTATION: _user_keys(spec),
    }
    settings = {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        CONFIG_KEY: _config_file(region=region, mount_path=spec.secret.mount_path),
    }
    return SecretShape(
        labels={**spec.secret.labels, **operator_labels(owner)},
        annotations=annotations,
        owner_references=_owner_references(owner, spec.secret.deletion_policy),
        settings=settings,
    )


def conforms(live: Mapping[str, Any], shape: SecretShape, *, owner: Owner) -> bool:
    """Whether ``live`` (API form) carries everything ``shape`` asks for."""
    metadata = live.get("metadata") or {}
    data = decoded_data(live) or {}
    return (
        _contains(metadata.get("labels"), shape.labels)
        and _contains(metadata.get("annotations"), shape.annotations)
        and _our_references(metadata, owner) == list(shape.owner_references)
        and all(data.get(k) == v.encode() for k, v in shape.settings.items())
    )


def secret_data(
    credentials: IssuedCredentialsLike, *, region: str, mount_path: str
) -> dict[str, str]:
    """Every key of the Secret's data, as text."""
    expiration = format_expiration(credentials.expiration)
    return {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.session_token,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_CREDENTIAL_EXPIRATION": expiration,
        CREDENTIALS_KEY: _credentials_file(credentials),
        CREDENTIAL_PROCESS_KEY: _credential_process_document(credentials),
        CONFIG_KEY: _config_file(region=region, mount_path=mount_path),
    }


def format_expiration(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as the SDKs and ``kubectl`` users expect."""
    if moment.tzinfo is None:
        raise ValueError("expiration must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def operator_labels(owner: Owner) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGER, OWNER_NAME_LABEL: label_value(owner.name)}


def label_value(name: str) -> str:
    """``name`` as a label value: object names may be 253 long, labels 63."""
    if len(name) <= _LABEL_VALUE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: _LABEL_VALUE_MAX - 11]}-{digest}"


def _ini(section: Mapping[str, str]) -> str:
    # NB: no interpolation, so a '%' in a value is written and read back as is.
    parser = configparser.ConfigParser(interpolation=None)
    parser["default"] = dict(section)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def _credentials_file(credentials: IssuedCredentialsLike) -> str:
    return _ini(
        {
            "aws_access_key_id": credentials.access_key_id,
            "aws_secret_access_key": credentials.secret_access_key,
            "aws_session_token": credentials.session_token,
        }
    )


def _credential_process_document(credentials: IssuedCredentialsLike) -> str:
    document = {
        "Version": 1,
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "SessionToken": credentials.session_token,
        "Expiration": format_expiration(credentials.expiration),
    }
    return json.dumps(document, indent=2) + "\n"


def _config_file(*, region: str, mount_path: str) -> str:
    """A config whose profile prints the mounted document; needs ``cat``."""
    document = posixpath.join(mount_path, CREDENTIAL_PROCESS_KEY)
    # The SDKs split the command shell-style; quote in case the path needs it.
    command = f"cat {shlex.quote(document)}"
    return _ini({"region": region, "credential_process": command})


def _user_keys(spec: Spec) -> str:
    keys = {
        "labels": sorted(spec.secret.labels),
        "annotations": sorted(spec.secret.annotations),
    }
    return json.dumps(keys, separators=(",", ":"))


def _owner_references(owner: Owner, policy: str) -> tuple[Mapping[str, Any], ...]:
    # Retain: no reference, so the garbage collector keeps the Secret; the label
    # and the owner-uid annotation still say whose it is.
    if policy == "Retain":
        return ()
    reference = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return (reference,)


# --- hashing -------------------------------------------------------------------


def content_hash(data: Mapping[str, bytes]) -> str:
    """A digest of keys and values; it reveals an edit without showing values."""
    digest = hashlib.sha256()
    for key in sorted(data):
        value = data[key]
        # Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        digest.update(f"{len(key)}:{key}{len(value)}:".encode())
        digest.update(value)
    return f"sha256:{digest.hexdigest()}"


def decoded_data(secret: Mapping[str, Any]) -> dict[str, bytes] | None:
    """The live Secret's data as bytes; None when a value is not base64."""
    try:
        return {
            key: base64.b64decode(value, validate=True)
            for key, value in (secret.get("data") or {}).items()
        }
    except (binascii.Error, ValueError):
        return None


def _encoded(data: Mapping[str, str]) -> dict[str, bytes]:
    return {key: value.encode() for key, value in data.items()}


# --- merging into the live Secret ----------------------------------------------


def new_body(desired: DesiredSecret, *, namespace: str) -> dict[str, Any]:
    """The body of a create call."""
    metadata = {
        "name": desired.name,
        "namespace": namespace,
        "labels": dict(desired.labels),
        "annotations": dict(desired.annotations),
        "ownerReferences": [dict(ref) for ref in desired.owner_references],
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": _base64(desired.data),
    }


def is_current(live: Mapping[str, Any], desired: DesiredSecret) -> bool:
    """Whether ``live`` (API form) already says what ``desired`` says."""
    metadata = live.get("metadata") or {}
    data = decoded_data(live)
    return (
        data is not None
        and content_hash(data) == desired.content_hash
        and _contains(metadata.get("labels"), desired.labels)
        and _contains(metadata.get("annotations"), desired.annotations)
        and _our_references(metadata, desired.owner) == list(desired.owner_references)
    )


def updated_body(live: Mapping[str, Any], desired: DesiredSecret) -> dict[str, Any]:
    """``live`` rewritten to ``desired``, keeping what other tools added.

    The ``resourceVersion`` stays, so the replace fails if the Secret changed
    since it was read.
    """
    metadata = dict(live.get("metadata") or {})
    removed = _previous_user_keys(metadata)
    metadata["labels"] = _merged(
        metadata.get("labels"), desired.labels, drop=removed["labels"]
    )
    metadata["annotations"] = _merged(
        metadata.get("annotations"), desired.annotations, drop=removed["annotations"]
    )
    others = [
        ref
        for ref in metadata.get("ownerReferences") or []
        if ref.get("uid") != desired.owner.uid
    ]
    metadata["ownerReferences"] = others + [
        dict(ref) for ref in desired.owner_references
    ]
    return {**live, "metadata": metadata, "data": _base64(desired.data)}


def _contains(live: Mapping[str, str] | None, wanted: Mapping[str, str]) -> bool:
    live = live or {}
    return all(live.get(key) == value for key, value in wanted.items())


def _our_references(metadata: Mapping[str, Any], owner: Owner) -> list[Any]:
    return [
        ref
        for ref in metadata.get("ownerReferences") or []
        if ref.get("uid") == owner.uid
    ]


def _previous_user_keys(metadata: Mapping[str, Any]) -> dict[str, set[str]]:
    raw = (metadata.get("annotations") or {}).get(USER_KEYS_ANNOTATION, "{}")
    try:
        keys = json.loads(raw)
        return {kind: set(keys.get(kind, [])) for kind in ("labels", "annotations")}
    except (ValueError, AttributeError, TypeError):
        return {"labels": set(), "annotations": set()}


def _merged(
    live: Mapping[str, str] | None, wanted: Mapping[str, str], *, drop: set[str]
) -> dict[str, str]:
    kept = {key: value for key, value in (live or {}).items() if key not in drop}
    return {**kept, **wanted}


def _base64(data: Mapping[str, str]) -> dict[str, str]:
    return {
        key: base64.b64encode(value.encode()).decode() for key, value in data.items()
    }
