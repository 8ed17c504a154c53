"""The live benchmark's plumbing: operator processes, bursts, the customer role.

This module owns what the scenarios in ``bench_scenarios`` share: running the
real operator (``delegated-aws run`` as a child process) against the local
kube-apiserver and the emulated AWS account, creating and patching resources
from a thread pool, waiting on the watch recorder, and reading the results
(first arrivals, writes, STS call rates).

One customer role serves every resource. Each resource pins its own External
ID (``spec.externalId: bench-<size>-<i>``) and the role's trust policy allows
``StringLike sts:ExternalId bench-*``, so every resource presents a different
id that is really checked, and the operator's wrong-id probe (a random UUID)
is still denied.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from kubernetes import client

from delegated_aws.devenv.awsemu_harness import AwsEmulator
from delegated_aws.devenv.bench_watch import (
    Recorder,
    Seen,
    api_client,
)
from delegated_aws.devenv.build import source_root
from delegated_aws.devenv.controlplane import ControlPlane
from delegated_aws.devenv.operator_process import OperatorProcess
from delegated_aws.models import GROUP, PLURAL, VERSION

CREATE_THREADS = 16
FLOOR_SAMPLES = 200


@dataclass
class Bench:
    """Everything the scenarios share: cluster, AWS, clients, settings."""

    plane: ControlPlane
    aws: AwsEmulator
    role_arn: str
    logs: Path
    concurrency: int
    timeout: float
    # Run the operator from this source tree instead of the installed one.
    operator_src: Path | None = None
    # py-spy executable: record each operator's stacks to <logs>/profile-*.txt.
    py_spy: str | None = None
    api: client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api = api_client(str(self.plane.kubeconfig), pool=CREATE_THREADS * 2)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    # --- plumbing ---

    def namespace(self, label: str) -> str:
        name = f"bench-{label}-{uuid.uuid4().hex[:4]}"
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def operator(self, namespace: str, label: str) -> OperatorProcess:
        env = {
            **self.aws.sdk_env(self.aws.operator),
            "DELEGATED_AWS_NAMESPACES": json.dumps([namespace]),
            "DELEGATED_AWS_METRICS_PORT": "0",
            "DELEGATED_AWS_STS_CONCURRENCY": str(self.concurrency),
        }
        if self.operator_src is not None:
            env["PYTHONPATH"] = str(self.operator_src)
        log = self.logs / f"operator-{label}.log"
        log.unlink(missing_ok=True)
        process = OperatorProcess(
            kubeconfig=self.plane.kubeconfig, env=env, log_path=log
        ).start()
        process.wait_for_log("Operating as", timeout=120)
        if self.py_spy:
            self._profile(process, label)
        return process

    def _profile(self, process: OperatorProcess, label: str) -> None:
        # py-spy stops by itself when the operator exits.
        output = self.logs / f"profile-{label}.txt"
        assert self.py_spy is not None
        pid = str(pid_of(process))
        command = [self.py_spy, "record", "--pid", pid, "--format", "raw",
                   "--output", str(output), "--nonblocking", "--gil"]  # fmt: skip
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def burst(self, calls: Iterable[Callable[[], Any]]) -> list[float]:
        """Run the calls from a thread pool; when each one returned."""

        def timed(call: Callable[[], Any]) -> float:
            call()
            return time.monotonic()

        with ThreadPoolExecutor(CREATE_THREADS) as pool:
            return list(pool.map(timed, calls))

    def create_all(self, namespace: str, size: int, *, role: bool) -> dict[str, float]:
        names = [f"r{i:05d}" for i in range(size)]

        def create(i: int, name: str) -> Callable[[], Any]:
            spec: dict[str, Any] = {"externalId": f"bench-{namespace}-{i}"}
            if role:
                spec["roleArn"] = self.role_arn
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DelegatedAWSSecret",
                "metadata": {"name": name},
                "spec": spec,
            }
            return lambda: self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body
            )

        done = self.burst(create(i, n) for i, n in enumerate(names))
        return dict(zip(names, done, strict=True))

    def patch_all(
        self, namespace: str, names: Iterable[str], patch: dict[str, Any]
    ) -> dict[str, tuple[float, str]]:
        """Patch each resource; when each call returned and the rv it made."""
        names = list(names)
        versions: dict[str, str] = {}

        def one(name: str) -> Callable[[], Any]:
            def call() -> None:
                found = self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, patch
                )
                versions[name] = found["metadata"]["resourceVersion"]

            return call

        done = self.burst(one(n) for n in names)
        return {n: (t, versions[n]) for n, t in zip(names, done, strict=True)}

    def wait_for(
        self, recorder: Recorder, position: int, done: Callable[[list[Seen]], object]
    ) -> list[Seen]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            events = recorder.since(position)
            if done(events):
                return events
            time.sleep(0.2)
        raise TimeoutError(f"benchmark step did not finish in {self.timeout}s")

    def assume_calls(self) -> list[dict[str, Any]]:
        return self.aws.client.calls(action="AssumeRole")


def create_role(aws: AwsEmulator) -> str:
    """The customer's role, trusting the operator's account for ids bench-*."""
    iam = boto3.Session(
        aws_access_key_id=aws.customer.access_key_id,
        aws_secret_access_key=aws.customer.secret_access_key,
        region_name="us-east-1",
    ).client("iam", endpoint_url=aws.endpoint_url)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{aws.operator.account_id}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringLike": {"sts:ExternalId": "bench-*"}},
            }
        ],
    }
    role = iam.create_role(
        RoleName="bench-reader",
        AssumeRolePolicyDocument=json.dumps(trust),
        MaxSessionDuration=43200,
    )
    return str(role["Role"]["Arn"])


def apply_crds(plane: ControlPlane) -> None:
    crds = str(source_root() / "crds")
    plane.kubectl("apply", "-f", crds)
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)


# --- helpers -----------------------------------------------------------------------


def pid_of(operator: OperatorProcess) -> int:
    process = operator._process  # the benchmark reads /proc of it
    assert process is not None
    return process.pid


def first_arrivals(
    events: list[Seen],
    kind: str,
    *,
    n: int,
    instructions: bool = False,
    ready: bool = False,
    added: bool = False,
) -> dict[str, float] | None:
    """First arrival per name of an event that matches; None until all ``n``."""
    found: dict[str, float] = {}
    for seen in events:
        if seen.kind != kind or seen.name in found:
            continue
        if instructions and not seen.instructions:
            continue
        if ready and not seen.ready:
            continue
        if added and seen.type != "ADDED":
            continue
        found[seen.name] = seen.at
    return found if len(found) >= n else None


def operator_writes(events: list[Seen], *, ours: set[str]) -> int:
    """Writes the operator made: new resourceVersions not made by the benchmark."""
    return sum(
        1
        for seen in events
        if seen.type in ("ADDED", "MODIFIED") and seen.resource_version not in ours
    )


def per_second(calls: list[dict[str, Any]]) -> dict[int, int]:
    buckets: dict[int, int] = {}
    for call in calls:
        moment = datetime.fromisoformat(call["timestamp"])
        second = int(moment.timestamp())
        buckets[second] = buckets.get(second, 0) + 1
    return buckets
