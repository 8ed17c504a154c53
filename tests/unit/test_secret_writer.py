"""SecretWriter over an in-memory CoreV1Api: what it writes and what it never does."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
import urllib3
from kubernetes.client import ApiClient, V1Secret
from kubernetes.client.exceptions import ApiException

from delegated_aws.messages import Reason
from delegated_aws.models import Spec
from delegated_aws.secret_content import DesiredSecret, Owner, build_secret, new_body
from delegated_aws.secrets import (
    SecretConflict,
    SecretForbidden,
    SecretRejected,
    SecretRetry,
    SecretWriter,
)

T = TypeVar("T")
NS = "team-a"
ROLE = "arn:aws:iam::111122223333:role/reader"
OWNER = Owner(name="reader", uid="uid-reader")
EXPIRY = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
SECRET_VALUES = ("AKIDVALUE", "SECRETVALUE", "TOKENVALUE", "ROTATEDTOKEN")


@dataclass(frozen=True)
class FakeCredentials:
    access_key_id: str = "AKIDVALUE"
    secret_access_key: str = "SECRETVALUE"
    session_token: str = "TOKENVALUE"
    expiration: datetime = EXPIRY
    assumed_role_arn: str = "arn:aws:sts::111122223333:assumed-role/reader/s"
    issued_at: datetime = EXPIRY - timedelta(hours=1)


def api_error(status: int, reason: str = "", message: str = "", **extra: Any) -> Any:
    """An ApiException as the client raises it, with a Status body."""
    error = ApiException(status=status, reason=reason)
    status_body = {"kind": "Status", "reason": reason, "message": message, **extra}
    error.body = json.dumps(status_body)
    return error


@dataclass
class FakeCoreV1Api:
    """The four Secret calls of ``CoreV1Api``, over a dict of API-form bodies."""

    store: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    # Called before a verb runs, to stage races; may raise to inject errors.
    before: dict[str, Callable[[], None]] = field(default_factory=dict)
    kwargs: list[dict[str, Any]] = field(default_factory=list)
    _version: int = 0

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] != "read"]

    def put(self, body: dict[str, Any]) -> None:
        """Store a Secret as the API server would, outside the writer."""
        self._version += 1
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("namespace", NS)
        meta.setdefault("uid", f"secret-uid-{meta['name']}")
        meta["resourceVersion"] = str(self._version)
        self.store[(meta["namespace"], meta["name"])] = body

    def read_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
        self._enter("read", name, kw)
        body = self._existing(namespace, name)
        response = SimpleNamespace(data=json.dumps(body))
        return ApiClient().deserialize(response, "V1Secret")

    def create_namespaced_secret(self, namespace: str, body: Any, **kw: Any) -> Any:
        body = _plain(body)
        self._enter("create", body["metadata"]["name"], kw)
        if (namespace, body["metadata"]["name"]) in self.store:
            raise api_error(409, "AlreadyExists", "secrets already exists")
        self.put(body)

    def replace_namespaced_secret(
        self, name: str, namespace: str, body: Any, **kw: Any
    ) -> Any:
        body = _plain(body)
        self._enter("replace", name, kw)
        live = self._existing(namespace, name)
        version = body["metadata"].get("resourceVersion")
        if version != live["metadata"]["resourceVersion"]:
            raise api_error(409, "Conflict", "the object has been modified")
        self.put(body)

    def delete_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
        self._enter("delete", name, kw)
        live = self._existing(namespace, name)
        preconditions = (kw.get("body") or {}).get("preconditions") or {}
        for key in ("uid", "resourceVersion"):
            if key in preconditions and preconditions[key] != live["metadata"][key]:
                raise api_error(409, "Conflict", "precondition failed")
        del self.store[(namespace, name)]

    def _enter(self, verb: str, name: str, kw: dict[str, Any]) -> None:
        self.calls.append((verb, name))
        self.kwargs.append(kw)
        hook = self.before.pop(verb, None)
        if hook is not None:
            hook()

    def _existing(self, namespace: str, name: str) -> dict[str, Any]:
        if (namespace, name) not in self.store:
            raise api_error(404, "NotFound", "secrets not found")
        return copy.deepcopy(self.store[(namespace, name)])


def _plain(body: Any) -> dict[str, Any]:
    if isinstance(body, V1Secret):
        body = ApiClient().sanitize_for_serialization(body)
    return copy.deepcopy(body)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def desired(
    owner: Owner = OWNER, *, token: str = "TOKENVALUE", **secret: Any
) -> DesiredSecret:
    spec = Spec.model_validate({"roleArn": ROLE, "secret": secret})
    credentials = FakeCredentials(session_token=token)
    return build_secret(spec, credentials, owner=owner, region="eu-west-1")


@pytest.fixture
def api() -> FakeCoreV1Api:
    return FakeCoreV1Api()


@pytest.fixture
def writer(api: FakeCoreV1Api) -> SecretWriter:
    return SecretWriter(api, request_timeout=7)


# --- create, unchanged, update -------------------------------------------------


def test_created(api: FakeCoreV1Api, writer: SecretWriter) -> None:
    assert run(writer.write(NS, desired())) == "created"

    assert api.writes == [("create", "reader")]
    stored = api.store[(NS, "reader")]
    assert stored["type"] == "Opaque"
    assert stored["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid


@dataclass
class FakeOwners:
    """Answers whether the owner exists, and records who asked."""

    present_now: bool
    asked: list[tuple[str, Owner]] = field(default_factory=list)

    async def present(self, namespace: str, owner: Owner) -> bool:
        self.asked.append((namespace, owner))
        return self.present_now


def test_no_secret_is_created_for_a_deleted_owner(
    api: FakeCoreV1Api, caplog: pytest.LogCaptureFixture
) -> None:
    owners = FakeOwners(present_now=False)
    writer = SecretWriter(api, owners=owners)

    with caplog.at_level(logging.INFO, logger="delegated_aws.secrets"):
        outcome = run(writer.write(NS, desired(name="creds")))

    assert outcome == "abandoned"
    assert api.writes == []
    assert owners.asked == [(NS, OWNER)]
    assert caplog.messages == [
        "Secret team-a/creds not created: DelegatedAWSSecret reader was deleted "
        "meanwhile."
    ]


def test_owner_is_asked_only_before_a_create(api: FakeCoreV1Api) -> None:
    owners = FakeOwners(present_now=True)
    writer = SecretWriter(api, owners=owners)

    assert run(writer.write(NS, desired())) == "created"
    assert run(writer.write(NS, desired(token="ROTATEDTOKEN"))) == "updated"

    assert owners.asked == [(NS, OWNER)]
    assert api.writes == [("create", "reader"), ("replace", "reader")]


def test_read_after_create(api: FakeCoreV1Api, writer: SecretWriter) -> None:
    run(writer.write(NS, desired()))

    view = run(writer.read(NS, "reader", owner=OWNER))

    assert view is not None
    assert view.expiration == EXPIRY
    assert view.role_arn == ROLE
    assert view.recorded_hash == desired().content_hash
    assert not view.edited
    assert view.garbage_collected


def test_absent_reads_none(writer: SecretWriter) -> None:
    assert run(writer.read(NS, "reader", owner=OWNER)) is None


def test_no_op_reconcile_writes_nothing(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    run(writer.write(NS, desired()))
    before = copy.deepcopy(api.store)
    api.calls.clear()

    assert run(writer.write(NS, desired())) == "unchanged"

    assert api.writes == []
    assert api.store == before


def test_new_credentials_update(api: FakeCoreV1Api, writer: SecretWriter) -> None:
    run(writer.write(NS, desired()))
    api.calls.clear()

    assert run(writer.write(NS, desired(token="ROTATEDTOKEN"))) == "updated"

    assert api.writes == [("replace", "reader")]
    view = run(writer.read(NS, "reader", owner=OWNER))
    assert view is not None
    assert view.recorded_hash == desired(token="ROTATEDTOKEN").content_hash
    assert not view.edited


def test_update_keeps_what_others_added(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    run(writer.write(NS, desired()))
    live = api.store[(NS, "reader")]
    live["metadata"]["labels"]["added-by-policy-engine"] = "yes"
    live["metadata"]["finalizers"] = ["example.com/keep"]

    run(writer.write(NS, desired(token="ROTATEDTOKEN")))

    meta = api.store[(NS, "reader")]["metadata"]
    assert meta["labels"]["added-by-policy-engine"] == "yes"
    assert meta["finalizers"] == ["example.com/keep"]


def test_calls_carry_a_timeout(api: FakeCoreV1Api, writer: SecretWriter) -> None:
    run(writer.write(NS, desired()))

    assert {kw["_request_timeout"] for kw in api.kwargs} == {7}


# --- hand edits ----------------------------------------------------------------


def test_hand_edit_detected_and_restored(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    run(writer.write(NS, desired()))
    api.store[(NS, "reader")]["data"]["AWS_SESSION_TOKEN"] = "aGFuZC1lZGl0"

    view = run(writer.read(NS, "reader", owner=OWNER))
    assert view is not None and view.edited

    assert run(writer.write(NS, desired())) == "updated"
    view = run(writer.read(NS, "reader", owner=OWNER))
    assert view is not None and not view.edited


def test_removed_hash_annotation_counts_as_edited(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    run(writer.write(NS, desired()))
    del api.store[(NS, "reader")]["metadata"]["annotations"][
        "delegatedaws.io/content-hash"
    ]

    view = run(writer.read(NS, "reader", owner=OWNER))

    assert view is not None and view.edited


# --- not ours ------------------------------------------------------------------


def _foreign(**metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "reader", **metadata},
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg=="},
    }


FOREIGN = {
    "no-owner": (_foreign(), "it has no owner"),
    "other-resource": (
        _foreign(
            ownerReferences=[
                {
                    "apiVersion": "delegatedaws.io/v1alpha1",
                    "kind": "DelegatedAWSSecret",
                    "name": "other-name",
                    "uid": "uid-other",
                    "controller": True,
                }
            ]
        ),
        "it is owned by DelegatedAWSSecret other-name",
    ),
    "other-controller": (
        _foreign(
            ownerReferences=[
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": "uid-web",
                    "controller": True,
                }
            ]
        ),
        "it is owned by Deployment web",
    ),
    "retained-by-other": (
        _foreign(
            labels={
                "app.kubernetes.io/managed-by": "delegated-aws-operator",
                "delegatedaws.io/owner-name": "other-name",
            },
            annotations={"delegatedaws.io/owner-uid": "uid-other"},
        ),
        "it was retained by DelegatedAWSSecret other-name",
    ),
    "forged-labels-naming-us": (
        _foreign(
            labels={
                "app.kubernetes.io/managed-by": "delegated-aws-operator",
                "delegatedaws.io/owner-name": "reader",
            },
            annotations={"delegatedaws.io/owner-uid": OWNER.uid},
        ),
        "its labels name this resource, but the operator did not write it",
    ),
    "our-uid-in-annotation-only": (
        _foreign(annotations={"delegatedaws.io/owner-uid": OWNER.uid}),
        "it has no owner",
    ),
}


@pytest.mark.parametrize(("secret", "holder"), FOREIGN.values(), ids=FOREIGN.keys())
def test_conflict_leaves_it_byte_for_byte(
    api: FakeCoreV1Api, writer: SecretWriter, secret: dict[str, Any], holder: str
) -> None:
    api.put(secret)
    before = copy.deepcopy(api.store)

    with pytest.raises(SecretConflict) as raised:
        run(writer.write(NS, desired()))

    assert raised.value.reason == Reason.SECRET_NAME_CONFLICT
    assert raised.value.message == (
        f"Secret team-a/reader already exists and this resource does not own it "
        f"({holder}); choose another spec.secret.name or delete that Secret."
    )
    assert api.writes == []
    assert api.store == before


@pytest.mark.parametrize(("secret", "holder"), FOREIGN.values(), ids=FOREIGN.keys())
def test_conflict_on_read_and_no_delete(
    api: FakeCoreV1Api, writer: SecretWriter, secret: dict[str, Any], holder: str
) -> None:
    api.put(secret)
    before = copy.deepcopy(api.store)

    with pytest.raises(SecretConflict, match=holder):
        run(writer.read(NS, "reader", owner=OWNER))
    assert run(writer.delete_if_owned(NS, "reader", owner=OWNER)) is False

    assert api.writes == []
    assert api.store == before


def test_earlier_incarnation_waits_for_garbage_collector(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    api.put(new_secret(desired(Owner(name="reader", uid="uid-deleted"))))
    before = copy.deepcopy(api.store)

    with pytest.raises(SecretRetry, match="garbage collector"):
        run(writer.write(NS, desired()))

    assert api.store == before


def test_secret_being_deleted_is_retried(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    run(writer.write(NS, desired()))
    api.store[(NS, "reader")]["metadata"]["deletionTimestamp"] = "2026-12-03T16:00:00Z"

    with pytest.raises(SecretRetry, match="being deleted"):
        run(writer.write(NS, desired(token="ROTATEDTOKEN")))


# --- Retain ---------------------------------------------------------------------


def test_retain_is_owned_by_label_and_annotation(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    assert run(writer.write(NS, desired(deletionPolicy="Retain"))) == "created"
    stored = api.store[(NS, "reader")]
    assert stored["metadata"]["ownerReferences"] == []

    view = run(writer.read(NS, "reader", owner=OWNER))
    assert view is not None and not view.garbage_collected
    assert run(writer.write(NS, desired(deletionPolicy="Retain"))) == "unchanged"
    new = desired(token="ROTATEDTOKEN", deletionPolicy="Retain")
    assert run(writer.write(NS, new)) == "updated"


def test_retained_secret_adopted_by_recreated_resource(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    earlier = Owner(name="reader", uid="uid-before-gitops-recreate")
    run(writer.write(NS, desired(earlier, deletionPolicy="Retain")))

    assert run(writer.write(NS, desired())) == "updated"

    meta = api.store[(NS, "reader")]["metadata"]
    assert meta["annotations"]["delegatedaws.io/owner-uid"] == OWNER.uid
    assert meta["ownerReferences"][0]["uid"] == OWNER.uid


@pytest.mark.parametrize(
    ("before", "after"), [("Delete", "Retain"), ("Retain", "Delete")]
)
def test_policy_switch_moves_owner_reference(
    api: FakeCoreV1Api, writer: SecretWriter, before: str, after: str
) -> None:
    run(writer.write(NS, desired(deletionPolicy=before)))

    assert run(writer.write(NS, desired(deletionPolicy=after))) == "updated"

    refs = api.store[(NS, "reader")]["metadata"]["ownerReferences"]
    assert len(refs) == (1 if after == "Delete" else 0)


# --- races ---------------------------------------------------------------------


def new_secret(secret: DesiredSecret) -> dict[str, Any]:
    return new_body(secret, namespace=NS)


def test_create_race_with_ourselves(api: FakeCoreV1Api, writer: SecretWriter) -> None:
    # Another replica wrote older credentials between our read and our create.
    api.before["create"] = lambda: api.put(new_secret(desired(token="ROTATEDTOKEN")))

    assert run(writer.write(NS, desired())) == "updated"

    assert [verb for verb, _ in api.calls] == ["read", "create", "read", "replace"]


def test_create_race_with_a_foreign_secret(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    api.before["create"] = lambda: api.put(_foreign())

    with pytest.raises(SecretConflict):
        run(writer.write(NS, desired()))

    assert api.store[(NS, "reader")]["data"] == {"password": "aHVudGVyMg=="}
    assert api.writes == [("create", "reader")]


def test_concurrent_update_is_a_retry(api: FakeCoreV1Api, writer: SecretWriter) -> None:
    run(writer.write(NS, desired()))
    stored = api.store[(NS, "reader")]
    api.before["replace"] = lambda: api.put(copy.deepcopy(stored))

    with pytest.raises(SecretRetry) as raised:
        run(writer.write(NS, desired(token="ROTATEDTOKEN")))

    assert raised.value.delay > 0
    assert "changed while being written" in raised.value.message


def test_deleted_during_update_is_a_retry(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    run(writer.write(NS, desired()))
    api.before["replace"] = lambda: api.store.clear()

    with pytest.raises(SecretRetry, match="deleted while being updated"):
        run(writer.write(NS, desired(token="ROTATEDTOKEN")))


# --- delete ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
def test_delete_if_owned(api: FakeCoreV1Api, writer: SecretWriter, policy: str) -> None:
    run(writer.write(NS, desired(deletionPolicy=policy)))

    assert run(writer.delete_if_owned(NS, "reader", owner=OWNER)) is True

    assert api.store == {}
    preconditions = api.kwargs[-1]["body"]["preconditions"]
    assert preconditions == {"uid": "secret-uid-reader", "resourceVersion": "1"}


def test_delete_absent(writer: SecretWriter) -> None:
    assert run(writer.delete_if_owned(NS, "reader", owner=OWNER)) is False


def test_delete_replaced_meanwhile_is_a_retry(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    run(writer.write(NS, desired()))
    api.before["delete"] = lambda: api.put(api.store[(NS, "reader")])

    with pytest.raises(SecretRetry):
        run(writer.delete_if_owned(NS, "reader", owner=OWNER))

    assert (NS, "reader") in api.store


# --- API failures ---------------------------------------------------------------


def _failing(error: Exception) -> Callable[[], None]:
    def fail() -> None:
        raise error

    return fail


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (
            api_error(403, "Forbidden", 'secrets is forbidden: User "x"'),
            SecretForbidden,
            "The operator's RBAC does not allow 'get' on secrets in namespace team-a; "
            "grant it to the operator's service account.",
        ),
        (
            api_error(403, "Forbidden", "namespace team-a is being terminated"),
            SecretRetry,
            "Namespace team-a is being deleted; Secret team-a/reader is not written.",
        ),
        (
            api_error(500, "InternalError"),
            SecretRetry,
            "The Kubernetes API answered HTTP 500 to get Secret team-a/reader; "
            "retrying.",
        ),
        (
            api_error(429, "TooManyRequests"),
            SecretRetry,
            "The Kubernetes API answered HTTP 429 to get Secret team-a/reader; "
            "retrying.",
        ),
        (
            urllib3.exceptions.ProtocolError("Connection aborted."),
            SecretRetry,
            "Could not reach the Kubernetes API to get Secret team-a/reader "
            "(ProtocolError); retrying.",
        ),
        (
            ConnectionRefusedError(111, "refused"),
            SecretRetry,
            "Could not reach the Kubernetes API to get Secret team-a/reader "
            "(ConnectionRefusedError); retrying.",
        ),
    ],
    ids=["forbidden", "terminating", "5xx", "throttled", "reset", "refused"],
)
def test_read_failures(
    api: FakeCoreV1Api,
    writer: SecretWriter,
    error: Exception,
    kind: type[Exception],
    text: str,
) -> None:
    api.before["read"] = _failing(error)

    with pytest.raises(kind) as raised:
        run(writer.write(NS, desired()))

    assert str(raised.value) == text


def test_forbidden_create_names_the_verb(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    api.before["create"] = _failing(api_error(403, "Forbidden"))

    with pytest.raises(SecretForbidden, match="'create' on secrets"):
        run(writer.write(NS, desired()))


def test_invalid_names_fields_not_values(
    api: FakeCoreV1Api, writer: SecretWriter
) -> None:
    causes = [
        {"field": "metadata.labels", "message": "Invalid value: 'bad value'"},
    ]
    error = api_error(422, "Invalid", "bad value", details={"causes": causes})
    api.before["create"] = _failing(error)

    with pytest.raises(SecretRejected) as raised:
        run(writer.write(NS, desired()))

    assert raised.value.message == (
        "The API server rejected Secret team-a/reader as invalid "
        "(metadata.labels); check spec.secret.labels and spec.secret.annotations."
    )


def test_retry_after_is_honoured(api: FakeCoreV1Api, writer: SecretWriter) -> None:
    error = api_error(429, "TooManyRequests")
    error.headers = {"Retry-After": "3"}
    api.before["read"] = _failing(error)

    with pytest.raises(SecretRetry) as raised:
        run(writer.write(NS, desired()))

    assert raised.value.delay == 3


# --- no values in logs or errors --------------------------------------------------


def test_no_secret_value_in_logs_or_views(
    api: FakeCoreV1Api, writer: SecretWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="delegated_aws")

    run(writer.write(NS, desired()))
    run(writer.write(NS, desired()))
    run(writer.write(NS, desired(token="ROTATEDTOKEN")))
    view = run(writer.read(NS, "reader", owner=OWNER))
    run(writer.delete_if_owned(NS, "reader", owner=OWNER))

    texts = [record.getMessage() for record in caplog.records] + [repr(view)]
    assert any("created" in text and ROLE in text for text in texts)
    for text in texts:
        for value in SECRET_VALUES:
            assert value not in text
