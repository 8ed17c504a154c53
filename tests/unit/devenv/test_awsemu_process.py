"""The emulator as a child process, reached only through standard SDK settings.

[layer] the ``serve`` entry point, the ready file, SIGTERM shutdown and the
call log's region come from ``delegated_aws.devenv.awsemu``; [moto] answers
GetCallerIdentity.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from delegated_aws.devenv.awsemu import AwsEmulator


@pytest.fixture(scope="module")
def process_emulator() -> Iterator[AwsEmulator]:
    with AwsEmulator() as emu:
        yield emu


def test_ready_file_fields(process_emulator: AwsEmulator) -> None:
    """[layer] the ready document carries endpoint and both accounts."""
    emu = process_emulator
    assert emu.endpoint_url.startswith("http://127.0.0.1:")
    assert emu.operator.account_id == "111111111111"
    assert emu.operator.user_arn == (
        "arn:aws:iam::111111111111:user/delegated-aws-operator"
    )
    assert emu.operator.pod_role_arn == (
        "arn:aws:iam::111111111111:role/delegated-aws-operator-pod"
    )
    assert emu.customer.account_id == "222222222222"
    assert emu.customer.access_key_id.startswith("AKIA")
    assert emu.client.info()["endpoint_url"] == emu.endpoint_url


def test_sdk_environment_reaches_emulator_with_any_region(
    process_emulator: AwsEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """[layer] AWS_ENDPOINT_URL + region_name=ap-east-1: the call log records
    the region from the SigV4 credential scope."""
    emu = process_emulator
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name, value in emu.sdk_env(emu.operator).items():
        monkeypatch.setenv(name, value)
    emu.client.reset_calls()

    sts = boto3.session.Session().client("sts", region_name="ap-east-1")
    identity = sts.get_caller_identity()

    assert identity["Arn"] == emu.operator.user_arn
    calls = emu.client.calls(action="GetCallerIdentity")
    assert [(c["region"], c["outcome"]) for c in calls] == [("ap-east-1", "ok")]


def test_stop_terminates_the_child() -> None:
    """[layer] stop() sends SIGTERM and the server exits cleanly."""
    emu = AwsEmulator().start()
    process = emu._process
    assert process is not None and process.poll() is None
    emu.stop()
    assert process.returncode == 0
