"""The operator's own credentials rotate under a running ``StsGateway``.

The gateway gets its credentials the way a pod does, from the SDK's default
chain; here a ``credential_process`` profile stands in for IRSA's web identity
token (both give botocore refreshable credentials). The operator's IAM user
gets a new access key and loses the old one while the gateway keeps its cached
clients: every call must still succeed, signed with the new key.

[moto] the IAM user, its keys and the rejection of a deleted key; [layer] the
cross-account AssumeRole.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.iam.models import iam_backends

from delegated_aws.devenv.awsemu import InProcessAwsEmulator
from delegated_aws.errors import OperatorIdentityError
from delegated_aws.sts import StsGateway

EXT = "ext-0123456789"


@pytest.fixture(scope="module")
def emulator() -> Iterator[InProcessAwsEmulator]:
    """A fresh emulator of this module's own: it deletes the operator's key."""
    with InProcessAwsEmulator() as emu:
        yield emu


class KeyFile:
    """What the credential process prints: one of the user's access keys."""

    def __init__(self, path: Path, emulator: InProcessAwsEmulator) -> None:
        self.path = path
        operator = emulator.operator
        self._iam = iam_backends[operator.account_id]["aws"]
        self._user = operator.user_arn.rsplit("/", 1)[1]
        self.write(operator.access_key_id, operator.secret_access_key)

    def write(self, access_key_id: str, secret_access_key: str) -> str:
        # Five minutes left is inside botocore's mandatory refresh window, so
        # the credential process runs again before every signed request.
        expiration = datetime.now(UTC) + timedelta(minutes=5)
        document = {
            "Version": 1,
            "AccessKeyId": access_key_id,
            "SecretAccessKey": secret_access_key,
            "Expiration": expiration.isoformat(timespec="seconds"),
        }
        self.path.write_text(json.dumps(document))
        return access_key_id

    def new_key(self) -> str:
        """A new key of the operator's user, written for the process to print."""
        key = self._iam.create_access_key(self._user)
        return self.write(key.access_key_id, key.secret_access_key)

    def delete(self, access_key_id: str) -> None:
        self._iam.delete_access_key(access_key_id, self._user)


@pytest.fixture
def key_file(
    emulator: InProcessAwsEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> KeyFile:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    keys = KeyFile(tmp_path / "operator-key.json", emulator)
    config = tmp_path / "config"
    config.write_text(f"[profile operator]\ncredential_process = cat {keys.path}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint_url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return keys


def _assume(gateway: StsGateway, role_arn: str) -> Any:
    return asyncio.run(
        gateway.assume_role(
            role_arn=role_arn,
            external_id=EXT,
            session_name="rotation",
            duration=timedelta(hours=1),
            region="us-east-1",
        )
    )


def _signing_keys(emulator: InProcessAwsEmulator) -> list[str]:
    return [str(c["access_key_id"]) for c in emulator.client.calls(action="AssumeRole")]


def test_gateway_keeps_working_when_the_operators_key_rotates(
    emulator: InProcessAwsEmulator, key_file: KeyFile, make_customer_role: Any
) -> None:
    role_arn = make_customer_role()
    old_key = emulator.operator.access_key_id
    gateway = StsGateway(
        concurrency=2, session=boto3.session.Session(profile_name="operator")
    )
    _assume(gateway, role_arn)

    new_key = key_file.new_key()
    key_file.delete(old_key)
    issued = _assume(gateway, role_arn)

    assert issued.assumed_role_arn.startswith(
        f"arn:aws:sts::{role_arn.split(':')[4]}:assumed-role/"
    )
    assert _signing_keys(emulator) == [old_key, new_key]
    # The control: the rotated-out key alone is refused now.
    key_file.write(old_key, emulator.operator.secret_access_key)
    with pytest.raises(OperatorIdentityError) as raised:
        _assume(gateway, role_arn)
    assert raised.value.aws_code == "InvalidClientTokenId"
