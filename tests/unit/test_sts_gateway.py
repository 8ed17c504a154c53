"""``StsGateway``: identity, AssumeRole, the wrong-id probe and access checks.

AWS answers come from botocore's ``Stubber`` on the gateway's own clients (so
real AWS error codes and messages reach the real parsing), from fakes where
timing matters, and from moto's in-process ``mock_aws`` for one end-to-end
pass. Injected, not emulated: every error answer below.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3.session
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from delegated_aws.errors import (
    AssumeRoleDeniedError,
    OperatorIdentityError,
    PermanentError,
    RoleChainingLimitError,
    SessionDurationExceedsRoleMaximum,
    TemporaryError,
)
from delegated_aws.messages import Reason
from delegated_aws.models import AccessCheck, Resources
from delegated_aws.sts import (
    PROBE_DURATION,
    CallerIdentity,
    IssuedCredentials,
    StsGateway,
)

ROLE = "arn:aws:iam::222222222222:role/delegated-reader"
SESSION = "team-a.reader"
EXTERNAL_ID = "6f1f2a8e-4c35-4d0b-9a63-0e2d3c1b5a77"
ASSUMED = "arn:aws:sts::222222222222:assumed-role/delegated-reader/team-a.reader"
KEY_ID = "ASIAQNZGKIQYEXAMPLE7"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDtqstfDEaRfZKFK5Z2"
KMS_KEY = (
    "arn:aws:kms:eu-central-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

_AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_SESSION_TOKEN",
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """An SDK environment with fake keys and nothing from this machine."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


@pytest.fixture
def gateway(aws_env: None) -> StsGateway:
    return StsGateway(concurrency=4, session=boto3.session.Session())


@pytest.fixture
def sts(gateway: StsGateway) -> Iterator[Stubber]:
    """The stubbed STS client of eu-west-1, checked for unused answers."""
    with Stubber(gateway.client("eu-west-1")) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def credentials(assumed_role_arn: str = ASSUMED) -> IssuedCredentials:
    now = datetime(2030, 1, 1, 9, tzinfo=UTC)
    return IssuedCredentials(
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        session_token=TOKEN,
        expiration=now + timedelta(hours=1),
        assumed_role_arn=assumed_role_arn,
        issued_at=now,
    )


def assume_answer(expiration: datetime) -> dict[str, Any]:
    return {
        "Credentials": {
            "AccessKeyId": KEY_ID,
            "SecretAccessKey": SECRET,
            "SessionToken": TOKEN,
            "Expiration": expiration,
        },
        "AssumedRoleUser": {
            "AssumedRoleId": "AROAEXAMPLEID123456:team-a.reader",
            "Arn": ASSUMED,
        },
    }


def assume_params(**overrides: Any) -> dict[str, Any]:
    params = {
        "RoleArn": ROLE,
        "RoleSessionName": SESSION,
        "ExternalId": EXTERNAL_ID,
        "DurationSeconds": 3600,
    }
    return {**params, **overrides}


async def assume(
    gateway: StsGateway, duration: timedelta = timedelta(hours=1)
) -> IssuedCredentials:
    return await gateway.assume_role(
        role_arn=ROLE,
        external_id=EXTERNAL_ID,
        session_name=SESSION,
        duration=duration,
        region="eu-west-1",
    )


# --- identity -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "partition", "role_session"),
    [
        ("arn:aws:iam::111111111111:user/ops", "aws", False),
        ("arn:aws:iam::111111111111:root", "aws", False),
        (
            "arn:aws:sts::111111111111:assumed-role/delegated-aws-operator/"
            "botocore-session-1717171717",
            "aws",
            True,
        ),
        (
            "arn:aws-cn:sts::111111111111:assumed-role/operator/i-0abc123",
            "aws-cn",
            True,
        ),
        ("arn:aws-us-gov:sts::111111111111:federated-user/bob", "aws-us-gov", False),
    ],
    ids=["user", "root", "IRSA session", "aws-cn instance role", "federated user"],
)
def test_identity(
    gateway: StsGateway, sts: Stubber, arn: str, partition: str, role_session: bool
) -> None:
    sts.add_response(
        "get_caller_identity",
        {"UserId": "AIDAEXAMPLEID1234567", "Account": "111111111111", "Arn": arn},
    )

    identity = run(gateway.identity("eu-west-1"))

    assert identity == CallerIdentity(
        account_id="111111111111",
        arn=arn,
        partition=partition,
        is_role_session=role_session,
    )


