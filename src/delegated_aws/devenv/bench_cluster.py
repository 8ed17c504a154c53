"""The live half of ``make bench``: the operator against the local control plane.

This module owns the scenarios that run the real operator (``delegated-aws
run`` as a child process) against the local kube-apiserver and the emulated
AWS account: burst latency against the PATCH floor, API writes per refresh and
per idle resync, restart, memory and CPU, and throttled STS. Each scenario
returns a plain dict for ``bench/results.json``.

One customer role serves every resource. Each resource pins its own External
ID (``spec.externalId: bench-<size>-<i>``) and the role's trust policy allows
``StringLike sts:ExternalId bench-*``, so every resource presents a different
id that is really checked, and the operator's wrong-id probe (a random UUID)
is still denied.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
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
    cpu_seconds,
    rss_mib,
    summary,
    wait_idle,
)
from delegated_aws.devenv.build import source_root
from delegated_aws.devenv.controlplane import ControlPlane
from delegated_aws.devenv.operator_process import OperatorProcess
from delegated_aws.reconcile import REFRESH_ANNOTATION
from delegated_aws.reporting import GROUP, PLURAL, VERSION

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
        process = OperatorProcess(
            kubeconfig=self.plane.kubeconfig,
            env=env,
            log_path=self.logs / f"operator-{label}.log",
        ).start()
        process.wait_for_log("Operating as", timeout=120)
        return process

    def burst(self, calls: Iterable[Callable[[], Any]]) -> list[float]:
        """Run the calls from a thread pool; when each one returned."""

        def timed(call: Callable[[], Any]) -> float:
            call()
            return time.monotonic()

        with ThreadPoolExecutor(CREATE_THREADS) as pool:
            return list(pool.map(timed, calls))

    def create_all(
        self, namespace: str, size: int, *, role: bool
    ) -> dict[str, float]:
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
        self, recorder: Recorder, position: int, done: Callable[[list[Seen]], bool]
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


# --- scenarios -------------------------------------------------------------------


def patch_floor(bench: Bench, namespace: str) -> dict[str, float]:
    """Round trip of a bare PATCH (a ConfigMap label), sequential, in seconds."""
    bench.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "floor"}}
    )
    samples = []
    for i in range(FLOOR_SAMPLES):
        began = time.monotonic()
        bench.core.patch_namespaced_config_map(
            "floor", namespace, {"metadata": {"labels": {"n": str(i)}}}
        )
        samples.append(time.monotonic() - began)
    return summary(samples)


def size_run(bench: Bench, size: int) -> dict[str, Any]:
    """Latency, writes, CPU, memory and restart with ``size`` resources."""
    result: dict[str, Any] = {"size": size}
    namespace = bench.namespace(str(size))
    with ExitStack() as stack:
        operator = bench.operator(namespace, f"size-{size}")
        stack.callback(lambda: operator.stop())
        pid = _pid(operator)
        wait_idle(pid)
        result["rss_mib_empty"] = rss_mib(pid)
        result["floor_s"] = patch_floor(bench, namespace)
        recorder = Recorder(str(bench.plane.kubeconfig), namespace).start()
        stack.callback(recorder.stop)

        result["latency"] = _latencies(bench, recorder, namespace, size)
        wait_idle(pid)
        result["rss_mib_ready"] = rss_mib(pid)
        names = [f"r{i:05d}" for i in range(size)]
        result["idle"] = _idle(bench, recorder, namespace, names, pid)
        result["refresh"] = _refresh(bench, recorder, namespace, names, pid)
        operator.stop()
        result["restart"] = _restart(bench, recorder, namespace, size, stack)
    _ratios(result)
    bench.core.delete_namespace(namespace)
    return result


def _latencies(
    bench: Bench, recorder: Recorder, namespace: str, size: int
) -> dict[str, Any]:
    position = recorder.mark()
    began = time.monotonic()
    created = bench.create_all(namespace, size, role=False)
    events = bench.wait_for(
        recorder, position, lambda ev: _first(ev, "das", instructions=True, n=size)
    )
    instructions = _first(events, "das", instructions=True, n=size)
    assert instructions is not None
    instructed = time.monotonic() - began

    position = recorder.mark()
    began = time.monotonic()
    patched = bench.patch_all(namespace, created, {"spec": {"roleArn": bench.role_arn}})
    events = bench.wait_for(
        recorder, position, lambda ev: _first(ev, "das", ready=True, n=size)
    )
    written = _first(events, "secret", added=True, n=size) or {}
    ready = _first(events, "das", ready=True, n=size) or {}
    return {
        "created_to_instructions_s": summary(
            [instructions[n] - created[n] for n in created]
        ),
        "role_arn_to_secret_s": summary(
            [written[n] - patched[n][0] for n in patched if n in written]
        ),
        "role_arn_to_ready_s": summary([ready[n] - patched[n][0] for n in patched]),
        "burst_all_instructed_s": round(instructed, 2),
        "burst_all_ready_s": round(max(ready.values()) - began, 2),
    }


def _idle(
    bench: Bench,
    recorder: Recorder,
    namespace: str,
    names: list[str],
    pid: int,
) -> dict[str, Any]:
    """Writes while nothing happens, and while every resource is resynced."""
    position = recorder.mark()
    cpu = cpu_seconds(pid)
    time.sleep(10)
    quiet = _writes(recorder.since(position), ours=set())
    quiet_cpu = cpu_seconds(pid) - cpu
    # A no-op event per resource (a label only the benchmark reads) makes the
    # operator reconcile each one, as a watch re-list does.
    bench.aws.client.reset_calls()
    position = recorder.mark()
    touched = bench.patch_all(
        namespace, names, {"metadata": {"labels": {"bench-touch": "1"}}}
    )
    wait_idle(pid)
    writes = _writes(recorder.since(position), ours={v for _, v in touched.values()})
    sts = bench.assume_calls()
    return {
        "writes_in_10s_quiet": quiet,
        "cpu_s_in_10s_quiet": round(quiet_cpu, 3),
        "writes_per_resync": round(writes / len(names), 3),
        "assume_role_calls_in_resync": len(sts),
    }


def _refresh(
    bench: Bench,
    recorder: Recorder,
    namespace: str,
    names: list[str],
    pid: int,
) -> dict[str, Any]:
    """Force a refresh of every resource; writes, STS calls and CPU it cost."""
    bench.aws.client.reset_calls()
    wait_idle(pid)
    cpu = cpu_seconds(pid)
    position = recorder.mark()
    began = time.monotonic()
    stamp = datetime.now().isoformat()
    annotated = bench.patch_all(
        namespace, names, {"metadata": {"annotations": {REFRESH_ANNOTATION: stamp}}}
    )
    bench.wait_for(
        recorder,
        position,
        lambda ev: len({s.name for s in ev if s.kind == "secret"}) >= len(names),
    )
    idle_from = wait_idle(pid)
    used = cpu_seconds(pid) - cpu
    writes = _writes(recorder.since(position), ours={v for _, v in annotated.values()})
    calls = bench.assume_calls()
    return {
        "refreshes": len(names),
        "writes_per_refresh": round(writes / len(names), 3),
        "assume_role_per_refresh": round(len(calls) / len(names), 3),
        "cpu_s_per_1000_refreshes": round(used / len(names) * 1000, 2),
        "all_refreshed_s": round(idle_from - began, 2),
    }


def _restart(
    bench: Bench, recorder: Recorder, namespace: str, size: int, stack: ExitStack
) -> dict[str, Any]:
    """Stop and start the operator over ``size`` Ready resources."""
    bench.aws.client.reset_calls()
    position = recorder.mark()
    began = time.monotonic()
    operator = bench.operator(namespace, f"size-{size}-restart")
    stack.callback(operator.stop)
    identity = time.monotonic() - began
    pid = _pid(operator)
    settled = wait_idle(pid) - began
    writes = _writes(recorder.since(position), ours=set())
    sts = [c for c in bench.aws.client.calls() if c.get("service") == "sts"]
    result = {
        "settle_s": round(settled, 2),
        "identity_known_s": round(identity, 2),
        "sts_calls": len([c for c in sts if c["action"] == "AssumeRole"]),
        "sts_calls_incl_identity": len(sts),
        "writes": writes,
        "rss_mib_after_restart": rss_mib(pid),
    }
    operator.stop()
    return result


def throttled(bench: Bench, size: int, probability: float) -> dict[str, Any]:
    """Time to Ready for ``size`` resources with a share of STS calls throttled."""
    namespace = bench.namespace(f"throttle-{size}")
    fault = bench.aws.client.add_fault(
        "AssumeRole", preset="Throttling", probability=probability
    )
    with ExitStack() as stack:
        stack.callback(lambda: bench.aws.client.remove_fault(fault))
        operator = bench.operator(namespace, f"throttle-{size}")
        stack.callback(operator.stop)
        recorder = Recorder(str(bench.plane.kubeconfig), namespace).start()
        stack.callback(recorder.stop)
        bench.aws.client.reset_calls()
        position = recorder.mark()
        began = time.monotonic()
        bench.create_all(namespace, size, role=True)
        events = bench.wait_for(
            recorder, position, lambda ev: _first(ev, "das", ready=True, n=size)
        )
        ready = _first(events, "das", ready=True, n=size) or {}
        calls = bench.assume_calls()
    bench.core.delete_namespace(namespace)
    per_second = _per_second(calls)
    return {
        "size": size,
        "throttle_probability": probability,
        "sts_concurrency": bench.concurrency,
        "all_ready_s": round(max(ready.values()) - began, 2),
        "assume_role_calls": len(calls),
        "throttled_calls": sum(1 for c in calls if c["outcome"] == "Throttling"),
        "peak_calls_per_s": max(per_second.values(), default=0),
        "mean_calls_per_s": round(
            len(calls) / max(1, len(per_second)), 1
        ),
    }


# --- helpers -----------------------------------------------------------------------


def _pid(operator: OperatorProcess) -> int:
    process = operator._process  # noqa: SLF001 - the benchmark reads /proc of it
    assert process is not None
    return process.pid


def _first(
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


def _writes(events: list[Seen], *, ours: set[str]) -> int:
    """Writes the operator made: new resourceVersions not made by the benchmark."""
    return sum(
        1
        for seen in events
        if seen.type in ("ADDED", "MODIFIED") and seen.resource_version not in ours
    )


def _per_second(calls: list[dict[str, Any]]) -> dict[int, int]:
    buckets: dict[int, int] = {}
    for call in calls:
        moment = datetime.fromisoformat(call["timestamp"])
        second = int(moment.timestamp())
        buckets[second] = buckets.get(second, 0) + 1
    return buckets


def _ratios(result: dict[str, Any]) -> None:
    floor = result["floor_s"]
    for figures in result["latency"].values():
        if isinstance(figures, dict):
            figures["ratio_to_floor"] = {
                p: round(figures[p] / floor[p], 1) for p in ("p50", "p95", "p99")
            }
