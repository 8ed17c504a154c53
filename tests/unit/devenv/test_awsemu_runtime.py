"""Session lifetimes, expiry, fault injection, the call log and S3 permissions.

[layer] = supplied by ``delegated_aws.devenv.awsemu``; [moto] = moto's own
behaviour, passed through by the emulator.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from delegated_aws.devenv.awsemu import InProcessAwsEmulator

from .conftest import Clients

EXT = "ext-0123456789"
READ_DATA = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetObject"],
            "Resource": ["arn:aws:s3:::customer-data", "arn:aws:s3:::customer-data/*"],
        }
    ],
}


def assume(clients: Clients, creds: dict[str, str], role_arn: str) -> dict[str, str]:
    sts = clients.make("sts", creds)
    out = sts.assume_role(RoleArn=role_arn, RoleSessionName="op-1", ExternalId=EXT)
    return dict(out["Credentials"])


def code_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = excinfo.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


# -- session lifetime and expiry ---------------------------------------------------


def test_session_lifetime_override_is_reflected_in_expiration(
    emulator: InProcessAwsEmulator,
    clients: Clients,
    operator_creds: dict[str, str],
    make_customer_role: Any,
) -> None:
    """[layer] time-scaled lifetimes; Expiration reports what was granted."""
    role_arn = make_customer_role()
    emulator.client.set_session_lifetime(20)
    assert emulator.client.session_lifetime() == 20
    granted = assume(clients, operator_creds, role_arn)["Expiration"]
    remaining = granted - datetime.now(UTC)  # type: ignore[operator]
    assert timedelta(seconds=15) < remaining <= timedelta(seconds=20)

    emulator.client.set_session_lifetime(None)
    default = assume(clients, operator_creds, role_arn)["Expiration"]
    remaining = default - datetime.now(UTC)  # type: ignore[operator]
    assert timedelta(seconds=3500) < remaining <= timedelta(seconds=3600)


def test_expired_session_credentials_are_rejected(
    emulator: InProcessAwsEmulator,
    clients: Clients,
    operator_creds: dict[str, str],
    customer_creds: dict[str, str],
    make_customer_role: Any,
) -> None:
    """[layer] moto never expires credentials; the layer answers ExpiredToken in
    each protocol's shape (query: 403, S3: 400)."""
    clients.make("s3", customer_creds).create_bucket(Bucket="customer-data")
    role_arn = make_customer_role(permissions=READ_DATA)
    emulator.client.set_session_lifetime(2)
    creds = assume(clients, operator_creds, role_arn)
    sts = clients.make("sts", creds)
    s3 = clients.make("s3", creds)
    assert sts.get_caller_identity()["Account"] == "222222222222"
    s3.list_objects_v2(Bucket="customer-data")

    time.sleep(2.5)

    with pytest.raises(ClientError) as excinfo:
        sts.get_caller_identity()
    assert code_of(excinfo) == (
        403,
        "ExpiredToken",
        "The security token included in the request is expired",
    )
    with pytest.raises(ClientError) as excinfo:
        s3.list_objects_v2(Bucket="customer-data")
    assert code_of(excinfo) == (400, "ExpiredToken", "The provided token has expired.")
    fresh = clients.make("sts", assume(clients, operator_creds, role_arn))
    assert fresh.get_caller_identity()["Account"] == "222222222222"


# -- fault injection and call log ----------------------------------------------------


