"""Running the operator: settings and flags, metrics, liveness, peering, logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import kopf
import pytest

from delegated_aws import cli, metrics
from delegated_aws.handlers import _configure_kopf, check_hearing
from delegated_aws.operator import configure_logging
from delegated_aws.peering import outranked
from delegated_aws.settings import Settings

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NAMESPACES", "LABEL_SELECTOR", "METRICS_PORT", "PEERING"):
        monkeypatch.delenv(f"DELEGATED_AWS_{name}", raising=False)


def _run_args(*flags: str) -> Settings:
    args = cli._parser().parse_args(["run", *flags])
    return cli.settings_from_args(args)


def test_cli_errors_name_the_kubeconfig_or_the_missing_resource() -> None:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    refresh = cli._parser().parse_args(["refresh", "nope", "-n", "team-a"])
    listing = cli._parser().parse_args(["status", "-A"])

    assert cli.describe(ConfigException("No configuration found."), refresh) == (
        "no usable kubeconfig (No configuration found.); set KUBECONFIG"
    )
    assert cli.describe(ApiException(status=404), refresh) == (
        "DelegatedAWSSecret 'nope' not found in namespace 'team-a'; check the "
        "name, or pass -n NAMESPACE"
    )
    assert cli.describe(ApiException(status=403), listing) == (
        "forbidden in any namespace by RBAC for the current kubeconfig user"
    )


def test_every_setting_has_a_run_flag() -> None:
    assert set(cli.RUN_FLAGS) == set(Settings.model_fields)


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELEGATED_AWS_LABEL_SELECTOR", "shard=a")
    monkeypatch.setenv("DELEGATED_AWS_DEFAULT_REGION", "eu-west-1")

    settings = _run_args("--selector", "shard=b")

    assert settings.label_selector == "shard=b"
    assert settings.default_region == "eu-west-1"


def test_every_flag_reaches_its_setting() -> None:
    settings = _run_args(
        *("--namespace", "a", "--namespace", "b"),
        *("--selector", "shard=a", "--default-region", "eu-west-1"),
        *("--trust-principal", "principal", "--forbid-external-id-override"),
        *("--allow-unenforced-external-id", "--min-refresh-margin", "20m"),
        *("--iam-propagation-grace", "1m", "--sts-concurrency", "3"),
        *("--log-format", "json", "--metrics-port", "9000", "--health-port", "9001"),
        *("--watch-timeout", "2m", "--deaf-after", "90s"),
        *("--peering", "p", "--peering-priority", "7"),
    )

    assert settings.model_dump() == {
        "namespaces": ("a", "b"),
        "label_selector": "shard=a",
        "default_region": "eu-west-1",
        "trust_principal": "principal",
        "allow_external_id_override": False,
        "require_external_id_enforcement": False,
        "min_refresh_margin": timedelta(minutes=20),
        "iam_propagation_grace": timedelta(minutes=1),
        "sts_concurrency": 3,
        "log_format": "json",
        "metrics_port": 9000,
        "health_port": 9001,
        "watch_timeout": timedelta(minutes=2),
        "deaf_after": timedelta(seconds=90),
        "peering": "p",
        "peering_priority": 7,
    }


@pytest.mark.parametrize(
    ("metrics_port", "health_port", "expected"),
    [
        ("8080", None, 8081),
        ("8080", "9000", 9000),
        ("0", None, None),
        ("0", "9000", 9000),
        ("8080", "0", None),
    ],
    ids=["next-port", "explicit", "metrics-off", "only-health", "health-off"],
)
def test_liveness_port_layout(
    monkeypatch: pytest.MonkeyPatch,
    metrics_port: str,
    health_port: str | None,
    expected: int | None,
) -> None:
    monkeypatch.setenv("DELEGATED_AWS_METRICS_PORT", metrics_port)
    if health_port is not None:
        monkeypatch.setenv("DELEGATED_AWS_HEALTH_PORT", health_port)

    assert Settings().liveness_port == expected


def test_kopf_gets_explicit_watch_timeouts_and_the_shard_selector() -> None:
    kopf_settings = kopf.OperatorSettings()

    _configure_kopf(
        kopf_settings,
        Settings(label_selector="shard=a", watch_timeout=timedelta(minutes=4)),
    )

    watching = kopf_settings.watching
    assert (watching.server_timeout, watching.client_timeout) == (240, 270)
    assert watching.connect_timeout == 30.0
    assert watching.inactivity_timeout == 90.0
    assert isinstance(watching.server_timeout, int)
    selectors = watching.label_selectors
    assert selectors["delegatedaws.io", "delegatedawssecrets"] == "shard=a"


class _Canary:
    def __init__(self, silence: float) -> None:
        self._silence = silence

    def silence(self) -> float:
        return self._silence


def test_hearing_probe_reports_silence_while_within_bounds() -> None:
    found = check_hearing(_Canary(12.34), deaf_after=timedelta(seconds=30))  # type: ignore[arg-type]

    assert found == 12.3


def test_hearing_probe_fails_permanently_when_deaf() -> None:
    with pytest.raises(kopf.PermanentError) as raised:
        check_hearing(_Canary(31.0), deaf_after=timedelta(seconds=30))  # type: ignore[arg-type]

    assert str(raised.value) == (
        "No watch on the API server has worked for 31s; the operator is deaf."
    )


def _peer(priority: int, *, seen: timedelta, lifetime: int = 60) -> dict[str, object]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - seen).isoformat(),
    }


@pytest.mark.parametrize(
    ("peers", "expected"),
    [
        ({"me": _peer(5, seen=timedelta(0))}, False),
        ({"me": _peer(5, seen=timedelta(0)), "o": _peer(4, seen=timedelta(0))}, False),
        ({"me": _peer(5, seen=timedelta(0)), "o": _peer(6, seen=timedelta(0))}, True),
        ({"me": _peer(5, seen=timedelta(0)), "o": _peer(5, seen=timedelta(0))}, True),
        (
            {"me": _peer(5, seen=timedelta(0)), "o": _peer(9, seen=timedelta(61))},
            False,
        ),
    ],
    ids=["alone", "lower-peer", "higher-peer", "equal-peer", "dead-higher-peer"],
)
def test_peering_rule_matches_kopf(peers: dict[str, object], expected: bool) -> None:
    assert outranked(peers, identity="me", priority=5, now=NOW) is expected


@pytest.fixture
def metrics_server() -> Iterator[tuple[int, list[bool]]]:
    ready = [False]
    server = metrics.serve(0, ready=lambda: ready[0])
    yield server.server_port, ready
    server.shutdown()
    server.server_close()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_readyz_follows_readiness(metrics_server: tuple[int, list[bool]]) -> None:
    port, ready = metrics_server

    before = _get(port, "/readyz")
    ready[0] = True
    after = _get(port, "/readyz")

    assert before == (503, "not ready\n")
    assert after == (200, "ok\n")


def test_metrics_export_expiry_refreshes_failures_and_latency(
    metrics_server: tuple[int, list[bool]],
) -> None:
    port, _ = metrics_server
    metrics.credentials_written(
        "ns-m", "reader", expiration=1893499200.0, action="Refresh"
    )
    metrics.reconcile_failed("UnitTestReason")

    async def assume() -> str:
        return "creds"

    asyncio.run(metrics.timed_assume_role(assume()))

    status, text = _get(port, "/metrics")

    assert status == 200
    assert (
        'delegated_aws_credentials_expiry_timestamp_seconds{name="reader",'
        'namespace="ns-m"} 1.8934992e+09'
    ) in text
    assert 'delegated_aws_credential_refreshes_total{action="Refresh"}' in text
    assert 'delegated_aws_reconcile_failures_total{reason="UnitTestReason"} 1.0' in text
    assert 'delegated_aws_assume_role_duration_seconds_count{outcome="ok"}' in text


def test_gone_resource_drops_its_expiry_series() -> None:
    metrics.credentials_written("ns-g", "gone", expiration=1.0, action=None)

    metrics.resource_gone("ns-g", "gone")
    metrics.resource_gone("ns-g", "never-had-credentials")

    samples = metrics.CREDENTIALS_EXPIRY.collect()[0].samples
    assert [s for s in samples if s.labels["namespace"] == "ns-g"] == []


def test_json_log_format_writes_one_object_per_line() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(Settings(log_format="json"))
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]

        logging.getLogger("delegated_aws").info("ns/reader Ready=True.")

        line = json.loads(stream.getvalue())
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert line["message"] == "ns/reader Ready=True."
    assert (line["level"], line["name"]) == ("INFO", "delegated_aws")
    assert "time" in line
