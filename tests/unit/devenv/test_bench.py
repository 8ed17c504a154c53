"""The benchmark's pure parts: the STS cost simulation and the arithmetic."""

from __future__ import annotations

from datetime import timedelta

import pytest

from delegated_aws.devenv import bench, bench_cost
from delegated_aws.devenv.bench_watch import percentile, summary


def _by(strategy: str, hours: int) -> bench_cost.CostFigures:
    figures = bench_cost.run((timedelta(hours=hours),), days=2)
    return next(f for f in figures if f.strategy == strategy)


@pytest.mark.parametrize(
    ("hours", "per_day"),
    [pytest.param(1, 36, id="1h-every-40min"), pytest.param(12, 3, id="12h-every-8h")],
)
def test_operator_refreshes_a_third_before_expiry_and_never_runs_low(
    hours: int, per_day: float
) -> None:
    figures = _by("operator", hours)

    assert figures.assume_role_per_day == per_day
    assert figures.minimum_per_day == 24 / hours
    assert figures.expired_seconds_per_day == 0
    assert figures.low_seconds_per_day == 0


def test_hourly_refresher_spends_a_quarter_of_a_1h_lifetime_under_15_minutes() -> None:
    figures = _by("fixed 1h interval", 1)

    assert figures.assume_role_per_day == 24
    assert figures.low_seconds_per_day == pytest.approx(6 * 3600, abs=5)
    assert figures.expired_seconds_per_day > 0


def test_hourly_refresher_calls_twelve_times_the_minimum_for_12h() -> None:
    figures = _by("fixed 1h interval", 12)

    assert figures.as_json()["ratio_to_minimum"] == 12


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert summary(values)["p95"] == 95
    assert summary(values)["n"] == 100


def test_table_names_the_control_plane_start_up_and_idle_memory() -> None:
    results = {
        "machine": {"control_plane_binaries_mib": 301.6},
        "sts_cost": [],
        "control_plane": {
            "ready_s": 4.2,
            "idle_rss_mib": {
                "etcd": 40.4,
                "kube_apiserver": 290.0,
                "kube_controller_manager": 80.6,
            },
        },
    }

    table = bench.render(results)

    assert (
        "control plane: ready in 4.2 s (binaries built, 301.6 MiB); idle RSS "
        "etcd 40 MiB, kube_apiserver 290 MiB, kube_controller_manager 81 MiB"
    ) in table.splitlines()