def test_throttling_fault_with_count_and_call_log(
    emulator: InProcessAwsEmulator,
    clients: Clients,
    operator_creds: dict[str, str],
    make_customer_role: Any,
) -> None:
    """[layer] a counted fault fires exactly `count` times; every call is logged."""
    role_arn = make_customer_role()
    emulator.client.add_fault("AssumeRole", preset="Throttling", count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as excinfo:
            assume(clients, operator_creds, role_arn)
        assert code_of(excinfo) == (400, "Throttling", "Rate exceeded")
    assume(clients, operator_creds, role_arn)

    calls = emulator.client.calls(action="AssumeRole")
    assert [c["outcome"] for c in calls] == ["Throttling", "Throttling", "ok"]
    assert [c["fault_injected"] for c in calls] == [True, True, False]
    last = calls[-1]
    assert last["caller"] == emulator.operator.user_arn
    assert last["region"] == "us-east-1"
    assert last["role_arn"] == role_arn
    assert last["external_id_given"] is True
    assert last["role_session_name"] == "op-1"
    assert datetime.fromisoformat(last["timestamp"]) <= datetime.now(UTC)
    assert emulator.client.faults()[0]["count"] == 0


def test_sdk_retries_throttling_until_fault_is_used_up(
    emulator: InProcessAwsEmulator,
    clients: Clients,
    operator_creds: dict[str, str],
    make_customer_role: Any,
) -> None:
    """[layer] botocore's retry of Throttling is visible in the call log."""
    role_arn = make_customer_role()
    emulator.client.add_fault("AssumeRole", preset="Throttling", count=2)
    sts = clients.make(
        "sts",
        operator_creds,
        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
    )
    sts.assume_role(RoleArn=role_arn, RoleSessionName="op-1", ExternalId=EXT)
    outcomes = [c["outcome"] for c in emulator.client.calls(action="AssumeRole")]
    assert outcomes == ["Throttling", "Throttling", "ok"]


@pytest.mark.parametrize(
    ("preset", "status", "message"),
    [
        (
            "RegionDisabledException",
            403,
            # The account asked to issue credentials: the role's.
            "STS is not activated in this region for account:222222222222. Your "
            "account administrator can activate STS in this region using the IAM "
            "Console.",
        ),
        (
            "InvalidClientTokenId",
            403,
            "The security token included in the request is invalid.",
        ),
        ("ExpiredToken", 403, "The security token included in the request is expired"),
        ("InternalFailure", 500, None),
        ("ServiceUnavailable", 503, None),
    ],
)
def test_preset_faults_use_aws_wire_shape(
    emulator: InProcessAwsEmulator,
    clients: Clients,
    operator_creds: dict[str, str],
    make_customer_role: Any,
    preset: str,
    status: int,
    message: str | None,
) -> None:
    """[layer] preset faults parse in botocore as the real errors."""
    role_arn = make_customer_role()
    emulator.client.add_fault("AssumeRole", preset=preset, count=1)
    with pytest.raises(ClientError) as excinfo:
        assume(clients, operator_creds, role_arn)
    got_status, code, got_message = code_of(excinfo)
    assert (got_status, code) == (status, preset)
    if message is not None:
        assert got_message == message


def test_access_denied_preset_names_the_caller_and_the_role(
    emulator: InProcessAwsEmulator,
    clients: Clients,
    operator_creds: dict[str, str],
    make_customer_role: Any,
) -> None:
    """[layer] the preset words a refused AssumeRole as STS does."""
    role_arn = make_customer_role()
    emulator.client.add_fault("AssumeRole", preset="AccessDenied", count=1)
    with pytest.raises(ClientError) as excinfo:
        assume(clients, operator_creds, role_arn)
    assert code_of(excinfo) == (
        403,
        "AccessDenied",
        f"User: {emulator.operator.user_arn} is not authorized to perform: "
        f"sts:AssumeRole on resource: {role_arn}",
    )


def test_fault_filters_on_role_and_external_id(
    emulator: InProcessAwsEmulator,
    clients: Clients,
    operator_creds: dict[str, str],
    make_customer_role: Any,
) -> None:
    """[layer] rules match by role ARN and ExternalId presence; probability 0
    never fires."""
    hit, miss = make_customer_role(), make_customer_role()
    emulator.client.add_fault(
        "AssumeRole", preset="AccessDenied", role_arn=hit, external_id_present=True
    )
    emulator.client.add_fault("GetCallerIdentity", preset="Throttling", probability=0)
    assume(clients, operator_creds, miss)
    clients.make("sts", operator_creds).get_caller_identity()
    with pytest.raises(ClientError):
        assume(clients, operator_creds, hit)


def test_latency_only_fault_and_removal(
    emulator: InProcessAwsEmulator,
    clients: Clients,
    operator_creds: dict[str, str],
) -> None:
    """[layer] a rule without an error code only adds latency."""
    sts = clients.make("sts", operator_creds)
    fault_id = emulator.client.add_fault("GetCallerIdentity", code=None, latency_ms=300)
    started = time.monotonic()
    sts.get_caller_identity()
    assert time.monotonic() - started >= 0.3
    emulator.client.remove_fault(fault_id)
    assert emulator.client.faults() == []


def test_drop_connection_fault(
    emulator: InProcessAwsEmulator,
    clients: Clients,
    operator_creds: dict[str, str],
) -> None:
    """[layer] the connection is closed without an HTTP answer."""
    emulator.client.add_fault("GetCallerIdentity", drop_connection=True, count=1)
    sts = clients.make("sts", operator_creds)
    with pytest.raises(ConnectionClosedError):
        sts.get_caller_identity()
    assert sts.get_caller_identity()["Account"] == "111111111111"


# -- S3 with the assumed role's permissions -------------------------------------------


def test_assumed_role_permissions_are_enforced_for_s3(
    clients: Clients,
    operator_creds: dict[str, str],
    customer_creds: dict[str, str],
    make_customer_role: Any,
) -> None:
    """[moto] identity-policy enforcement for S3 (Action + Resource) against the
    role's permissions policy; [layer] the session lives in the customer
    account so moto finds the role's policies there."""
    admin_s3 = clients.make("s3", customer_creds)
    admin_s3.create_bucket(Bucket="customer-data")
    admin_s3.create_bucket(Bucket="customer-secret")
    admin_s3.put_object(Bucket="customer-data", Key="report.csv", Body=b"a,b\n")
    role_arn = make_customer_role(permissions=READ_DATA)
    s3 = clients.make("s3", assume(clients, operator_creds, role_arn))

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="customer-data")["Contents"]]
    assert "report.csv" in keys
    body = s3.get_object(Bucket="customer-data", Key="report.csv")["Body"].read()
    assert body == b"a,b\n"
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket="customer-data", Key="x", Body=b"x")
    assert code_of(excinfo)[:2] == (403, "AccessDenied")
    with pytest.raises(ClientError) as excinfo:
        s3.list_objects_v2(Bucket="customer-secret")
    assert code_of(excinfo)[:2] == (403, "AccessDenied")