def test_identity_without_credentials(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    gateway = StsGateway(concurrency=1, session=boto3.session.Session())

    with pytest.raises(OperatorIdentityError) as caught:
        run(gateway.identity("eu-west-1"))

    assert caught.value.reason is Reason.OPERATOR_CREDENTIALS_INVALID
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --- endpoints and client configuration ---------------------------------------


class Sent(Exception):
    """Raised instead of sending, carrying the URL botocore would have used."""


def sent_url(client: Any) -> str:
    def capture(request: Any, **_: Any) -> None:
        raise Sent(request.url)

    client.meta.events.register_first("before-send", capture)
    with pytest.raises(Sent) as caught:
        client.get_caller_identity()
    return str(caught.value)


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("ap-east-1", "https://sts.ap-east-1.amazonaws.com"),
        ("cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn"),
        ("us-east-1", "https://sts.us-east-1.amazonaws.com"),
        ("us-gov-west-1", "https://sts.us-gov-west-1.amazonaws.com"),
        ("eu-central-2", "https://sts.eu-central-2.amazonaws.com"),
    ],
    ids=lambda value: str(value),
)
def test_regional_endpoint(gateway: StsGateway, region: str, endpoint: str) -> None:
    client = gateway.client(region)

    assert client.meta.region_name == region
    assert client.meta.endpoint_url == endpoint
    assert sent_url(client).rstrip("/") == endpoint


