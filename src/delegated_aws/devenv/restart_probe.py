"""Measure what an operator restart costs with many Ready resources.

``python -m delegated_aws.devenv.restart_probe --count 200 --window 30`` starts
the local control plane and the AWS emulator, makes ``count`` resources Ready
with one operator, stops it, starts a fresh one and counts, over ``window``
seconds, the AssumeRole calls in the emulator's log and the writes to Secrets
and DelegatedAWSSecrets seen by a watch. The expected answer is zero and zero:
every Secret is intact and no refresh is due. Prints one JSON document.

One role serves every resource: each pins ``spec.externalId`` to
``<prefix>-<i>`` and the trust policy allows ``StringLike <prefix>-*``, so
each id is really checked and the operator's random wrong-id probe is denied.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3
from kubernetes import client, config, watch

from delegated_aws.devenv.awsemu_harness import AwsEmulator
from delegated_aws.devenv.controlplane import ControlPlane
from delegated_aws.devenv.operator_process import OperatorProcess
from delegated_aws.models import GROUP, PLURAL, VERSION

CRDS = Path(__file__).resolve().parents[3] / "crds"


class Writes:
    """Counts watch events (one per API write) in one namespace, per kind."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        self.counts = {"Secret": 0, "DelegatedAWSSecret": 0}
        self._stop = threading.Event()
        self._listers: dict[str, Callable[..., Any]] = {
            "Secret": lambda **kw: core.list_namespaced_secret(namespace, **kw),
            "DelegatedAWSSecret": lambda **kw: custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, **kw
            ),
        }
        self._threads = [
            threading.Thread(target=self._follow, args=(kind,), daemon=True)
            for kind in self._listers
        ]

    def start(self) -> Writes:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> dict[str, int]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        return dict(self.counts)

    def _follow(self, kind: str) -> None:
        lister = self._listers[kind]
        listed = client.ApiClient().sanitize_for_serialization(lister(limit=1))
        since = listed["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            for event in watch.Watch().stream(
                lister, resource_version=since, timeout_seconds=2
            ):
                found = client.ApiClient().sanitize_for_serialization(event["object"])
                since = found["metadata"]["resourceVersion"]
                self.counts[kind] += 1


def _operator(plane: ControlPlane, aws: AwsEmulator, ns: str, log: Path) -> Any:
    env = {
        **aws.sdk_env(aws.operator),
        "DELEGATED_AWS_NAMESPACES": json.dumps([ns]),
        "DELEGATED_AWS_METRICS_PORT": "0",
    }
    process = OperatorProcess(kubeconfig=plane.kubeconfig, env=env, log_path=log)
    return process.start()


def _role(aws: AwsEmulator, prefix: str) -> str:
    iam = boto3.client(
        "iam",
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=aws.customer.access_key_id,
        aws_secret_access_key=aws.customer.secret_access_key,
    )
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{aws.operator.account_id}:root"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringLike": {"sts:ExternalId": f"{prefix}-*"}},
    }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    found = iam.create_role(
        RoleName=f"probe-{prefix}", AssumeRolePolicyDocument=json.dumps(policy)
    )
    return str(found["Role"]["Arn"])


def _ready_count(custom: client.CustomObjectsApi, ns: str) -> int:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
    return sum(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (item.get("status") or {}).get("conditions", [])
        )
        for item in items
    )


def measure(*, count: int, window: float, workdir: Path) -> dict[str, Any]:
    with ControlPlane() as plane, AwsEmulator(log_path=workdir / "aws.log") as aws:
        plane.kubectl("apply", "-f", str(CRDS))
        plane.kubectl("wait", "--for=condition=Established", "-f", str(CRDS))
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        ns, prefix = "restart-probe", uuid.uuid4().hex[:8]
        core.create_namespace({"metadata": {"name": ns}})
        role_arn = _role(aws, prefix)

        first = _operator(plane, aws, ns, workdir / "operator-1.log")
        began = time.monotonic()
        for i in range(count):
            spec = {"roleArn": role_arn, "externalId": f"{prefix}-{i}"}
            body: dict[str, Any] = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DelegatedAWSSecret",
                "metadata": {"name": f"r{i}"},
                "spec": spec,
            }
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        while _ready_count(custom, ns) < count:
            time.sleep(1)
        all_ready = time.monotonic() - began
        time.sleep(3)
        first.stop()

        aws.client.reset_calls()
        writes = Writes(api, ns).start()
        second = _operator(plane, aws, ns, workdir / "operator-2.log")
        second.wait_for_log("Operating as")
        time.sleep(window)
        counted = writes.stop()
        second.stop()
        return {
            "resources": count,
            "seconds_to_all_ready": round(all_ready, 1),
            "window_seconds": window,
            "assume_role_calls_after_restart": len(
                aws.client.calls(action="AssumeRole")
            ),
            "writes_after_restart": counted,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m " + __spec__.name)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="restart-probe-") as workdir:
        result = measure(count=args.count, window=args.window, workdir=Path(workdir))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.pop("MOTO_ACCOUNT_ID", None)
    raise SystemExit(main())
