"""Cross-account sts:AssumeRole through the AWS emulator, as AWS answers it (F19).

Legend used in the docstrings below:
[layer] behaviour supplied by ``delegated_aws.devenv.awsemu`` (moto 5.2 gets it
wrong or does not do it); [moto] behaviour moto provides natively and the
emulator only passes through.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from delegated_aws.devenv.awsemu import InProcessAwsEmulator

from .conftest import Clients

EXT = "ext-0123456789"
OPERATOR_USER = "arn:aws:iam::111111111111:user/delegated-aws-operator"
NO_VALIDATION = Config(retries={"total_max_attempts": 1}, parameter_validation=False)


def assume(sts: Any, role_arn: str, **kwargs: Any) -> dict[str, Any]:
    return dict(sts.assume_role(RoleArn=role_arn, RoleSessionName="op-1", **kwargs))


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = excinfo.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def denied(caller: str, role_arn: str) -> tuple[int, str, str]:
    return (
        403,
        "AccessDenied",
        f"User: {caller} is not authorized to perform: sts:AssumeRole "
        f"on resource: {role_arn}",
    )


@pytest.mark.parametrize(
    "principal",
    [
        "111111111111",
        "arn:aws:iam::111111111111:root",
        OPERATOR_USER,
    ],
    ids=["account-id-principal", "root-arn-principal", "exact-user-arn-principal"],
)
def test_cross_account_assume_role_with_right_external_id(
    clients: Clients,
    operator_creds: dict[str, str],
    make_customer_role: Any,
    principal: str,
) -> None:
    """[layer] trust evaluated in the role's account, account/root principals
    honoured; [layer] credentials minted in the role's account;
    [moto] GetCallerIdentity answers for the session."""
    role_arn = make_customer_role(principal)
    sts = clients.make("sts", operator_creds)

    out = assume(sts, role_arn, ExternalId=EXT)

    name = role_arn.rsplit("/", 1)[1]
    session_arn = f"arn:aws:sts::222222222222:assumed-role/{name}/op-1"
    assert out["AssumedRoleUser"]["Arn"] == session_arn
    identity = clients.make("sts", out["Credentials"]).get_caller_identity()
    assert identity["Arn"] == session_arn
    assert identity["Account"] == "222222222222"
    assert identity["UserId"].endswith(":op-1")


@pytest.mark.parametrize(
    ("external_id", "principal"),
    [
        ({"ExternalId": "wrong-external-id"}, "111111111111"),
        ({}, "111111111111"),
        ({"ExternalId": EXT}, "333333333333"),
        ({"ExternalId": EXT}, "arn:aws:iam::111111111111:user/somebody-else"),
    ],
    ids=["wrong-external-id", "no-external-id", "other-account", "other-user"],
)
def test_assume_role_denied(
    clients: Clients,
    operator_creds: dict[str, str],
    make_customer_role: Any,
    external_id: dict[str, str],
    principal: str,
) -> None:
    """[layer] AWS's AccessDenied for every trust-policy mismatch (moto lets the
    cross-account call through and ignores a missing ExternalId)."""
    role_arn = make_customer_role(principal)
    with pytest.raises(ClientError) as excinfo:
        assume(clients.make("sts", operator_creds), role_arn, **external_id)
    assert error_of(excinfo) == denied(OPERATOR_USER, role_arn)


def test_assume_missing_role_is_access_denied(
    clients: Clients, operator_creds: dict[str, str]
) -> None:
    """[layer] a role that does not exist is indistinguishable from a denial."""
    role_arn = "arn:aws:iam::222222222222:role/does-not-exist"
    with pytest.raises(ClientError) as excinfo:
        assume(clients.make("sts", operator_creds), role_arn, ExternalId=EXT)
    assert error_of(excinfo) == denied(OPERATOR_USER, role_arn)


def test_identity_policy_of_caller_is_required_cross_account(
    clients: Clients, customer_creds: dict[str, str], make_customer_role: Any
) -> None:
    """[layer] a principal with no sts:AssumeRole permission is denied even when
    the role's trust policy names its account."""
    iam = clients.make("iam", customer_creds)
    iam.create_user(UserName="no-perms")
    key = iam.create_access_key(UserName="no-perms")["AccessKey"]
    role_arn = make_customer_role("222222222222")
    sts = clients.make("sts", key)
    with pytest.raises(ClientError) as excinfo:
        assume(sts, role_arn, ExternalId=EXT)
    caller = "arn:aws:iam::222222222222:user/no-perms"
    assert error_of(excinfo) == denied(caller, role_arn)


