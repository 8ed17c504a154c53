"""Operating the operator: status survives the schema (F12), a dropped API
connection (F13), peers and shards (F14), and the CLI and kubectl plugin.

Emulated: IAM and STS in moto with the emulator's trust evaluation. Nothing is
injected at the AWS boundary here; the API connection is cut by a TCP relay.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from delegated_aws.devenv.controlplane import ControlPlane
from delegated_aws.models import Status, dump
from tests.fixtures.operator import Customer, OperatorRunner, Resources, wait_for
from tests.unit.test_crd import model_fields

VENV_BIN = Path(sys.executable).parent
# The printer columns and field descriptions as a person sees them, kept for
# reading after a run.
OUTPUTS = Path(tempfile.gettempdir()) / "delegated-aws-cli-outputs.txt"
KMS_KEY = "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _ready_reader(das: Resources, customer: Customer, name: str = "reader") -> str:
    das.wait_status(name, "instructions")
    role_arn = customer.create_role_from_status(das.status(name))
    das.patch_spec(name, {"roleArn": role_arn})
    das.wait_condition(name, "Ready", status="True")
    return role_arn


def _assume_outcomes(customer: Customer, role_arn: str) -> list[str]:
    calls = customer.aws.client.calls(action="AssumeRole")
    return sorted(str(c["outcome"]) for c in calls if c.get("role_arn") == role_arn)


def _paths(value: Any, prefix: str = "") -> set[str]:
    """Dotted field paths present in a JSON value (list items merged)."""
    found: set[str] = set()
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            for key, child in item.items():
                found.add(f"{prefix}{key}")
                found |= _paths(child, f"{prefix}{key}.")
    return found


# --- F12 --------------------------------------------------------------------


def test_every_status_field_survives_the_schema(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    das.create(
        "reader",
        {
            "resources": {"s3Buckets": ["acme-data"], "kmsKeyArns": [KMS_KEY]},
            "accessChecks": {"enabled": True},
        },
    )
    _ready_reader(das, customer)
    wait_for(lambda: das.status("reader").get("accessChecks"), what="access checks")

    stored = das.status("reader")

    # Nothing pruned: the API returns exactly what the model dumps, and every
    # field the model knows was written and kept.
    assert dump(Status.model_validate(stored)) == stored
    assert _paths(stored) == model_fields(Status)


# --- F13 --------------------------------------------------------------------


class Relay:
    """A TCP relay on loopback that a test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()

    def start(self) -> Relay:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Close every connection and refuse new ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _via(kubeconfig: Path, relay: Relay, path: Path) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    path.write_text(yaml.safe_dump(config))
    return path


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


def test_dropped_connection_fails_liveness_then_the_next_edit_is_handled(
    control_plane: ControlPlane,
    run_operator: OperatorRunner,
    das: Resources,
    tmp_path: Path,
) -> None:
    host, port = control_plane.server.removeprefix("https://").split(":")
    relay = Relay((host, int(port))).start()
    health_port = _free_port()
    run_operator(
        kubeconfig=_via(control_plane.kubeconfig, relay, tmp_path / "relay.yaml"),
        health_port=str(health_port),
        deaf_after="4s",
    )
    das.create("reader", {"resources": {"s3Buckets": ["first-bucket"]}})
    das.wait_status("reader", "instructions")
    wait_for(lambda: _health(health_port) == 200 or None, what="a live operator")

    relay.cut()
    wait_for(lambda: _health(health_port) == 500 or None, timeout=30, what="deafness")
    relay.start()
    das.patch_spec("reader", {"resources": {"s3Buckets": ["second-bucket"]}})

    def policy() -> str | None:
        text = das.status("reader")["instructions"].get("permissionsPolicy", "")
        return text if "second-bucket" in text else None

    assert "arn:aws:s3:::second-bucket" in wait_for(
        policy, timeout=90, what="the edit made after the cut"
    )
    wait_for(lambda: _health(health_port) == 200 or None, timeout=30, what="hearing")


# --- F14 --------------------------------------------------------------------


def _log(operator: Any) -> str:
    return str(operator.log_path.read_text(errors="replace"))


