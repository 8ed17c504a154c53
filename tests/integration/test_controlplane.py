"""The local control plane behaves like a real cluster where the operator needs it.

Against the real kube-apiserver and kube-controller-manager: CRDs applied with
kubectl, watches, the status subresource, owner-reference garbage collection
and RBAC for minted identities.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from delegated_aws.devenv.controlplane import AuthMethod, ControlPlane

GROUP, VERSION, PLURAL = "delegatedaws.io", "v1alpha1", "delegatedawssecrets"
KIND = "DelegatedAWSSecret"
CRD_NAME = f"{PLURAL}.{GROUP}"


def _custom_object(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"region": "eu-west-1"},
    }


def _eventually(check: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout:.0f}s")
        time.sleep(0.2)


@pytest.fixture
def custom_api(kube_api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api_client)


@pytest.fixture
def core_api(kube_api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api_client)


def test_kubectl_and_apiserver_report_the_pinned_version(
    control_plane: ControlPlane,
) -> None:
    versions = json.loads(control_plane.kubectl("version", "-o", "json").stdout)

    assert versions["clientVersion"]["gitVersion"] == "v1.36.3"
    assert versions["serverVersion"]["gitVersion"] == "v1.36.3"


def test_project_crd_is_applied_with_kubectl_and_served(
    control_plane: ControlPlane, crds: list[str]
) -> None:
    assert f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME}" in crds
    resources = control_plane.kubectl(
        "api-resources", f"--api-group={GROUP}", "-o", "name"
    ).stdout.split()
    assert resources == [CRD_NAME]


@pytest.mark.usefixtures("crds")
def test_created_object_arrives_through_a_watch(
    custom_api: client.CustomObjectsApi, namespace: str
) -> None:
    listing = custom_api.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )
    since = listing["metadata"]["resourceVersion"]
    name = f"watched-{secrets.token_hex(3)}"

    custom_api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _custom_object(name)
    )

    watcher = watch.Watch()
    events = watcher.stream(
        custom_api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        resource_version=since,
        timeout_seconds=20,
    )
    try:
        first = next(events)
    finally:
        watcher.stop()
        events.close()
    assert first["type"] == "ADDED"
    assert first["object"]["metadata"]["name"] == name
    assert first["object"]["spec"]["sessionDuration"] == "1h"  # Schema default.


@pytest.mark.usefixtures("crds")
def test_status_subresource_is_written_and_read_back(
    custom_api: client.CustomObjectsApi, namespace: str
) -> None:
    name = "with-status"
    custom_api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _custom_object(name)
    )
    status = {"observedGeneration": 1, "externalId": "ext-0123456789"}

    custom_api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status}
    )
    # Through the main resource, status is ignored: it is a real subresource.
    custom_api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"status": {"externalId": "nope"}}
    )

    stored = custom_api.get_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name
    )
    assert stored["status"] == status


def _owned_secret(name: str, owner: dict[str, Any]) -> client.V1Secret:
    reference = client.V1OwnerReference(
        api_version=owner["apiVersion"],
        kind=owner["kind"],
        name=owner["metadata"]["name"],
        uid=owner["metadata"]["uid"],
        controller=True,
        block_owner_deletion=True,
    )
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, owner_references=[reference]),
        string_data={"key": "value"},
    )


def _secret_gone(core_api: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core_api.read_namespaced_secret(name, namespace)
    except client.ApiException as error:
        return bool(error.status == 404)
    return False


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize("written", ["before", "after"])
def test_secret_owned_by_a_custom_object_is_garbage_collected(
    custom_api: client.CustomObjectsApi,
    core_api: client.CoreV1Api,
    namespace: str,
    written: str,
) -> None:
    """Written before its owner is deleted, or after: the race an operator can
    lose. For the latter the collector must read the owner to find it gone."""
    owner = custom_api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _custom_object("owner")
    )
    if written == "before":
        core_api.create_namespaced_secret(namespace, _owned_secret("owned", owner))

    custom_api.delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "owner"
    )
    if written == "after":
        _eventually(lambda: _custom_gone(custom_api, namespace, "owner"))
        core_api.create_namespaced_secret(namespace, _owned_secret("owned", owner))

    # The garbage collector rescans API resources every 30 s; allow a rescan.
    _eventually(lambda: _secret_gone(core_api, namespace, "owned"), timeout=90)


def _custom_gone(api: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except client.ApiException as error:
        return bool(error.status == 404)
    return False


def test_secret_owned_by_a_configmap_is_garbage_collected(
    core_api: client.CoreV1Api, namespace: str
) -> None:
    created = core_api.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    owner = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": created.metadata.name, "uid": created.metadata.uid},
    }
    core_api.create_namespaced_secret(namespace, _owned_secret("owned", owner))

    core_api.delete_namespaced_config_map("owner", namespace)

    # The garbage collector rescans API resources every 30 s; allow a rescan.
    _eventually(lambda: _secret_gone(core_api, namespace, "owned"), timeout=90)


@pytest.fixture
def configmap_reader_role(control_plane: ControlPlane, namespace: str) -> str:
    """A Role allowing only ``get`` on configmaps, plus a configmap to get."""
    control_plane.kubectl(
        "create", "role", "configmap-reader", "-n", namespace,
        "--verb=get", "--resource=configmaps",
    )  # fmt: skip
    control_plane.kubectl("create", "configmap", "visible", "-n", namespace)
    return "configmap-reader"


@pytest.fixture
def restricted_api(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    namespace: str,
    configmap_reader_role: str,
) -> Iterator[client.CoreV1Api]:
    """A CoreV1Api for an identity bound to the configmap reader Role only."""
    kubeconfig, subject = _restricted_identity(control_plane, namespace, request.param)
    control_plane.kubectl(
        "create", "rolebinding", "reader", "-n", namespace,
        f"--role={configmap_reader_role}", subject,
    )  # fmt: skip
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def _restricted_identity(
    control_plane: ControlPlane, namespace: str, kind: str
) -> tuple[Path, str]:
    """A kubeconfig of the given ``kind`` and the rolebinding subject flag for it."""
    if kind == "serviceaccount":
        kubeconfig = control_plane.serviceaccount_kubeconfig(namespace, "reader")
        return kubeconfig, f"--serviceaccount={namespace}:reader"
    group = f"readers-{secrets.token_hex(3)}"
    method: AuthMethod = "token" if kind == "token" else "cert"
    kubeconfig = control_plane.mint_kubeconfig("alice", [group], method=method)
    # Bound through the group, so the minted groups are proven to arrive too.
    return kubeconfig, f"--group={group}"


@pytest.mark.parametrize(
    "restricted_api", ["cert", "token", "serviceaccount"], indirect=True
)
def test_restricted_identity_gets_only_what_its_role_grants(
    restricted_api: client.CoreV1Api, namespace: str
) -> None:
    assert restricted_api.read_namespaced_config_map("visible", namespace).data is None

    with pytest.raises(client.ApiException) as refused:
        restricted_api.list_namespaced_secret(namespace)
    assert refused.value.status == 403
    with pytest.raises(client.ApiException) as not_listed:
        restricted_api.list_namespaced_config_map(namespace)
    assert not_listed.value.status == 403


@pytest.mark.parametrize("method", ["cert", "token"])
def test_minted_identity_is_what_the_apiserver_sees(
    control_plane: ControlPlane, method: AuthMethod
) -> None:
    kubeconfig = control_plane.mint_kubeconfig(
        "bob", ["team-a", "team-b"], method=method
    )

    review = json.loads(
        control_plane.kubectl(
            "auth", "whoami", "-o", "json", kubeconfig=kubeconfig
        ).stdout
    )

    assert review["status"]["userInfo"]["username"] == "bob"
    assert {"team-a", "team-b", "system:authenticated"} <= set(
        review["status"]["userInfo"]["groups"]
    )