def test_duration_above_max_session_duration(
    clients: Clients, operator_creds: dict[str, str], make_customer_role: Any
) -> None:
    """[layer] moto ignores MaxSessionDuration."""
    role_arn = make_customer_role(max_session_duration=3600)
    with pytest.raises(ClientError) as excinfo:
        assume(
            clients.make("sts", operator_creds),
            role_arn,
            ExternalId=EXT,
            DurationSeconds=7200,
        )
    assert error_of(excinfo) == (
        400,
        "ValidationError",
        "The requested DurationSeconds exceeds the MaxSessionDuration set for "
        "this role.",
    )


def test_duration_within_max_session_duration_is_granted(
    clients: Clients, operator_creds: dict[str, str], make_customer_role: Any
) -> None:
    """[layer] the granted duration is reflected in Expiration."""
    role_arn = make_customer_role(max_session_duration=43200)
    out = assume(
        clients.make("sts", operator_creds),
        role_arn,
        ExternalId=EXT,
        DurationSeconds=7200,
    )
    remaining = out["Credentials"]["Expiration"] - datetime.now(UTC)
    assert timedelta(seconds=7100) < remaining <= timedelta(seconds=7200)


def _pod_session(clients: Clients, emulator: InProcessAwsEmulator) -> dict[str, Any]:
    op = emulator.operator
    sts = clients.make(
        "sts",
        {"AccessKeyId": op.access_key_id, "SecretAccessKey": op.secret_access_key},
    )
    return dict(
        sts.assume_role(RoleArn=op.pod_role_arn, RoleSessionName="pod-1")["Credentials"]
    )


def test_role_chaining_limit(
    clients: Clients, emulator: InProcessAwsEmulator, make_customer_role: Any
) -> None:
    """[layer] role chaining is capped at one hour (moto ignores it); the pod
    role session stands in for IRSA / EKS Pod Identity."""
    pod = clients.make("sts", _pod_session(clients, emulator))
    assert pod.get_caller_identity()["Arn"] == (
        "arn:aws:sts::111111111111:assumed-role/delegated-aws-operator-pod/pod-1"
    )
    role_arn = make_customer_role(max_session_duration=43200)
    with pytest.raises(ClientError) as excinfo:
        assume(pod, role_arn, ExternalId=EXT, DurationSeconds=7200)
    assert error_of(excinfo) == (
        400,
        "ValidationError",
        "The requested DurationSeconds exceeds the 1 hour session limit for "
        "roles assumed by role chaining.",
    )
    out = assume(pod, role_arn, ExternalId=EXT, DurationSeconds=3600)
    assert out["AssumedRoleUser"]["Arn"].startswith("arn:aws:sts::222222222222:")


