"""Credentials reaching a workload, refresh timing and operator restarts (F09, F10).

Emulated by moto: IAM roles, credentials, GetCallerIdentity. Supplied by the
emulator layer: the trust-policy evaluation with the External ID, the short
session lifetimes these tests set (AWS never grants less than 15 minutes) and
``ExpiredToken`` for a request signed with expired session credentials, which
moto alone never sends. Supplied by the test: the kubelet's projection of a
Secret volume (``devenv.mount.project``), driven by a watch on the Secret.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from delegated_aws.devenv.awsemu_harness import AwsEmulator
from delegated_aws.devenv.mount import project
from delegated_aws.plan import parse_time
from tests.fixtures.operator import Customer, OperatorRunner, Resources, wait_for
from tests.integration.test_secret_lifecycle import (
    REFRESH_ANNOTATION,
    WriteCounter,
    _kinds,
    _spec,
)

# A long-running workload: one client per route, each kept for the whole run.
# The credential_process client re-runs `cat` whenever its credentials near
# expiry; the shared-credentials client reads the file once, at creation.
_WORKLOAD = r"""
import json, sys, time
import boto3, botocore.session

mount, seconds = sys.argv[1], float(sys.argv[2])

def client(**files):
    core = botocore.session.Session()
    for name, value in files.items():
        core.set_config_variable(name, value)
    return boto3.Session(botocore_session=core).client("sts")

clients = {
    "credential_process": client(
        config_file=f"{mount}/config", credentials_file=f"{mount}/absent"
    ),
    "credentials_file": client(
        config_file=f"{mount}/absent", credentials_file=f"{mount}/credentials"
    ),
}
end = time.monotonic() + seconds
while time.monotonic() < end:
    for route, sts in clients.items():
        try:
            sts.get_caller_identity()
            key = sts._request_signer._credentials.get_frozen_credentials().access_key
            print(json.dumps({"route": route, "ok": True, "key": key}), flush=True)
        except Exception as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code")
            failed = {"route": route, "ok": False, "code": code or repr(error)}
            print(json.dumps(failed), flush=True)
    time.sleep(0.25)
"""


class KubeletMount:
    """Projects one Secret into a folder on every change, as kubelet does."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace, self._name = namespace, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self.projections = 0

    def start(self, target: Path) -> KubeletMount:
        self.target = target
        self._thread.start()
        wait_for(lambda: True if self.projections else None, timeout=10, what="a mount")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _follow(self) -> None:
        selector = f"metadata.name={self._name}"
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                self._core.list_namespaced_secret,
                self._namespace,
                field_selector=selector,
                timeout_seconds=2,
            )
            for event in stream:
                data = event["object"].data
                if event["type"] in ("ADDED", "MODIFIED") and data:
                    project(data, self.target)
                    self.projections += 1


@pytest.fixture
def kubelet(kube_api_client: client.ApiClient, das: Resources) -> Iterator[Any]:
    started: list[KubeletMount] = []

    def mount(name: str, target: Path) -> KubeletMount:
        found = KubeletMount(kube_api_client, das.namespace, name).start(target)
        started.append(found)
        return found

    yield mount
    for found in started:
        found.stop()


def _workload_env(aws: AwsEmulator) -> dict[str, str]:
    # No AWS_* credentials and no instance metadata: only the mounted files.
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def test_boto3_workload_keeps_working_across_two_rotations(
    run_operator: OperatorRunner,
    das: Resources,
    customer: Customer,
    kubelet: Any,
    kube_api_client: client.ApiClient,
    tmp_path: Path,
) -> None:
    # Injected: 20-second sessions, so two rotations take half a minute.
    customer.aws.client.set_session_lifetime(20)
    run_operator(min_refresh_margin="8s")
    mount = tmp_path / "aws"
    das.create("reader", _spec(customer, secret={"mountPath": str(mount)}))
    das.wait_condition("reader", "Ready", status="True")
    kubelet("reader", mount)
    customer.aws.client.reset_calls()

    with WriteCounter(kube_api_client, das.namespace) as writes:
        done = subprocess.run(
            [sys.executable, "-c", _WORKLOAD, str(mount), "30"],
            env=_workload_env(customer.aws),
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )
        time.sleep(1)  # The last refresh's status patch arrives.

    calls = [json.loads(line) for line in done.stdout.splitlines()]
    process = [c for c in calls if c["route"] == "credential_process"]
    assert [c for c in process if not c["ok"]] == []
    keys = list(dict.fromkeys(c["key"] for c in process))
    assert len(keys) >= 3, f"only {len(keys) - 1} rotations seen"
    # The file read once keeps the first credentials until they expire.
    shared = [c for c in calls if c["route"] == "credentials_file"]
    assert {c.get("key") for c in shared if c["ok"]} == {keys[0]}
    assert shared[-1] == {
        "route": "credentials_file",
        "ok": False,
        "code": "ExpiredToken",
    }
    # Each scheduled refresh: one AssumeRole, one Secret write, one status patch.
    refreshes = len([c for c in customer.aws.client.calls(action="AssumeRole")])
    assert refreshes == len(keys) - 1
    assert _kinds(writes.since()) == {
        "Secret": refreshes,
        "DelegatedAWSSecret": refreshes,
    }