def test_regional_endpoint_even_when_the_environment_asks_for_legacy(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
    plain = boto3.session.Session().client("sts", region_name="us-east-1")
    gateway = StsGateway(concurrency=1, session=boto3.session.Session())

    # Without the pin this environment means the global endpoint.
    assert plain.meta.endpoint_url == "https://sts.amazonaws.com"
    assert sent_url(gateway.client("us-east-1")).startswith(
        "https://sts.us-east-1.amazonaws.com"
    )


def test_endpoint_override_comes_from_the_standard_sdk_variable(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4599")
    gateway = StsGateway(concurrency=1, session=boto3.session.Session())

    assert gateway.client("ap-east-1").meta.endpoint_url == "http://127.0.0.1:4599"


def test_clients_are_cached_per_region(gateway: StsGateway) -> None:
    assert gateway.client("eu-west-1") is gateway.client("eu-west-1")
    assert gateway.client("eu-west-1") is not gateway.client("eu-west-2")


def test_retries_and_timeouts_come_from_botocore(aws_env: None) -> None:
    gateway = StsGateway(
        concurrency=1,
        session=boto3.session.Session(),
        connect_timeout=2,
        read_timeout=7,
    )
    config = gateway.client("eu-west-1").meta.config

    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (config.connect_timeout, config.read_timeout) == (2, 7)


def test_concurrency_must_be_positive(aws_env: None) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        StsGateway(concurrency=0)


# --- AssumeRole ---------------------------------------------------------------


def test_assume_role_returns_aware_utc_expiration(
    gateway: StsGateway, sts: Stubber
) -> None:
    plus_two = timezone(timedelta(hours=2))
    sts.add_response(
        "assume_role",
        assume_answer(datetime(2030, 1, 1, 12, tzinfo=plus_two)),
        assume_params(),
    )
    before = datetime.now(UTC)

    issued = run(assume(gateway))

    assert issued.expiration == datetime(2030, 1, 1, 10, tzinfo=UTC)
    assert issued.expiration.tzinfo is UTC
    assert issued.issued_at.tzinfo is UTC
    assert before <= issued.issued_at <= datetime.now(UTC)
    assert (issued.access_key_id, issued.secret_access_key) == (KEY_ID, SECRET)
    assert issued.session_token == TOKEN
    assert issued.assumed_role_arn == ASSUMED


def test_assume_role_sends_the_requested_duration(
    gateway: StsGateway, sts: Stubber
) -> None:
    sts.add_response(
        "assume_role",
        assume_answer(datetime(2030, 1, 1, 21, tzinfo=UTC)),
        assume_params(DurationSeconds=43200),
    )

    run(assume(gateway, timedelta(hours=12)))


ASSUME_ERRORS = [
    pytest.param(
        (
            "AccessDenied",
            f"User: x is not authorized to perform: sts:AssumeRole on resource: {ROLE}",
            403,
        ),
        AssumeRoleDeniedError,
        Reason.ASSUME_ROLE_DENIED,
        id="AccessDenied -> AssumeRoleDenied",
    ),
    pytest.param(
        (
            "ValidationError",
            "The requested DurationSeconds exceeds the "
            "MaxSessionDuration set for this role.",
            400,
        ),
        SessionDurationExceedsRoleMaximum,
        Reason.SESSION_DURATION_EXCEEDS_ROLE_MAXIMUM,
        id="MaxSessionDuration -> SessionDurationExceedsRoleMaximum",
    ),
    pytest.param(
        (
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour "
            "session limit for roles assumed by role chaining.",
            400,
        ),
        RoleChainingLimitError,
        Reason.ROLE_CHAINING_LIMIT,
        id="role chaining -> RoleChainingLimit",
    ),
    pytest.param(
        (
            "RegionDisabledException",
            "STS is not activated in this region for "
            "account:222222222222. Your account administrator can activate STS in "
            "this region using the IAM Console.",
            403,
        ),
        PermanentError,
        Reason.REGION_DISABLED,
        id="RegionDisabledException -> RegionDisabled",
    ),
    pytest.param(
        (
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            403,
        ),
        OperatorIdentityError,
        Reason.OPERATOR_CREDENTIALS_INVALID,
        id="InvalidClientTokenId -> OperatorCredentialsInvalid",
    ),
    pytest.param(
        ("ExpiredToken", "The security token included in the request is expired", 400),
        OperatorIdentityError,
        Reason.OPERATOR_CREDENTIALS_INVALID,
        id="ExpiredToken -> OperatorCredentialsInvalid",
    ),
    pytest.param(
        ("Throttling", "Rate exceeded", 400),
        TemporaryError,
        Reason.THROTTLED,
        id="Throttling -> Throttled",
    ),
    pytest.param(
        ("InternalFailure", "An internal error occurred.", 500),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
        id="InternalFailure -> AwsUnavailable",
    ),
    pytest.param(
        (
            "ValidationError",
            "1 validation error detected: Value 'a' at "
            "'roleSessionName' failed to satisfy constraint: Member must have length "
            "greater than or equal to 2",
            400,
        ),
        PermanentError,
        Reason.INVALID_SPEC,
        id="ValidationError -> InvalidSpec",
    ),
]


@pytest.mark.parametrize(("answer", "kind", "reason"), ASSUME_ERRORS)
def test_assume_role_errors(
    gateway: StsGateway,
    sts: Stubber,
    answer: tuple[str, str, int],
    kind: type[Exception],
    reason: Reason,
) -> None:
    code, message, status = answer
    sts.add_client_error(
        "assume_role",
        service_error_code=code,
        service_message=message,
        http_status_code=status,
        expected_params=assume_params(DurationSeconds=7200),
    )

    with pytest.raises(kind) as caught:
        run(assume(gateway, timedelta(hours=2)))

    assert type(caught.value) is kind
    assert getattr(caught.value, "reason", None) is reason
    assert caught.value.__cause__ is None


def test_refused_duration_is_carried_for_a_fallback(
    gateway: StsGateway, sts: Stubber
) -> None:
    sts.add_client_error(
        "assume_role",
        service_error_code="ValidationError",
        service_message="The requested DurationSeconds exceeds the "
        "MaxSessionDuration set for this role.",
    )

    with pytest.raises(SessionDurationExceedsRoleMaximum) as caught:
        run(assume(gateway, timedelta(hours=12)))

    assert caught.value.requested == timedelta(hours=12)
    assert "12h" in caught.value.message


def test_region_disabled_names_the_region(gateway: StsGateway) -> None:
    with Stubber(gateway.client("ap-east-1")) as stubber:
        stubber.add_client_error(
            "get_caller_identity",
            service_error_code="RegionDisabledException",
            service_message="STS is not activated in this region for account:"
            "111111111111. Your account administrator can activate STS in this "
            "region using the IAM Console.",
            http_status_code=403,
        )
        with pytest.raises(PermanentError) as caught:
            run(gateway.identity("ap-east-1"))

    assert caught.value.reason is Reason.REGION_DISABLED
    assert "ap-east-1" in caught.value.message


class FakeSts:
    """A scriptable STS client: slow answers, counted, or raising."""

    def __init__(self, *, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay = delay
        self.error = error
        self.calls: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def _answer(self, answer: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if self.error is not None:
                raise self.error
            return answer()
        finally:
            with self._lock:
                self.in_flight -= 1

    def get_caller_identity(self) -> dict[str, Any]:
        return self._answer(
            lambda: {"Account": "111111111111", "Arn": "arn:aws:iam::1:user/x"}
        )

    def assume_role(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        return self._answer(lambda: assume_answer(datetime(2030, 1, 1, tzinfo=UTC)))


def with_fake(gateway: StsGateway, fake: FakeSts, monkeypatch: Any) -> StsGateway:
    monkeypatch.setattr(gateway, "client", lambda region: fake)
    return gateway


def test_network_errors_become_temporary(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSts(error=EndpointConnectionError(endpoint_url="https://sts.x/"))
    gateway = with_fake(StsGateway(concurrency=1), fake, monkeypatch)

    with pytest.raises(TemporaryError) as caught:
        run(assume(gateway))

    assert caught.value.reason is Reason.AWS_UNAVAILABLE


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_bound(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    fake = FakeSts(delay=0.05)
    gateway = with_fake(StsGateway(concurrency=limit), fake, monkeypatch)

    async def many() -> None:
        await asyncio.gather(*(gateway.identity("eu-west-1") for _ in range(12)))

    run(many())

    assert fake.most_in_flight == limit


# --- the wrong-id probe -------------------------------------------------------


def test_probe_denied_means_enforced(gateway: StsGateway, sts: Stubber) -> None:
    sts.add_client_error(
        "assume_role",
        service_error_code="AccessDenied",
        service_message=f"User: x is not authorized to perform: sts:AssumeRole on "
        f"resource: {ROLE}",
        http_status_code=403,
        expected_params=assume_params(ExternalId=ANY, DurationSeconds=900),
    )

    enforced = run(
        gateway.external_id_enforced(
            role_arn=ROLE, session_name=SESSION, region="eu-west-1"
        )
    )

    assert enforced is True


def test_probe_accepted_means_not_enforced(gateway: StsGateway, sts: Stubber) -> None:
    sts.add_response(
        "assume_role",
        assume_answer(datetime(2030, 1, 1, tzinfo=UTC)),
        assume_params(ExternalId=ANY, DurationSeconds=900),
    )

    enforced = run(
        gateway.external_id_enforced(
            role_arn=ROLE, session_name=SESSION, region="eu-west-1"
        )
    )

    assert enforced is False


def test_probe_uses_a_fresh_random_id_and_the_shortest_session(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSts()
    gateway = with_fake(StsGateway(concurrency=1), fake, monkeypatch)

    for _ in range(2):
        run(
            gateway.external_id_enforced(
                role_arn=ROLE, session_name=SESSION, region="eu-west-1"
            )
        )

    first, second = (call["ExternalId"] for call in fake.calls)
    assert first != second and EXTERNAL_ID not in (first, second)
    assert len(first) == 36
    assert {call["DurationSeconds"] for call in fake.calls} == {900}
    assert timedelta(minutes=15) == PROBE_DURATION


def test_probe_other_errors_raise_mapped(gateway: StsGateway, sts: Stubber) -> None:
    sts.add_client_error(
        "assume_role", service_error_code="Throttling", service_message="Rate exceeded"
    )

    with pytest.raises(TemporaryError) as caught:
        run(
            gateway.external_id_enforced(
                role_arn=ROLE, session_name=SESSION, region="eu-west-1"
            )
        )

    assert caught.value.reason is Reason.THROTTLED


# --- secrets stay secret --------------------------------------------------------


def test_credentials_repr_and_str_hide_secrets() -> None:
    issued = credentials()

    for text in (repr(issued), str(issued), f"{issued}", repr([issued])):
        assert KEY_ID not in text
        assert SECRET not in text
        assert TOKEN not in text
        assert ASSUMED in text
        assert "2030-01-01T10:00:00+00:00" in text


# --- access checks --------------------------------------------------------------


class Resourced:
    """Stubbed clients of the issued credentials, per (service, region)."""

    def __init__(self, session: boto3.session.Session) -> None:
        self._session = session
        self.stubbers: dict[tuple[str, str], Stubber] = {}
        self.made: list[tuple[str, str]] = []

    def __call__(self, service: str, region: str) -> Stubber:
        if (service, region) not in self.stubbers:
            client = self._session.client(service, region_name=region)
            self.stubbers[service, region] = Stubber(client)
            self.stubbers[service, region].activate()
        return self.stubbers[service, region]

    def client(self, creds: IssuedCredentials, service: str, *, region: str) -> Any:
        assert creds.secret_access_key == SECRET
        self.made.append((service, region))
        return self(service, region).client

    def verify(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def resourced(
    gateway: StsGateway, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Resourced]:
    fake = Resourced(boto3.session.Session())
    monkeypatch.setattr(gateway, "resource_client", fake.client)
    yield fake
    fake.verify()


def check(
    gateway: StsGateway, assumed_role_arn: str = ASSUMED, **resources: Any
) -> list[AccessCheck]:
    return list(
        run(
            gateway.check_access(
                credentials(assumed_role_arn),
                resources=Resources(**resources),
                region="eu-west-1",
            )
        )
    )


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def listing(key: str = "data/part-0001.parquet", size: int = 10) -> dict[str, Any]:
    return {"Contents": [{"Key": key, "Size": size}], "KeyCount": 1}


def denied(stubber: Stubber, method: str, message: str = "Access Denied") -> None:
    stubber.add_client_error(
        method,
        service_error_code="AccessDenied",
        service_message=message,
        http_status_code=403,
    )


def test_access_checks_pass(gateway: StsGateway, resourced: Resourced) -> None:
    s3, ecr = resourced("s3", "eu-west-1"), resourced("ecr", "eu-west-1")
    s3.add_response("list_objects_v2", listing(), {"Bucket": "data-lake", "MaxKeys": 1})
    s3.add_response(
        "get_object",
        {"Body": body(b"P")},
        {"Bucket": "data-lake", "Key": "data/part-0001.parquet", "Range": "bytes=0-0"},
    )
    resourced("kms", "eu-central-1").add_response(
        "describe_key",
        {"KeyMetadata": {"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}},
        {"KeyId": KMS_KEY},
    )
    ecr.add_response(
        "get_authorization_token",
        {"authorizationData": [{"authorizationToken": "QVdTOnNlY3JldA=="}]},
    )
    ecr.add_response(
        "batch_get_image",
        {"images": [], "failures": [{"failureCode": "ImageNotFound"}]},
        {
            "registryId": "222222222222",
            "repositoryName": "team/app",
            "imageIds": [{"imageTag": ANY}],
        },
    )

    checks = check(
        gateway,
        s3_buckets=("s3://data-lake/data",),
        kms_key_arns=(KMS_KEY,),
        ecr_repositories=("team/app",),
    )

    assert [(c.action, c.resource, c.result) for c in checks] == [
        ("s3:ListBucket", "arn:aws:s3:::data-lake", "Passed"),
        (
            "s3:GetObject",
            "arn:aws:s3:::data-lake/data/part-0001.parquet",
            "Passed",
        ),
        ("kms:DescribeKey", KMS_KEY, "Passed"),
        ("ecr:GetAuthorizationToken", "arn:aws:ecr:eu-west-1:222222222222:*", "Passed"),
        (
            "ecr:BatchGetImage",
            "arn:aws:ecr:eu-west-1:222222222222:repository/team/app",
            "Passed",
        ),
    ]
    assert all("QVdTOnNlY3JldA" not in c.model_dump_json() for c in checks)
    # The KMS key is checked in its own region, not spec.region.
    assert ("kms", "eu-central-1") in resourced.made


def test_get_object_denied_by_sse_kms_key_names_the_key(
    gateway: StsGateway, resourced: Resourced
) -> None:
    s3 = resourced("s3", "eu-west-1")
    s3.add_response("list_objects_v2", listing())
    denied(s3, "get_object")
    s3.add_response(
        "head_object",
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KMS_KEY},
    )

    checks = check(gateway, s3_buckets=("data-lake",))

    read = checks[1]
    assert (read.action, read.result) == ("s3:GetObject", "Failed")
    assert "arn:aws:s3:::data-lake/data/part-0001.parquet" in read.reason
    assert KMS_KEY in read.reason
    assert "kms:Decrypt" in read.reason
    assert "key policy" in read.reason


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "KMS.DisabledException",
            "arn:aws:kms:eu-west-1:222222222222:key/x is disabled.",
        ),
        (
            "AccessDenied",
            "User: arn:aws:sts::222222222222:assumed-role/r/s is not "
            "authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-west-1:"
            "222222222222:key/x because no identity-based policy allows the "
            "kms:Decrypt action",
        ),
    ],
    ids=["KMS.* code", "AccessDenied mentioning kms:Decrypt"],
)
def test_get_object_denied_by_kms_without_head(
    gateway: StsGateway, resourced: Resourced, code: str, message: str
) -> None:
    s3 = resourced("s3", "eu-west-1")
    s3.add_response("list_objects_v2", listing())
    s3.add_client_error(
        "get_object",
        service_error_code=code,
        service_message=message,
        http_status_code=403,
    )
    s3.add_client_error("head_object", service_error_code="403", http_status_code=403)

    read = check(gateway, s3_buckets=("data-lake",))[1]

    assert read.result == "Failed"
    assert "customer-managed KMS key" in read.reason
    assert "kms:Decrypt" in read.reason


def test_get_object_denied_on_sse_kms_without_a_key_id(
    gateway: StsGateway, resourced: Resourced
) -> None:
    s3 = resourced("s3", "eu-west-1")
    s3.add_response("list_objects_v2", listing())
    denied(s3, "get_object")
    s3.add_response("head_object", {"ServerSideEncryption": "aws:kms"})

    read = check(gateway, s3_buckets=("data-lake",))[1]

    assert "most likely by a customer-managed KMS key encrypting" in read.reason


def test_get_object_denied_with_kms_keys_listed_hints_kms(
    gateway: StsGateway, resourced: Resourced
) -> None:
    s3 = resourced("s3", "eu-west-1")
    s3.add_response("list_objects_v2", listing())
    denied(s3, "get_object")
    s3.add_response("head_object", {})
    resourced("kms", "eu-central-1").add_response(
        "describe_key", {"KeyMetadata": {"KeyId": "k"}}
    )

    checks = check(gateway, s3_buckets=("data-lake",), kms_key_arns=(KMS_KEY,))

    assert "kms:Decrypt" in checks[1].reason


def test_get_object_denied_without_kms_says_so_plainly(
    gateway: StsGateway, resourced: Resourced
) -> None:
    s3 = resourced("s3", "eu-west-1")
    s3.add_response("list_objects_v2", listing())
    denied(s3, "get_object")
    s3.add_response("head_object", {"ServerSideEncryption": "AES256"})

    read = check(gateway, s3_buckets=("data-lake",))[1]

    assert read.result == "Failed"
    assert read.reason.startswith(
        "s3:GetObject on arn:aws:s3:::data-lake/data/part-0001.parquet was denied"
    )
    assert "KMS" not in read.reason


def test_list_bucket_denied_stops_the_bucket(
    gateway: StsGateway, resourced: Resourced
) -> None:
    denied(resourced("s3", "eu-west-1"), "list_objects_v2")

    checks = check(gateway, s3_buckets=("data-lake",))

    assert len(checks) == 1
    assert checks[0].result == "Failed"
    assert "s3:ListBucket on arn:aws:s3:::data-lake was denied" in checks[0].reason


def test_empty_bucket_checks_only_the_listing(
    gateway: StsGateway, resourced: Resourced
) -> None:
    resourced("s3", "eu-west-1").add_response("list_objects_v2", {"KeyCount": 0})

    checks = check(gateway, s3_buckets=("data-lake",))

    assert [(c.action, c.result) for c in checks] == [("s3:ListBucket", "Passed")]


def test_empty_object_is_read_without_a_range(
    gateway: StsGateway, resourced: Resourced
) -> None:
    s3 = resourced("s3", "eu-west-1")
    s3.add_response("list_objects_v2", listing("marker", size=0))
    s3.add_response(
        "get_object", {"Body": body(b"")}, {"Bucket": "data-lake", "Key": "marker"}
    )

    checks = check(gateway, s3_buckets=("data-lake",))

    assert checks[1].result == "Passed"


def test_access_checks_use_the_partition_of_the_role(
    gateway: StsGateway, resourced: Resourced
) -> None:
    resourced("s3", "eu-west-1").add_response("list_objects_v2", {"KeyCount": 0})

    checks = check(
        gateway,
        "arn:aws-cn:sts::222222222222:assumed-role/r/s",
        s3_buckets=("data-lake",),
    )

    assert checks[0].resource == "arn:aws-cn:s3:::data-lake"


def test_missing_resources_fail_without_raising(
    gateway: StsGateway, resourced: Resourced
) -> None:
    resourced("kms", "eu-central-1").add_client_error(
        "describe_key",
        service_error_code="NotFoundException",
        service_message=f"Key '{KMS_KEY}' does not exist",
    )
    other = "arn:aws:ecr:us-east-1:333333333333:repository/shared/base"
    ecr = resourced("ecr", "us-east-1")
    ecr.add_response("get_authorization_token", {"authorizationData": []})
    ecr.add_client_error(
        "batch_get_image",
        service_error_code="RepositoryNotFoundException",
        service_message="The repository with name 'shared/base' does not exist in "
        "the registry with id '333333333333'",
        expected_params={
            "registryId": "333333333333",
            "repositoryName": "shared/base",
            "imageIds": ANY,
        },
    )

    checks = check(gateway, kms_key_arns=(KMS_KEY,), ecr_repositories=(other,))

    assert [(c.action, c.result) for c in checks] == [
        ("kms:DescribeKey", "Failed"),
        ("ecr:GetAuthorizationToken", "Passed"),
        ("ecr:BatchGetImage", "Failed"),
    ]
    assert "does not exist (NotFoundException)" in checks[0].reason
    assert checks[2].reason.startswith(f"ecr:BatchGetImage on {other} failed")


def test_ecr_login_is_checked_once_per_region(
    gateway: StsGateway, resourced: Resourced
) -> None:
    ecr = resourced("ecr", "eu-west-1")
    denied(ecr, "get_authorization_token", "not authorized")
    for _ in range(2):
        ecr.add_response("batch_get_image", {"images": [], "failures": []})

    checks = check(gateway, ecr_repositories=("team/app", "team/web"))

    assert [(c.action, c.result) for c in checks] == [
        ("ecr:GetAuthorizationToken", "Failed"),
        ("ecr:BatchGetImage", "Passed"),
        ("ecr:BatchGetImage", "Passed"),
    ]


def test_network_errors_in_checks_become_failed_checks(
    gateway: StsGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unreachable:
        def describe_key(self, **_: Any) -> None:
            raise EndpointConnectionError(endpoint_url="https://kms.x/")

    monkeypatch.setattr(
        gateway, "resource_client", lambda *args, **kwargs: Unreachable()
    )

    checks = check(gateway, kms_key_arns=(KMS_KEY,))

    assert checks[0].result == "Failed"
    assert "EndpointConnectionError" in checks[0].reason


# --- one pass against moto --------------------------------------------------------


def test_end_to_end_against_moto(aws_env: None) -> None:
    with mock_aws():
        setup = boto3.session.Session(region_name="eu-west-1")
        setup.client("s3").create_bucket(
            Bucket="data-lake",
            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        )
        setup.client("s3").put_object(Bucket="data-lake", Key="a.txt", Body=b"hi")
        key = setup.client("kms").create_key()["KeyMetadata"]["Arn"]
        setup.client("ecr").create_repository(repositoryName="team/app")
        role = setup.client("iam").create_role(
            RoleName="delegated-reader", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        gateway = StsGateway(concurrency=2, session=boto3.session.Session())

        async def flow() -> tuple[CallerIdentity, IssuedCredentials, list[Any]]:
            identity = await gateway.identity("eu-west-1")
            issued = await gateway.assume_role(
                role_arn=role,
                external_id=EXTERNAL_ID,
                session_name=SESSION,
                duration=timedelta(hours=1),
                region="eu-west-1",
            )
            checks = await gateway.check_access(
                issued,
                resources=Resources(
                    s3_buckets=("data-lake",),
                    kms_key_arns=(key,),
                    ecr_repositories=("team/app",),
                ),
                region="eu-west-1",
            )
            return identity, issued, checks

        identity, issued, checks = run(flow())

    assert identity.account_id == "123456789012"
    assert issued.expiration.tzinfo is UTC
    assert timedelta(minutes=59) < issued.expiration - issued.issued_at
    assert issued.assumed_role_arn.startswith(
        "arn:aws:sts::123456789012:assumed-role/delegated-reader/"
    )
    assert [(c.action, c.result) for c in checks] == [
        ("s3:ListBucket", "Passed"),
        ("s3:GetObject", "Passed"),
        ("kms:DescribeKey", "Passed"),
        ("ecr:GetAuthorizationToken", "Passed"),
        ("ecr:BatchGetImage", "Passed"),
    ]
