"""The live half of ``make bench``: the scenarios, one dict of figures each.

Burst latency against the bare PATCH floor, API writes per refresh and per
idle resync, restart, memory and CPU (``size_run``), and time to Ready with
throttled STS (``throttled``). ``bench_cluster`` runs the processes and
bursts; ``bench_watch`` measures.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from delegated_aws.devenv.bench_cluster import (
    Bench,
    first_arrivals,
    operator_writes,
    per_second,
    pid_of,
)
from delegated_aws.devenv.bench_watch import (
    Recorder,
    api_requests,
    cpu_by_role,
    cpu_delta,
    cpu_seconds,
    requests_since,
    rss_mib,
    summary,
    wait_idle,
)
from delegated_aws.models import REFRESH_ANNOTATION

FLOOR_SAMPLES = 200


def patch_floor(bench: Bench, namespace: str) -> dict[str, float]:
    """Round trip of a bare PATCH (a ConfigMap label), sequential, in seconds."""
    bench.core.create_namespaced_config_map(namespace, {"metadata": {"name": "floor"}})
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
        pid = pid_of(operator)
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
        recorder,
        position,
        lambda ev: first_arrivals(ev, "das", instructions=True, n=size),
    )
    instructions = first_arrivals(events, "das", instructions=True, n=size)
    assert instructions is not None
    instructed = time.monotonic() - began

    position = recorder.mark()
    began = time.monotonic()
    cpu = cpu_by_role()
    requests = api_requests(bench.api)
    patched = bench.patch_all(namespace, created, {"spec": {"roleArn": bench.role_arn}})
    events = bench.wait_for(
        recorder, position, lambda ev: first_arrivals(ev, "das", ready=True, n=size)
    )
    cpu_used = cpu_delta(cpu)
    api_used = requests_since(bench.api, requests, per=size)
    written = first_arrivals(events, "secret", added=True, n=size) or {}
    ready = first_arrivals(events, "das", ready=True, n=size) or {}
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
        # Who was busy while roleArn was set on every resource.
        "cpu_s_role_arn_burst": cpu_used,
        # API requests per resource during it (the benchmark's PATCH included).
        "api_requests_role_arn_burst": api_used,
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
    quiet = operator_writes(recorder.since(position), ours=set())
    quiet_cpu = cpu_seconds(pid) - cpu
    # A no-op event per resource (a label only the benchmark reads) makes the
    # operator reconcile each one, as a watch re-list does.
    bench.aws.client.reset_calls()
    position = recorder.mark()
    touched = bench.patch_all(
        namespace, names, {"metadata": {"labels": {"bench-touch": "1"}}}
    )
    wait_idle(pid)
    writes = operator_writes(
        recorder.since(position), ours={v for _, v in touched.values()}
    )
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
    everyone = cpu_by_role()
    requests = api_requests(bench.api)
    position = recorder.mark()
    began = time.monotonic()
    # The format `delegated-aws refresh` writes: whole seconds, UTC.
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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
    writes = operator_writes(
        recorder.since(position), ours={v for _, v in annotated.values()}
    )
    calls = bench.assume_calls()
    return {
        "refreshes": len(names),
        "writes_per_refresh": round(writes / len(names), 3),
        "assume_role_per_refresh": round(len(calls) / len(names), 3),
        "cpu_s_per_1000_refreshes": round(used / len(names) * 1000, 2),
        "all_refreshed_s": round(idle_from - began, 2),
        "cpu_s_by_process": cpu_delta(everyone),
        "api_requests_per_refresh": requests_since(bench.api, requests, per=len(names)),
    }


def _restart(
    bench: Bench, recorder: Recorder, namespace: str, size: int, stack: ExitStack
) -> dict[str, Any]:
    """Stop and start the operator over ``size`` Ready resources."""
    bench.aws.client.reset_calls()
    position = recorder.mark()
    requests = api_requests(bench.api)
    began = time.monotonic()
    operator = bench.operator(namespace, f"size-{size}-restart")
    stack.callback(operator.stop)
    identity = time.monotonic() - began
    pid = pid_of(operator)
    settled = wait_idle(pid) - began
    writes = operator_writes(recorder.since(position), ours=set())
    sts = [c for c in bench.aws.client.calls() if c.get("service") == "sts"]
    result = {
        "api_requests_per_resource": requests_since(bench.api, requests, per=size),
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
            recorder, position, lambda ev: first_arrivals(ev, "das", ready=True, n=size)
        )
        ready = first_arrivals(events, "das", ready=True, n=size) or {}
        calls = bench.assume_calls()
    bench.core.delete_namespace(namespace)
    rates = per_second(calls)
    return {
        "size": size,
        "throttle_probability": probability,
        "sts_concurrency": bench.concurrency,
        "all_ready_s": round(max(ready.values()) - began, 2),
        "assume_role_calls": len(calls),
        "throttled_calls": sum(1 for c in calls if c["outcome"] == "Throttling"),
        "peak_calls_per_s": max(rates.values(), default=0),
        "mean_calls_per_s": round(len(calls) / max(1, len(rates)), 1),
    }


def _ratios(result: dict[str, Any]) -> None:
    floor = result["floor_s"]
    for figures in result["latency"].values():
        if isinstance(figures, dict) and "p50" in figures:
            figures["ratio_to_floor"] = {
                p: round(figures[p] / floor[p], 1) for p in ("p50", "p95", "p99")
            }