def test_refresh_follows_the_expiration_sts_returned(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    # Injected: STS grants 20 s where the spec asks for 1 h.
    customer.aws.client.set_session_lifetime(20)
    run_operator(min_refresh_margin="8s")

    das.create("reader", _spec(customer, refresh={"before": "2h"}))

    das.wait_condition("reader", "Ready", status="True")
    found = das.status("reader")["credentials"]
    issued = parse_time(found["lastRefreshTime"])
    expiration = parse_time(found["expiration"])
    # The operator notes the issue time after STS answered: up to 1 s later.
    second = timedelta(seconds=1)
    assert timedelta(seconds=19) <= expiration - issued <= timedelta(seconds=20)
    assert found["sessionDuration"] == "20s"
    # refresh.before (2h) is longer than the lifetime: half of it is used.
    half = parse_time(found["refreshAt"]) - issued
    assert timedelta(seconds=10) - second <= half <= timedelta(seconds=10)
    synced = das.condition("reader", "SecretSynced")
    assert synced is not None
    assert re.fullmatch(
        f"The Secret holds credentials valid until {found['expiration']}; "
        r"refresh\.before \(2h\) is not shorter than the (19|20)s lifetime STS "
        r"granted, so the Secret is rewritten at half the lifetime, (9|10)s before "
        r"expiry\.",
        synced["message"],
    ), synced["message"]

    def rotated() -> dict[str, Any] | None:
        now = das.status("reader").get("credentials") or {}
        return now if now.get("expiration", "") > found["expiration"] else None

    rewritten = wait_for(rotated, timeout=20, what="the second credentials")
    # Rewritten while the first credentials were still valid.
    assert parse_time(rewritten["lastRefreshTime"]) < expiration


def test_restart_with_many_ready_resources_is_silent(
    run_operator: OperatorRunner,
    das: Resources,
    customer: Customer,
    kube_api_client: client.ApiClient,
) -> None:
    count = 12
    prefix = f"many-{uuid.uuid4().hex[:8]}"
    role_arn = customer.create_role(_prefix_trust(customer, prefix))
    first = run_operator()
    for i in range(count):
        das.create(f"r{i}", {"roleArn": role_arn, "externalId": f"{prefix}-{i}"})
    for i in range(count):
        das.wait_condition(f"r{i}", "Ready", status="True", timeout=60)
    # A refresh served before the restart must not be served again after it.
    before = das.secret("r0")["data"]["AWS_ACCESS_KEY_ID"]  # type: ignore[index]
    stamp = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"
    das.custom.patch_namespaced_custom_object(
        "delegatedaws.io", "v1alpha1", das.namespace, "delegatedawssecrets", "r0",
        {"metadata": {"annotations": {REFRESH_ANNOTATION: stamp}}},
    )  # fmt: skip
    wait_for(
        lambda: das.secret("r0")["data"]["AWS_ACCESS_KEY_ID"] != before or None,  # type: ignore[index]
        timeout=45,
        what="r0 refreshed on request",
    )
    time.sleep(2)
    first.stop()
    customer.aws.client.reset_calls()

    with WriteCounter(kube_api_client, das.namespace) as writes:
        second = run_operator()
        second.wait_for_log("Operating as")
        time.sleep(6)

    assert customer.aws.client.calls(action="AssumeRole") == []
    assert writes.since() == []


def _prefix_trust(customer: Customer, prefix: str) -> dict[str, Any]:
    """One role for many resources, each with its own External ID."""
    policy = customer.trust_policy(None)
    policy["Statement"][0]["Condition"] = {
        "StringLike": {"sts:ExternalId": f"{prefix}-*"}
    }
    return policy
