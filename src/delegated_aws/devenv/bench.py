"""``make bench``: speed, cost and scale of the operator, measured.

Usage::

    python -m delegated_aws.devenv.bench                 # sizes 100 and 1000
    python -m delegated_aws.devenv.bench --quick         # size 20, a smoke run
    python -m delegated_aws.devenv.bench --sizes 100,1000,5000

It starts the local control plane (etcd, kube-apiserver,
kube-controller-manager) and the emulated AWS accounts, runs the operator as
``delegated-aws run`` against them, prints a table and writes
``bench/results.json``. BENCHMARKS.md explains the method and holds the
figures of a reference run. The STS cost figures come from
:mod:`~delegated_aws.devenv.bench_cost` (the real reconciler on a fake clock);
the rest from :mod:`~delegated_aws.devenv.bench_scenarios`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from delegated_aws.devenv import bench_cost
from delegated_aws.devenv.awsemu_harness import AwsEmulator
from delegated_aws.devenv.bench_cluster import Bench, apply_crds, create_role
from delegated_aws.devenv.bench_scenarios import size_run, throttled
from delegated_aws.devenv.bench_watch import children, rss_mib, wait_idle
from delegated_aws.devenv.build import ensure_binaries, source_root
from delegated_aws.devenv.controlplane import ControlPlane


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = [20] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    throttle_size = args.throttle_size
    if throttle_size is None:
        throttle_size = 20 if args.quick else max(sizes)
    out_dir = Path(args.output).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "sizes": sizes,
    }
    began = time.monotonic()
    _say("STS cost: the reconciler on a fake clock, 7 simulated days")
    results["sts_cost"] = [f.as_json() for f in bench_cost.run()]
    if not args.cost_only:
        results.update(_live(args, sizes, throttle_size, out_dir))
    results["wall_clock_s"] = round(time.monotonic() - began, 1)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    _say(f"wrote {args.output}")
    return 0


CONTROL_PLANE = ("etcd", "kube_apiserver", "kube_controller_manager")


def _live(
    args: argparse.Namespace, sizes: list[int], throttle_size: int, out_dir: Path
) -> dict[str, Any]:
    found: dict[str, Any] = {"runs": [], "throttling": None}
    with ExitStack() as stack:
        _say("starting etcd, kube-apiserver and kube-controller-manager")
        started = time.monotonic()
        plane = stack.enter_context(ControlPlane(bin_dir=ensure_binaries()))
        found["control_plane"] = _control_plane(started)
        apply_crds(plane)
        _say("starting the AWS emulator")
        aws = stack.enter_context(AwsEmulator(log_path=out_dir / "awsemu.log"))
        bench = Bench(
            plane=plane,
            aws=aws,
            role_arn=create_role(aws),
            logs=out_dir,
            concurrency=args.concurrency,
            timeout=args.timeout,
            operator_src=args.operator_src,
            py_spy=args.py_spy,
        )
        for size in sizes:
            _say(f"{size} resources: latency, writes, CPU, memory, restart")
            found["runs"].append(size_run(bench, size))
        if throttle_size:
            _say(f"{throttle_size} resources with {args.throttle:.0%} throttled")
            found["throttling"] = throttled(bench, throttle_size, args.throttle)
    return found


def _control_plane(started: float) -> dict[str, Any]:
    """Warm start-up time, then idle memory once the components have settled."""
    ready_s = round(time.monotonic() - started, 2)
    pids = {role: pid for role, pid in children().items() if role in CONTROL_PLANE}
    # Start-up work (caches, informers, the controllers' first sync) ends
    # within seconds; what is resident after that is the idle footprint.
    wait_idle(pids["kube_apiserver"], window=5.0, busy=0.5, timeout=120.0)
    return {
        "ready_s": ready_s,
        "idle_rss_mib": {role: round(rss_mib(pid), 1) for role, pid in pids.items()},
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m delegated_aws.devenv.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", default="100,1000", help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="one size of 20")
    parser.add_argument(
        "--throttle-size", type=int, help="resources in the throttling run (0: skip)"
    )
    parser.add_argument("--throttle", type=float, default=0.2, help="share throttled")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="DELEGATED_AWS_STS_CONCURRENCY of the operator",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="per step, s")
    parser.add_argument("--output", default=str(source_root() / "bench/results.json"))
    parser.add_argument(
        "--operator-src",
        type=Path,
        help="run the operator from this src/ directory (e.g. a git archive)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        help="py-spy executable: profile each operator to bench/profile-*.txt",
    )
    parser.add_argument(
        "--cost-only", action="store_true", help="only the fake-clock STS cost"
    )
    return parser


def _machine() -> dict[str, Any]:
    bin_dir = ensure_binaries()
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        ),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kube_apiserver": _first_line([str(bin_dir / "kube-apiserver"), "--version"]),
        "etcd": _first_line([str(bin_dir / "etcd"), "--version"]),
        "control_plane_binaries_mib": round(
            sum(f.stat().st_size for f in bin_dir.iterdir()) / 2**20, 1
        ),
        "kopf": version("kopf"),
        "kubernetes_client": version("kubernetes"),
        "moto": version("moto"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except OSError as error:
        return f"unknown ({error})"
    return (done.stdout or done.stderr).strip().splitlines()[0]


def _say(text: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)


# --- the table -----------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    lines = [_row("STS cost (per resource per day)", "AssumeRole", "x min",
                  "expired s", "<15min s")]  # fmt: skip
    for cost in results["sts_cost"]:
        lines.append(
            _row(
                f"  {cost['lifetime_hours']:g}h lifetime, {cost['strategy']}",
                cost["assume_role_per_day"],
                cost["ratio_to_minimum"],
                cost["expired_seconds_per_day"],
                cost["under_15min_seconds_per_day"],
            )
        )
    plane = results.get("control_plane")
    if plane:
        rss = plane["idle_rss_mib"]
        lines += [
            "",
            f"control plane: ready in {plane['ready_s']} s (binaries built, "
            f"{results['machine']['control_plane_binaries_mib']} MiB); idle RSS "
            + ", ".join(f"{role} {rss[role]:.0f} MiB" for role in CONTROL_PLANE),
        ]
    for run in results.get("runs", []):
        lines += _size_lines(run)
    throttling = results.get("throttling")
    if throttling:
        lines.append(
            f"throttled ({throttling['throttle_probability']:.0%} of AssumeRole), "
            f"{throttling['size']} resources: all Ready in "
            f"{throttling['all_ready_s']}s; {throttling['assume_role_calls']} calls, "
            f"{throttling['throttled_calls']} throttled; peak "
            f"{throttling['peak_calls_per_s']} calls/s (concurrency "
            f"{throttling['sts_concurrency']})"
        )
    return "\n".join(lines)


def _size_lines(run: dict[str, Any]) -> list[str]:
    size, floor = run["size"], run["floor_s"]
    lines = [
        "",
        f"{size} resources in a burst            p50      p95      p99    "
        "x floor (p50/p95/p99)",
        _latency("  PATCH ConfigMap (floor)", floor),
    ]
    for label, key in (
        ("  created -> instructions", "created_to_instructions_s"),
        ("  roleArn -> Secret written", "role_arn_to_secret_s"),
        ("  roleArn -> Ready", "role_arn_to_ready_s"),
    ):
        lines.append(_latency(label, run["latency"][key]))
    refresh, idle, restart = run["refresh"], run["idle"], run["restart"]
    lines += [
        f"  API writes per refresh {refresh['writes_per_refresh']} (target 2), "
        f"per idle resync {idle['writes_per_resync']} (target 0), in 10 s quiet "
        f"{idle['writes_in_10s_quiet']}",
        f"  AssumeRole per forced refresh {refresh['assume_role_per_refresh']}; "
        f"CPU {refresh['cpu_s_per_1000_refreshes']} s per 1000 refreshes",
        f"  restart: settled in {restart['settle_s']} s, AssumeRole "
        f"{restart['sts_calls']} (target 0), writes {restart['writes']} (target 0)",
        f"  operator RSS: {run['rss_mib_empty']:.0f} MiB empty, "
        f"{run['rss_mib_ready']:.0f} MiB with {size} Ready, "
        f"{restart['rss_mib_after_restart']:.0f} MiB after restart",
    ]
    return lines


def _latency(label: str, figures: dict[str, Any]) -> str:
    ratio = figures.get("ratio_to_floor")
    ratios = "/".join(f"{ratio[p]:g}" for p in ("p50", "p95", "p99")) if ratio else ""
    return (
        f"{label:<36}{figures['p50']:>7.3f}s {figures['p95']:>7.3f}s "
        f"{figures['p99']:>7.3f}s  {ratios}"
    )


def _row(label: str, *cells: Any) -> str:
    return f"{label:<44}" + "".join(f"{c!s:>12}" for c in cells)


if __name__ == "__main__":
    sys.exit(main())
