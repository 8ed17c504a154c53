"""Fixtures: one in-process AWS emulator per module, clean state per test."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from delegated_aws.devenv.awsemu import InProcessAwsEmulator

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def emulator() -> Iterator[InProcessAwsEmulator]:
    with InProcessAwsEmulator() as emu:
        yield emu


@pytest.fixture(autouse=True)
def _clean_emulator_state(request: pytest.FixtureRequest) -> Iterator[None]:
    if "emulator" not in request.fixturenames:
        yield
        return
    emu: InProcessAwsEmulator = request.getfixturevalue("emulator")
    emu.client.clear_faults()
    emu.client.set_session_lifetime(None)
    emu.client.reset_calls()
    yield
    emu.client.clear_faults()
    emu.client.set_session_lifetime(None)


class Clients:
    """boto3 clients against the emulator for a given set of credentials."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url

    def make(
        self,
        service: str,
        creds: dict[str, str],
        *,
        region: str = "us-east-1",
        config: Config | None = None,
    ) -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
            config=config or NO_RETRIES,
        )


@pytest.fixture(scope="module")
def clients(emulator: InProcessAwsEmulator) -> Clients:
    return Clients(emulator.endpoint_url)


@pytest.fixture(scope="module")
def operator_creds(emulator: InProcessAwsEmulator) -> dict[str, str]:
    op = emulator.operator
    return {"AccessKeyId": op.access_key_id, "SecretAccessKey": op.secret_access_key}


@pytest.fixture(scope="module")
def customer_creds(emulator: InProcessAwsEmulator) -> dict[str, str]:
    cu = emulator.customer
    return {"AccessKeyId": cu.access_key_id, "SecretAccessKey": cu.secret_access_key}


def trust_policy(principal: Any, external_id: str | None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture
def make_customer_role(clients: Clients, customer_creds: dict[str, str]) -> Any:
    """Create a uniquely named role in the CUSTOMER account as its admin."""
    iam = clients.make("iam", customer_creds)

    def make(
        principal: Any = "111111111111",
        *,
        external_id: str | None = "ext-0123456789",
        max_session_duration: int = 3600,
        permissions: dict[str, Any] | None = None,
    ) -> str:
        name = f"delegated-{uuid.uuid4().hex[:10]}"
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=trust_policy(principal, external_id),
            MaxSessionDuration=max_session_duration,
        )["Role"]
        if permissions is not None:
            iam.put_role_policy(
                RoleName=name,
                PolicyName="permissions",
                PolicyDocument=json.dumps(permissions),
            )
        return str(role["Arn"])

    return make
