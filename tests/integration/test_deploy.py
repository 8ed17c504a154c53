"""deploy/ on the real API server, and the operator running as its ServiceAccount.

No kubelet runs the Deployment's pod here; instead the operator runs as a
process holding a token of the ServiceAccount the manifests create, so the
main flow passing proves the RBAC in deploy/ is enough.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from delegated_aws.devenv.controlplane import ControlPlane
from tests.fixtures.operator import Customer, OperatorRunner, Resources

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SYSTEM_NS, ACCOUNT = "delegated-aws-system", "delegated-aws-operator"


@pytest.fixture
def no_cluster_binding(control_plane: ControlPlane) -> Iterator[None]:
    """Each install starts and ends without the cluster-wide binding."""
    unbind = ("delete", "clusterrolebinding", ACCOUNT, "--ignore-not-found")
    control_plane.kubectl(*unbind)
    yield
    control_plane.kubectl(*unbind)


def _main_flow(das: Resources, customer: Customer, name: str, **metadata: str) -> None:
    das.create(name, {"region": "eu-west-1"}, **metadata)
    role_arn = customer.create_role_from_status(das.wait_status(name, "instructions"))
    das.patch_spec(name, {"roleArn": role_arn})
    das.wait_condition(name, "Ready", status="True")
    assert das.secret(name) is not None


def _forbidden(plane: ControlPlane, kubeconfig: Path, *args: str) -> str:
    found = plane.kubectl(*args, kubeconfig=kubeconfig, check=False)
    assert found.returncode != 0
    return found.stderr


@pytest.mark.usefixtures("no_cluster_binding")
def test_cluster_install_serves_every_namespace_as_the_service_account(
    control_plane: ControlPlane,
    run_operator: OperatorRunner,
    das: Resources,
    customer: Customer,
) -> None:
    applied = control_plane.kubectl("apply", "-k", str(DEPLOY / "overlays/cluster"))
    assert "deployment.apps/delegated-aws-operator" in applied.stdout
    assert "clusterkopfpeering.kopf.dev/delegated-aws-operator" in applied.stdout
    kubeconfig = control_plane.serviceaccount_kubeconfig(SYSTEM_NS, ACCOUNT)

    # Cluster-wide, but only this test's resources: the label is the shard.
    run_operator(
        kubeconfig=kubeconfig,
        namespaces="[]",
        label_selector=f"test={das.namespace}",
        peering=ACCOUNT,
    )

    _main_flow(das, customer, "reader", labels={"test": das.namespace})


@pytest.mark.usefixtures("no_cluster_binding")
def test_namespace_install_is_confined_to_its_namespace(
    control_plane: ControlPlane,
    run_operator: OperatorRunner,
    das: Resources,
    customer: Customer,
    tmp_path: Path,
) -> None:
    # The overlay names customer-data; this copy serves the test's namespace.
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    for path in (copy / "overlays/namespace").iterdir():
        path.write_text(path.read_text().replace("customer-data", das.namespace))
    control_plane.kubectl("apply", "-k", str(copy / "overlays/namespace"))
    deployment = json.loads(
        control_plane.kubectl(
            "get", "deployment", ACCOUNT, "-n", SYSTEM_NS, "-o", "json"
        ).stdout
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    kubeconfig = control_plane.serviceaccount_kubeconfig(SYSTEM_NS, ACCOUNT)

    run_operator(
        kubeconfig=kubeconfig,
        namespaces=env["DELEGATED_AWS_NAMESPACES"],
        peering=ACCOUNT,
    )

    assert json.loads(env["DELEGATED_AWS_NAMESPACES"]) == [das.namespace]
    _main_flow(das, customer, "reader")
    refused = _forbidden(
        control_plane, kubeconfig, "get", "secrets", "-n", "kube-system"
    )
    assert (
        f'User "system:serviceaccount:{SYSTEM_NS}:{ACCOUNT}" cannot list resource '
        '"secrets" in API group "" in the namespace "kube-system"'
    ) in refused
    _forbidden(control_plane, kubeconfig, "get", "secrets", "-A")