def test_two_peers_elect_one_that_acts(
    control_plane: ControlPlane,
    run_operator: OperatorRunner,
    das: Resources,
    customer: Customer,
) -> None:
    control_plane.kubectl(
        "apply",
        "-n",
        das.namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "KopfPeering",
                "metadata": {"name": "das"},
            }
        ),
    )
    peers = [run_operator(peering="das"), run_operator(peering="das")]
    active = wait_for(
        lambda: [p for p in peers if "is the active peer" in _log(p)] or None,
        timeout=30,
        what="an active peer",
    )
    das.create("reader")

    role_arn = _ready_reader(das, customer)
    secret_version = das.secret("reader")["metadata"]["resourceVersion"]  # type: ignore[index]
    time.sleep(5)  # Room for a second instance's (wrong) calls and writes.

    # One validation: the right External ID, then the probe's wrong one.
    assert _assume_outcomes(customer, role_arn) == ["AccessDenied", "ok"]
    assert das.secret("reader")["metadata"]["resourceVersion"] == secret_version  # type: ignore[index]
    assert len(active) == 1
    # Still exactly one: the other peer never took over meanwhile.
    assert [p for p in peers if "is the active peer" in _log(p)] == active
    idle = next(p for p in peers if p is not active[0])
    assert "reader Ready=True" in _log(active[0])
    assert "reader" not in _log(idle)


def test_disjoint_selectors_split_resources(
    run_operator: OperatorRunner, das: Resources
) -> None:
    shard_a = run_operator(label_selector="shard=a")
    shard_b = run_operator(label_selector="shard=b")

    das.create("alpha", labels={"shard": "a"})
    das.create("beta", labels={"shard": "b"})

    das.wait_status("alpha", "instructions")
    das.wait_status("beta", "instructions")
    assert "/alpha RoleValidated=False" in _log(shard_a)
    assert "/beta" not in _log(shard_a)
    assert "/beta RoleValidated=False" in _log(shard_b)
    assert "/alpha" not in _log(shard_b)


# --- CLI ----------------------------------------------------------------------


@pytest.fixture
def cli_env(control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    """The venv's console scripts on PATH, the admin kubeconfig in KUBECONFIG."""
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["delegated-aws", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.usefixtures("cli_env")
def test_cli_and_kubectl_plugin_against_the_api(
    control_plane: ControlPlane,
    run_operator: OperatorRunner,
    das: Resources,
    customer: Customer,
) -> None:
    run_operator()
    das.create("waiting")
    das.create("reader")
    role_arn = _ready_reader(das, customer)
    das.wait_condition("waiting", "Ready", status="False", reason="AwaitingRoleArn")
    expiration = das.status("reader")["credentials"]["expiration"]
    ns = das.namespace

    instructions = _cli("instructions", "waiting", "-n", ns)
    status = _cli("status", "-n", ns)
    # kubectl refuses flags before a plugin name: KUBECONFIG says where to go.
    plugin = subprocess.run(
        [str(control_plane.bin_dir / "kubectl"), "delegated-aws", "status", "-n", ns],
        capture_output=True,
        text=True,
        check=True,
    )
    refresh = _cli("refresh", "reader", "-n", ns)
    missing = _cli("refresh", "nope", "-n", ns)

    assert instructions.returncode == 0
    external_id = das.status("waiting")["externalId"]
    assert f"External ID:        {external_id}\n" in instructions.stdout
    assert "Trust policy:\n{" in instructions.stdout
    rows = [line.split() for line in status.stdout.splitlines()]
    assert rows == [
        ["NAMESPACE", "NAME", "READY", "REASON", "EXPIRES"],
        [ns, "reader", "True", "Ready", expiration],
        [ns, "waiting", "False", "AwaitingRoleArn"],
    ]
    assert plugin.stdout == status.stdout
    assert json.loads(refresh.stdout)["name"] == "reader"
    assert (missing.returncode, missing.stderr) == (
        1,
        f"delegated-aws: DelegatedAWSSecret 'nope' not found in namespace '{ns}'; "
        "check the name, or pass -n NAMESPACE\n",
    )
    wait_for(
        lambda: _assume_outcomes(customer, role_arn).count("ok") == 2 or None,
        what="new credentials after refresh",
    )
    _save_outputs(control_plane, ns)


def _save_outputs(plane: ControlPlane, namespace: str) -> None:
    table = plane.kubectl("get", "das", "-o", "wide", "-n", namespace).stdout
    explain = plane.kubectl("explain", "delegatedawssecret.spec").stdout
    assert table.split()[:7] == [
        "NAME",
        "READY",
        "ROLE",
        "SECRET",
        "EXPIRES",
        "AGE",
        "MESSAGE",
    ]
    OUTPUTS.write_text(
        f"$ kubectl get das -o wide\n{table}\n"
        f"$ kubectl explain delegatedawssecret.spec\n{explain}"
    )