def test_operator_user_cannot_administer_iam(
    clients: Clients, operator_creds: dict[str, str]
) -> None:
    """[moto] IAM auth is on: the operator user only has sts permissions."""
    with pytest.raises(ClientError) as excinfo:
        clients.make("iam", operator_creds).list_roles()
    assert code_of(excinfo)[:2] == (403, "AccessDenied")


# -- control surface -------------------------------------------------------------------


def _raw(
    emulator: InProcessAwsEmulator, path: str, *, data: bytes
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        emulator.endpoint_url + path,
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_unsigned_requests_and_moto_api_are_refused(
    emulator: InProcessAwsEmulator,
) -> None:
    """[layer] no unsigned AWS calls; moto's /moto-api cannot switch auth off."""
    status, body = _raw(
        emulator, "/", data=b"Action=GetCallerIdentity&Version=2011-06-15"
    )
    assert status == 403
    assert b"<Code>MissingAuthenticationToken</Code>" in body
    status, _ = _raw(emulator, "/moto-api/reset-auth", data=b"inf")
    assert status == 403


def test_info_matches_ready_document(emulator: InProcessAwsEmulator) -> None:
    """[layer] the control API echoes endpoint and accounts."""
    info = emulator.client.info()
    assert info["endpoint_url"] == emulator.endpoint_url
    assert info["operator"]["pod_role_arn"] == emulator.operator.pod_role_arn
    assert info["customer"]["admin_arn"] == (
        "arn:aws:iam::222222222222:user/customer-admin"
    )
    assert json.loads(json.dumps(info)) == info