def test_role_arn_principal_trusts_sessions_of_that_role(
    clients: Clients, emulator: InProcessAwsEmulator, make_customer_role: Any
) -> None:
    """[layer] a role-ARN principal matches that role's sessions, cross-account."""
    role_arn = make_customer_role(emulator.operator.pod_role_arn)
    pod = clients.make("sts", _pod_session(clients, emulator))
    assert assume(pod, role_arn, ExternalId=EXT)["AssumedRoleUser"]["Arn"]
    user = clients.make(
        "sts",
        {
            "AccessKeyId": emulator.operator.access_key_id,
            "SecretAccessKey": emulator.operator.secret_access_key,
        },
    )
    with pytest.raises(ClientError) as excinfo:
        assume(user, role_arn, ExternalId=EXT)
    assert error_of(excinfo) == denied(OPERATOR_USER, role_arn)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"RoleSessionName": "bad name"},
            "1 validation error detected: Value 'bad name' at 'roleSessionName' "
            "failed to satisfy constraint: Member must satisfy regular expression "
            r"pattern: [\w+=,.@-]*",
        ),
        (
            {"RoleSessionName": "x"},
            "1 validation error detected: Value 'x' at 'roleSessionName' failed to "
            "satisfy constraint: Member must have length greater than or equal to 2",
        ),
        (
            {"DurationSeconds": 899},
            "1 validation error detected: Value '899' at 'durationSeconds' failed "
            "to satisfy constraint: Member must have value greater than or equal "
            "to 900",
        ),
        (
            {"DurationSeconds": 43201},
            "1 validation error detected: Value '43201' at 'durationSeconds' "
            "failed to satisfy constraint: Member must have value less than or "
            "equal to 43200",
        ),
        (
            {"ExternalId": "bad id!"},
            "1 validation error detected: Value 'bad id!' at 'externalId' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            r"[\w+=,.@:\/-]*",
        ),
        (
            {"ExternalId": "x", "RoleSessionName": "a b"},
            "2 validation errors detected: Value 'a b' at 'roleSessionName' "
            "failed to satisfy constraint: Member must satisfy regular expression "
            r"pattern: [\w+=,.@-]*; Value 'x' at 'externalId' failed to satisfy "
            "constraint: Member must have length greater than or equal to 2",
        ),
    ],
    ids=[
        "session-name-pattern",
        "session-name-too-short",
        "duration-below-900",
        "duration-above-43200",
        "external-id-pattern",
        "two-errors-reported-together",
    ],
)
def test_parameter_validation_errors(
    clients: Clients,
    operator_creds: dict[str, str],
    make_customer_role: Any,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    """[layer] AWS's ValidationError wording (moto checks only length > 64)."""
    role_arn = make_customer_role()
    sts = clients.make("sts", operator_creds, config=NO_VALIDATION)
    params = {"RoleArn": role_arn, "RoleSessionName": "op-1", **kwargs}
    with pytest.raises(ClientError) as excinfo:
        sts.assume_role(**params)
    assert error_of(excinfo) == (400, "ValidationError", message)


def test_wrong_secret_is_signature_mismatch(
    clients: Clients, emulator: InProcessAwsEmulator, make_customer_role: Any
) -> None:
    """[moto] signature check (run by the layer through moto's IAM auth)."""
    creds = {
        "AccessKeyId": emulator.operator.access_key_id,
        "SecretAccessKey": "not-the-secret",
    }
    with pytest.raises(ClientError) as excinfo:
        assume(clients.make("sts", creds), make_customer_role(), ExternalId=EXT)
    assert error_of(excinfo)[:2] == (403, "SignatureDoesNotMatch")


def test_unknown_access_key_is_invalid_client_token(
    clients: Clients, make_customer_role: Any
) -> None:
    """[moto] unknown keys are rejected before any trust evaluation."""
    creds = {"AccessKeyId": "AKIAUNKNOWNUNKNOWN00", "SecretAccessKey": "x" * 40}
    with pytest.raises(ClientError) as excinfo:
        assume(clients.make("sts", creds), make_customer_role(), ExternalId=EXT)
    assert error_of(excinfo) == (
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )


@pytest.mark.parametrize(
    "role_arn",
    [
        "arn:aws:iam::222222222222:user/bob",
        "arn:aws:iam::2222:role/too-short-account",
        "not-an-arn-but-twenty-chars-long",
    ],
    ids=["user-arn", "short-account-id", "garbage"],
)
def test_unparseable_role_arn_is_request_arn_invalid(
    clients: Clients, operator_creds: dict[str, str], role_arn: str
) -> None:
    """[layer] STS's answer to a RoleArn that is no role ARN (moto accepts it)."""
    sts = clients.make("sts", operator_creds, config=NO_VALIDATION)
    with pytest.raises(ClientError) as excinfo:
        assume(sts, role_arn, ExternalId=EXT)
    assert error_of(excinfo) == (400, "ValidationError", "Request ARN is invalid")
