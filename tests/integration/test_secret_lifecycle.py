"""The managed Secret on the real control plane: ownership, lifecycle, writes.

Emulated by moto: IAM roles, credentials. Supplied by the emulator layer: the
trust-policy evaluation with the External ID and, where a test says so, short
session lifetimes. Garbage collection is the real kube-controller-manager's.
Every resource here pins ``spec.externalId`` so its role can be created first,
the way a GitOps user recreating from Git does (F05).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch

from delegated_aws.devenv.controlplane import ControlPlane
from delegated_aws.models import REFRESH_ANNOTATION
from tests.fixtures.operator import (
    GROUP,
    PLURAL,
    VERSION,
    Customer,
    OperatorRunner,
    Resources,
    wait_for,
)


def _role_for(customer: Customer, external_id: str) -> str:
    return customer.create_role(customer.trust_policy(external_id))


def _spec(customer: Customer, **extra: Any) -> dict[str, Any]:
    """A complete spec: a fresh External ID and a role that demands it."""
    external_id = f"ext-{uuid.uuid4()}"
    role_arn = _role_for(customer, external_id)
    return {"roleArn": role_arn, "externalId": external_id, **extra}


def _assume_ok(customer: Customer) -> list[dict[str, Any]]:
    calls = customer.aws.client.calls(action="AssumeRole")
    return [c for c in calls if c["outcome"] == "ok"]


def _key_id(secret: dict[str, Any] | None) -> str:
    assert secret is not None
    return str(secret["data"]["AWS_ACCESS_KEY_ID"])


@dataclass(frozen=True)
class Write:
    kind: str
    name: str
    type: str
    resource_version: str


class WriteCounter:
    """Every change to Secrets and DelegatedAWSSecrets of one namespace.

    Each watch event is one write to the API server (a create, an update, a
    status patch or a delete), so counting events counts writes.
    """

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._namespace = namespace
        self._seen: list[Write] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> WriteCounter:
        ns = self._namespace
        listers = {
            "Secret": lambda **kw: self._core.list_namespaced_secret(ns, **kw),
            "DelegatedAWSSecret": lambda **kw: (
                self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, **kw
                )
            ),
        }
        for kind, lister in listers.items():
            found = lister()
            since = (
                found["metadata"]["resourceVersion"]
                if isinstance(found, dict)
                else found.metadata.resource_version
            )
            thread = threading.Thread(
                target=self._follow, args=(kind, lister, since), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _follow(self, kind: str, lister: Any, since: str) -> None:
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                lister, resource_version=since, timeout_seconds=2
            )
            for event in stream:
                obj = event["object"]
                meta = obj["metadata"] if isinstance(obj, dict) else None
                name = meta["name"] if meta else obj.metadata.name
                version = (
                    meta["resourceVersion"] if meta else obj.metadata.resource_version
                )
                since = version
                self._seen.append(Write(kind, name, event["type"], version))

    def mark(self) -> int:
        return len(self._seen)

    def since(self, mark: int = 0, *, kind: str | None = None) -> list[Write]:
        return [w for w in self._seen[mark:] if kind in (None, w.kind)]


@pytest.fixture
def writes(kube_api_client: client.ApiClient, das: Resources) -> Iterator[WriteCounter]:
    with WriteCounter(kube_api_client, das.namespace) as counter:
        yield counter


# --- ownership (F16) -----------------------------------------------------------


def _foreign_secret(das: Resources, name: str, **metadata: Any) -> dict[str, Any]:
    body = {
        "metadata": {"name": name, **metadata},
        "type": "Opaque",
        "stringData": {"token": "belongs-to-someone-else"},
    }
    das.core.create_namespaced_secret(das.namespace, body)
    found = das.secret(name)
    assert found is not None
    return found


def test_secret_of_another_owner_is_never_written(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    plain = _foreign_secret(das, "taken")
    other = das.create("other")
    owned = _foreign_secret(
        das,
        "owned",
        ownerReferences=[
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DelegatedAWSSecret",
                "name": "other",
                "uid": other["metadata"]["uid"],
                "controller": True,
            }
        ],
    )

    das.create("first", _spec(customer, secret={"name": "taken"}))
    das.create("second", _spec(customer, secret={"name": "owned"}))

    first = das.wait_condition(
        "first", "SecretSynced", status="False", reason="SecretNameConflict"
    )
    second = das.wait_condition(
        "second", "SecretSynced", status="False", reason="SecretNameConflict"
    )
    assert first["message"] == (
        f"Secret {das.namespace}/taken already exists and this resource does not "
        "own it (it has no owner); choose another spec.secret.name or delete that "
        "Secret."
    )
    assert "(it is owned by DelegatedAWSSecret other)" in second["message"]
    assert das.condition("first", "Ready")["reason"] == "SecretNameConflict"  # type: ignore[index]
    # Byte for byte, resourceVersion included: not even a no-op write.
    assert das.secret("taken") == plain
    assert das.secret("owned") == owned
    # The conflict is found before any credentials are asked for.
    assert _assume_ok(customer) == []


# --- restore (hand edits and deletions) ----------------------------------------


def test_deleted_or_edited_secret_is_restored_without_sts(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    das.create("reader", _spec(customer, secret={"labels": {"team": "data"}}))
    das.wait_condition("reader", "Ready", status="True")
    original = das.secret("reader")
    assert original is not None
    customer.aws.client.reset_calls()

    das.core.delete_namespaced_secret("reader", das.namespace)
    back = wait_for(
        lambda: das.secret("reader"), timeout=45, what="the deleted Secret back"
    )
    assert back["data"] == original["data"]

    edited = {**back["data"], "AWS_ACCESS_KEY_ID": "RURJVEVE"}  # "EDITED"
    das.core.patch_namespaced_secret("reader", das.namespace, {"data": edited})
    wait_for(
        lambda: True if _key_id(das.secret("reader")) == _key_id(original) else None,
        timeout=45,
        what="the edited key restored",
    )

    das.core.patch_namespaced_secret(
        "reader", das.namespace, {"metadata": {"labels": {"team": None}}}
    )
    wait_for(
        lambda: (das.secret("reader") or {})["metadata"]["labels"].get("team"),
        timeout=45,
        what="the removed label restored",
    )

    # Restored from the credentials the operator still holds: no STS call.
    assert customer.aws.client.calls(action="AssumeRole") == []
    assert das.secret("reader")["data"] == original["data"]  # type: ignore[index]


def test_spec_change_to_secret_metadata_is_applied_at_once(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    das.create("reader", _spec(customer))
    das.wait_condition("reader", "Ready", status="True")
    customer.aws.client.reset_calls()

    das.patch_spec(
        "reader", {"secret": {"labels": {"team": "data"}, "deletionPolicy": "Retain"}}
    )

    def applied() -> dict[str, Any] | None:
        found = das.secret("reader") or {}
        labels = found.get("metadata", {}).get("labels") or {}
        return found if labels.get("team") == "data" else None

    found = wait_for(applied, timeout=45, what="the new label on the Secret")
    assert found["metadata"].get("ownerReferences") is None
    assert customer.aws.client.calls(action="AssumeRole") == []


# --- deletion and renames (F17) ------------------------------------------------


def test_deletion_needs_no_operator_and_follows_the_policy(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    operator = run_operator()
    das.create("gone", _spec(customer))
    das.create("kept", _spec(customer, secret={"deletionPolicy": "Retain"}))
    das.wait_condition("gone", "Ready", status="True")
    das.wait_condition("kept", "Ready", status="True")
    kept_uid = das.get("kept")["metadata"]["uid"]
    for name in ("gone", "kept"):
        assert das.get(name)["metadata"].get("finalizers") is None
    operator.stop()

    das.delete("gone")
    das.delete("kept")

    # No finalizer: both objects vanish at once although no operator runs.
    for name in ("gone", "kept"):
        wait_for(
            lambda n=name: True if not _exists(das, n) else None,  # type: ignore[misc]
            timeout=5,
            what=f"{name} deleted",
        )
    wait_for(
        lambda: True if das.secret("gone") is None else None,
        timeout=60,
        what="the garbage collector to delete Secret gone",
    )
    retained = das.secret("kept")
    assert retained is not None
    meta = retained["metadata"]
    assert meta.get("ownerReferences") is None
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "delegated-aws-operator"
    assert meta["annotations"]["delegatedaws.io/owner-uid"] == kept_uid


def _exists(das: Resources, name: str) -> bool:
    try:
        das.get(name)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_renamed_secret_follows_the_deletion_policy(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    das.create("deleting", _spec(customer, secret={"name": "deleting-old"}))
    das.create(
        "retaining",
        _spec(customer, secret={"name": "retaining-old", "deletionPolicy": "Retain"}),
    )
    das.wait_condition("deleting", "Ready", status="True")
    das.wait_condition("retaining", "Ready", status="True")
    old_key = _key_id(das.secret("deleting-old"))
    customer.aws.client.reset_calls()

    das.patch_spec("deleting", {"secret": {"name": "deleting-new"}})
    das.patch_spec("retaining", {"secret": {"name": "retaining-new"}})

    moved = wait_for(
        lambda: das.secret("deleting-new"), timeout=45, what="deleting-new"
    )
    wait_for(lambda: das.secret("retaining-new"), timeout=45, what="retaining-new")
    wait_for(
        lambda: True if das.secret("deleting-old") is None else None,
        timeout=45,
        what="deleting-old removed",
    )
    assert das.secret("retaining-old") is not None
    # The same credentials move to the new name; nothing new is assumed.
    assert _key_id(moved) == old_key
    assert customer.aws.client.calls(action="AssumeRole") == []
    assert das.status("deleting")["credentials"]["secretName"] == "deleting-new"


# --- idempotency and refresh on demand -----------------------------------------


def test_idle_reconcile_writes_nothing_and_refresh_writes_twice(
    run_operator: OperatorRunner,
    das: Resources,
    customer: Customer,
    writes: WriteCounter,
    control_plane: ControlPlane,
) -> None:
    run_operator()
    das.create("reader", _spec(customer))
    das.wait_condition("reader", "Ready", status="True")
    time.sleep(2)  # The echoes of the first write settle.
    customer.aws.client.reset_calls()

    # Idle: a foreign label on the resource and a foreign annotation on the
    # Secret each make the operator reconcile; neither should write anything.
    mark = writes.mark()
    das.custom.patch_namespaced_custom_object(
        GROUP, VERSION, das.namespace, PLURAL, "reader",
        {"metadata": {"labels": {"touched": "yes"}}},
    )  # fmt: skip
    das.core.patch_namespaced_secret(
        "reader", das.namespace, {"metadata": {"annotations": {"seen": "yes"}}}
    )
    time.sleep(3)
    assert len(writes.since(mark)) == 2  # The test's own two patches.
    assert customer.aws.client.calls(action="AssumeRole") == []

    # On demand, through the CLI: one AssumeRole, one Secret write, one status
    # patch (plus the CLI's own annotation patch).
    before = _key_id(das.secret("reader"))
    mark = writes.mark()
    _cli(control_plane, "refresh", "reader", "-n", das.namespace)
    wait_for(
        lambda: True if _key_id(das.secret("reader")) != before else None,
        timeout=45,
        what="a refresh after delegated-aws refresh",
    )
    time.sleep(3)
    assert _kinds(writes.since(mark)) == {"DelegatedAWSSecret": 2, "Secret": 1}
    assert len(_assume_ok(customer)) == 1

    # On demand, through the annotation set by hand.
    before = _key_id(das.secret("reader"))
    mark = writes.mark()
    control_plane.kubectl(
        "annotate", "-n", das.namespace, "--overwrite", f"{PLURAL}/reader",
        f"{REFRESH_ANNOTATION}={datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
    )  # fmt: skip
    wait_for(
        lambda: True if _key_id(das.secret("reader")) != before else None,
        timeout=45,
        what="a refresh after the annotation",
    )
    time.sleep(3)
    assert _kinds(writes.since(mark)) == {"DelegatedAWSSecret": 2, "Secret": 1}
    assert len(_assume_ok(customer)) == 2


def _kinds(found: list[Write]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for write in found:
        counts[write.kind] = counts.get(write.kind, 0) + 1
    return counts


def _cli(plane: ControlPlane, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["KUBECONFIG"] = str(plane.kubeconfig)
    done = subprocess.run(
        [sys.executable, "-m", "delegated_aws", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


# --- GitOps (F18) ---------------------------------------------------------------


def test_gitops_manifest_shows_no_drift_when_ready(
    run_operator: OperatorRunner,
    das: Resources,
    customer: Customer,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    run_operator()
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DelegatedAWSSecret",
        "metadata": {
            "name": "reader",
            "namespace": das.namespace,
            "labels": {"app": "reader"},
            "annotations": {"owner": "team-data"},
        },
        "spec": _spec(customer, region="eu-west-1"),
    }
    path = tmp_path / "reader.yaml"
    path.write_text(yaml.safe_dump(manifest))
    control_plane.kubectl(
        "apply", "--server-side", "--field-manager=argocd-controller", "-f", str(path)
    )
    das.wait_condition("reader", "Ready", status="True")

    diff = control_plane.kubectl(
        "diff", "--server-side", "--field-manager=argocd-controller", "-f", str(path),
        check=False,
    )  # fmt: skip

    assert (diff.returncode, diff.stdout) == (0, "")
    live = das.get("reader")
    # Only the schema's own default is added, by the API server, not the operator.
    assert live["spec"] == {**manifest["spec"], "sessionDuration": "1h"}
    assert live["metadata"].get("finalizers") is None
    assert live["metadata"]["annotations"] == {"owner": "team-data"}
    assert live["metadata"]["labels"] == {"app": "reader"}
    assert live["metadata"]["generation"] == 1
