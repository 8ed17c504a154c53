"""What AWS errors mean: ``map_client_error``, ``sanitise`` and ``backoff_delay``.

The error codes and messages are the ones AWS sends (STS query protocol for
STS, JSON protocol for KMS and ECR); moto does not produce most of them, which
is why they are tested here as a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    DataNotFoundError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from delegated_aws.errors import (
    AssumeRoleDeniedError,
    OperatorError,
    OperatorIdentityError,
    PermanentError,
    RoleChainingLimitError,
    SessionDurationExceedsRoleMaximum,
    TemporaryError,
    backoff_delay,
)
from delegated_aws.messages import Reason
from delegated_aws.sts import map_client_error, sanitise

REQUEST_ID = "c6104cbe-af31-11e0-8154-cbc7ccf896c7"
OPERATOR_SESSION = (
    "arn:aws:sts::111111111111:assumed-role/delegated-aws-operator/"
    "botocore-session-1717171717"
)
ROLE = "arn:aws:iam::222222222222:role/delegated-reader"
STS_URL = "https://sts.ap-east-1.amazonaws.com/"


def aws(
    code: str, message: str, *, status: int = 400, operation: str = "AssumeRole"
) -> ClientError:
    """A ClientError as botocore builds it from an AWS error answer."""
    return ClientError(
        {
            "Error": {"Type": "Sender", "Code": code, "Message": message},
            "ResponseMetadata": {"RequestId": REQUEST_ID, "HTTPStatusCode": status},
        },
        operation,
    )


@dataclass(frozen=True)
class Case:
    id: str
    error: Exception
    kind: type[OperatorError]
    reason: Reason
    says: tuple[str, ...] = ()
    never_says: tuple[str, ...] = ()


IDENTITY = Reason.OPERATOR_CREDENTIALS_INVALID
CASES = [
    # --- the customer's role ---------------------------------------------
    Case(
        "AccessDenied on AssumeRole -> AssumeRoleDenied",
        aws(
            "AccessDenied",
            f"User: {OPERATOR_SESSION} is not authorized to perform: "
            f"sts:AssumeRole on resource: {ROLE}",
            status=403,
        ),
        AssumeRoleDeniedError,
        Reason.ASSUME_ROLE_DENIED,
        says=("role exists", "trust policy", "status.externalId", "trustedPrincipal"),
        # A timestamped session name would make the condition flap.
        never_says=("botocore-session", REQUEST_ID),
    ),
    Case(
        "AccessDenied by the operator's identity policy -> AssumeRoleDenied (own)",
        aws(
            "AccessDenied",
            f"User: {OPERATOR_SESSION} is not authorized to perform: "
            f"sts:AssumeRole on resource: {ROLE} because no identity-based policy "
            "allows the sts:AssumeRole action",
            status=403,
        ),
        AssumeRoleDeniedError,
        Reason.ASSUME_ROLE_DENIED,
        says=("operator's own permissions", "grant sts:AssumeRole"),
    ),
    Case(
        "AccessDenied by an SCP -> AssumeRoleDenied (own)",
        aws(
            "AccessDenied",
            f"User: {OPERATOR_SESSION} is not authorized to perform: "
            f"sts:AssumeRole on resource: {ROLE} with an explicit deny in a "
            "service control policy",
            status=403,
        ),
        AssumeRoleDeniedError,
        Reason.ASSUME_ROLE_DENIED,
        says=("SCP",),
    ),
    Case(
        "ValidationError MaxSessionDuration -> SessionDurationExceedsRoleMaximum",
        aws(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for "
            "this role.",
        ),
        SessionDurationExceedsRoleMaximum,
        Reason.SESSION_DURATION_EXCEEDS_ROLE_MAXIMUM,
        says=("12h", "MaxSessionDuration", "spec.sessionDuration"),
    ),
    Case(
        "ValidationError role chaining -> RoleChainingLimit",
        aws(
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for "
            "roles assumed by role chaining.",
        ),
        RoleChainingLimitError,
        Reason.ROLE_CHAINING_LIMIT,
        says=("12h", "role chaining", "1h", "spec.sessionDuration"),
    ),
    Case(
        "RegionDisabledException -> RegionDisabled",
        aws(
            "RegionDisabledException",
            "STS is not activated in this region for account:222222222222. Your "
            "account administrator can activate STS in this region using the IAM "
            "Console.",
            status=403,
        ),
        PermanentError,
        Reason.REGION_DISABLED,
        says=("ap-east-1", "IAM console", "spec.region"),
    ),
    Case(
        "ValidationError Request ARN is invalid -> InvalidSpec on roleArn",
        aws("ValidationError", "Request ARN is invalid"),
        PermanentError,
        Reason.INVALID_SPEC,
        says=("spec.roleArn",),
    ),
    Case(
        "ValidationError on roleSessionName -> InvalidSpec",
        aws(
            "ValidationError",
            "1 validation error detected: Value 'team/app:reader' at "
            "'roleSessionName' failed to satisfy constraint: Member must satisfy "
            r"regular expression pattern: [\w+=,.@-]*",
        ),
        PermanentError,
        Reason.INVALID_SPEC,
        says=("spec.roleSessionName",),
        never_says=("team/app:reader",),
    ),
    Case(
        "ValidationError on externalId -> InvalidSpec without the value",
        aws(
            "ValidationError",
            "1 validation error detected: Value 'x' at 'externalId' failed to "
            "satisfy constraint: Member must have length greater than or equal to 2",
        ),
        PermanentError,
        Reason.INVALID_SPEC,
        says=("spec.externalId",),
        never_says=("'x'",),
    ),
    Case(
        "ValidationError on durationSeconds -> InvalidSpec",
        aws(
            "ValidationError",
            "1 validation error detected: Value '43201' at 'durationSeconds' failed "
            "to satisfy constraint: Member must have value less than or equal to "
            "43200",
        ),
        PermanentError,
        Reason.INVALID_SPEC,
        says=("spec.sessionDuration",),
    ),
    Case(
        "MalformedPolicyDocument -> InvalidSpec",
        aws(
            "MalformedPolicyDocument",
            "Syntax errors in policy.",
        ),
        PermanentError,
        Reason.INVALID_SPEC,
        says=("MalformedPolicyDocument", "Syntax errors in policy"),
    ),
    Case(
        "PackedPolicyTooLarge -> InvalidSpec",
        aws(
            "PackedPolicyTooLarge",
            "Packed policy consumes 112% of allotted space, please use smaller "
            "policy for this session.",
        ),
        PermanentError,
        Reason.INVALID_SPEC,
        says=("PackedPolicyTooLarge",),
    ),
    Case(
        "ParamValidationError on DurationSeconds -> InvalidSpec",
        ParamValidationError(
            report="Invalid value for parameter DurationSeconds, value: 100, "
            "valid min value: 900"
        ),
        PermanentError,
        Reason.INVALID_SPEC,
        says=("spec.sessionDuration",),
    ),
    # --- the operator's own credentials ----------------------------------
    Case(
        "InvalidClientTokenId -> OperatorCredentialsInvalid",
        aws(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            status=403,
        ),
        OperatorIdentityError,
        IDENTITY,
        says=("not your role", "opt-in region", "ap-east-1"),
    ),
    Case(
        "ExpiredToken -> OperatorCredentialsInvalid",
        aws(
            "ExpiredToken",
            "The security token included in the request is expired",
        ),
        OperatorIdentityError,
        IDENTITY,
        says=("not your role", "expired"),
    ),
    Case(
        "SignatureDoesNotMatch -> OperatorCredentialsInvalid",
        aws(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you "
            "provided. Check your AWS Secret Access Key and signing method. Consult "
            "the service documentation for details.",
            status=403,
        ),
        OperatorIdentityError,
        IDENTITY,
        says=("not your role", "secret access key"),
    ),
    Case(
        "SignatureDoesNotMatch signature expired -> OperatorCredentialsInvalid (clock)",
        aws(
            "SignatureDoesNotMatch",
            "Signature expired: 20240501T101500Z is now earlier than "
            "20240501T102000Z (20240501T102500Z - 5 min.)",
            status=403,
        ),
        OperatorIdentityError,
        IDENTITY,
        says=("clock",),
    ),
    Case(
        "IncompleteSignature -> OperatorCredentialsInvalid",
        aws(
            "IncompleteSignature",
            "Authorization header requires 'Credential' parameter. Authorization "
            "header requires 'Signature' parameter. Authorization header requires "
            "'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256",
        ),
        OperatorIdentityError,
        IDENTITY,
    ),
    Case(
        "RequestExpired -> OperatorCredentialsInvalid (clock)",
        aws("RequestExpired", "Request has expired."),
        OperatorIdentityError,
        IDENTITY,
        says=("clock", "NTP"),
    ),
    Case(
        "UnrecognizedClientException on DescribeKey -> OperatorCredentialsInvalid",
        aws(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            operation="DescribeKey",
        ),
        OperatorIdentityError,
        IDENTITY,
    ),
    Case(
        "NoCredentialsError -> OperatorCredentialsInvalid",
        NoCredentialsError(),
        OperatorIdentityError,
        IDENTITY,
        says=("no AWS credentials", "IRSA"),
    ),
    Case(
        "PartialCredentialsError -> OperatorCredentialsInvalid",
        PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
        OperatorIdentityError,
        IDENTITY,
    ),
    Case(
        "CredentialRetrievalError -> OperatorCredentialsInvalid",
        CredentialRetrievalError(
            provider="container-role", error_msg="connection refused"
        ),
        OperatorIdentityError,
        IDENTITY,
        says=("could not obtain", "not your role"),
        never_says=("connection refused",),
    ),
    Case(
        "AccessDenied on AssumeRoleWithWebIdentity -> OperatorCredentialsInvalid",
        aws(
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            status=403,
            operation="AssumeRoleWithWebIdentity",
        ),
        OperatorIdentityError,
        IDENTITY,
        says=("web identity", "operator's own IAM role"),
    ),
    Case(
        "InvalidIdentityToken on AssumeRoleWithWebIdentity -> "
        "OperatorCredentialsInvalid",
        aws(
            "InvalidIdentityToken",
            "No OpenIDConnect provider found in your account for "
            "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71",
            operation="AssumeRoleWithWebIdentity",
        ),
        OperatorIdentityError,
        IDENTITY,
    ),
    # --- transient --------------------------------------------------------
    Case(
        "Throttling -> Throttled",
        aws("Throttling", "Rate exceeded"),
        TemporaryError,
        Reason.THROTTLED,
        says=("retries",),
    ),
    Case(
        "ThrottlingException on DescribeKey -> Throttled",
        aws("ThrottlingException", "Rate exceeded", operation="DescribeKey"),
        TemporaryError,
        Reason.THROTTLED,
    ),
    Case(
        "RequestLimitExceeded -> Throttled",
        aws("RequestLimitExceeded", "Request limit exceeded.", status=503),
        TemporaryError,
        Reason.THROTTLED,
    ),
    Case(
        "TooManyRequestsException -> Throttled",
        aws("TooManyRequestsException", "Too Many Requests", status=429),
        TemporaryError,
        Reason.THROTTLED,
    ),
    Case(
        "InternalFailure 500 -> AwsUnavailable",
        aws(
            "InternalFailure",
            "The request processing has failed because of an unknown error, "
            "exception or failure.",
            status=500,
        ),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
    ),
    Case(
        "ServiceUnavailable 503 -> AwsUnavailable",
        aws(
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
            status=503,
        ),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
    ),
    Case(
        "bare HTTP 502 -> AwsUnavailable",
        aws("502", "Bad Gateway", status=502),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
    ),
    Case(
        "EndpointConnectionError -> AwsUnavailable",
        EndpointConnectionError(endpoint_url=STS_URL),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
        says=("ap-east-1", "EndpointConnectionError"),
    ),
    Case(
        "ConnectTimeoutError -> AwsUnavailable",
        ConnectTimeoutError(endpoint_url=STS_URL),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
    ),
    Case(
        "ReadTimeoutError -> AwsUnavailable",
        ReadTimeoutError(endpoint_url=STS_URL),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
    ),
    Case(
        "ConnectionClosedError -> AwsUnavailable",
        ConnectionClosedError(endpoint_url=STS_URL),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
    ),
    # --- never seen before: retried, never raw -----------------------------
    Case(
        "unknown AWS code -> AwsUnavailable (retried)",
        aws(
            "SomethingNewException",
            f"Something new happened; RequestId: {REQUEST_ID}",
        ),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
        says=("SomethingNewException", "AssumeRole", "Something new happened"),
    ),
    Case(
        "unknown botocore error -> AwsUnavailable (retried)",
        DataNotFoundError(data_path="sts/2011-06-15"),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
        says=("DataNotFoundError",),
    ),
    Case(
        "unexpected exception -> AwsUnavailable (retried)",
        RuntimeError("boom"),
        TemporaryError,
        Reason.AWS_UNAVAILABLE,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_map_client_error(case: Case) -> None:
    mapped = map_client_error(
        case.error, region="ap-east-1", requested=timedelta(hours=12)
    )

    assert type(mapped) is case.kind
    assert mapped.reason is case.reason
    for fragment in case.says:
        assert fragment in mapped.message
    for fragment in (*case.never_says, REQUEST_ID):
        assert fragment not in mapped.message


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_mapped_message_is_one_sentence(case: Case) -> None:
    message = map_client_error(case.error, region="ap-east-1").message

    assert message.endswith(".")
    assert message[0].isupper()
    assert ". " not in message.rstrip(".").replace("e.g. ", "")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_temporary_errors_carry_a_delay(case: Case) -> None:
    mapped = map_client_error(case.error)

    if isinstance(mapped, TemporaryError):
        assert mapped.delay > 0
    else:
        assert not hasattr(mapped, "delay")


def test_aws_code_is_kept_for_logs() -> None:
    mapped = map_client_error(aws("Throttling", "Rate exceeded"))

    assert mapped.aws_code == "Throttling"


def test_duration_errors_carry_the_refused_duration() -> None:
    chained = map_client_error(
        aws("ValidationError", "... session limit for roles assumed by role chaining."),
        requested=timedelta(hours=2),
    )
    too_long = map_client_error(
        aws("ValidationError", "... exceeds the MaxSessionDuration set for this role."),
        requested=timedelta(hours=12),
    )

    assert isinstance(chained, RoleChainingLimitError)
    assert chained.requested == timedelta(hours=2)
    assert isinstance(too_long, SessionDurationExceedsRoleMaximum)
    assert too_long.requested == timedelta(hours=12)


def test_duration_errors_without_a_duration_still_read_well() -> None:
    mapped = map_client_error(
        aws("ValidationError", "exceeds the MaxSessionDuration set for this role.")
    )

    assert mapped.message.startswith("AWS refused the requested session")


def test_an_operator_error_passes_through() -> None:
    error = PermanentError(Reason.INVALID_SPEC, "Nope.")

    assert map_client_error(error) is error


def test_error_tree() -> None:
    assert issubclass(OperatorIdentityError, TemporaryError)
    assert issubclass(SessionDurationExceedsRoleMaximum, PermanentError)
    assert issubclass(RoleChainingLimitError, PermanentError)
    assert not issubclass(PermanentError, TemporaryError)
    error = TemporaryError(Reason.THROTTLED, "Slow down.", delay=3)
    assert str(error) == "Slow down."
    assert repr(error) == "TemporaryError(Throttled: Slow down.)"


# --- sanitise ---------------------------------------------------------------

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = (
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDtqstfDEaRfZKFK5Z2"
    "n4CCAoSM4rA8QAmZp5I5cN8AgIgdjP+dQvmhvn3mHb2u9hqW0CiCzhIZwCpA9DSNyzlSxwq"
)
SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"

REDACTED = [
    pytest.param(
        f"Access Denied. Request ID: {REQUEST_ID}",
        REQUEST_ID,
        id="request id after 'Request ID:'",
    ),
    pytest.param(
        "Access Denied (RequestId=4442587FB7D0A2F9)",
        "4442587FB7D0A2F9",
        id="request id after 'RequestId='",
    ),
    pytest.param(
        "x-amz-id-2: eftixk72aD6Ap51TnqcoF8eFidJG9Z/2mkiDFu8yU9AS1ed4OpIszj7UDNEHGran",
        "eftixk72aD6Ap51TnqcoF8eFidJG9Z",
        id="S3 host id",
    ),
    pytest.param(
        "User: arn:aws:sts::111111111111:assumed-role/op/s is not authorized "
        "(Service: AWSSecurityTokenService; Status Code: 403; Error Code: "
        f"AccessDenied; Request ID: {REQUEST_ID}; Proxy: null)",
        "Service: AWSSecurityTokenService",
        id="Java SDK trailer",
    ),
    pytest.param(
        "The AWS Access Key Id AKIAIOSFODNN7EXAMPLE does not exist in our records.",
        "AKIAIOSFODNN7EXAMPLE",
        id="long-term access key id",
    ),
    pytest.param(
        "Credential=ASIAQNZGKIQYEXAMPLE7/20240501/us-east-1/sts/aws4_request",
        "ASIAQNZGKIQYEXAMPLE7",
        id="session access key id",
    ),
    pytest.param(f"the key is {SECRET_KEY} here", SECRET_KEY, id="secret access key"),
    pytest.param(
        f"aws_secret_access_key = {SECRET_KEY}",
        "EXAMPLEKEY",
        id="secret access key as key=value",
    ),
    pytest.param(f"token {SESSION_TOKEN}", "IQoJb3JpZ2luX2Vj", id="session token"),
    pytest.param(
        "https://sts.amazonaws.com/?X-Amz-Security-Token=FwoGZXIvYXdzEJr%2F&x=1",
        "FwoGZXIvYXdzEJr",
        id="presigned token parameter",
    ),
    pytest.param(f"Signature={SIGNATURE}", SIGNATURE, id="signature"),
    pytest.param(
        "The request signature we calculated does not match the signature you "
        "provided. The Canonical String for this request should have been\n"
        "'POST\n/\n\nhost:sts.amazonaws.com\n'\n\nThe String-to-Sign should have "
        f"been\n'AWS4-HMAC-SHA256\n20240501T101500Z\n{SIGNATURE}'",
        "host:sts.amazonaws.com",
        id="canonical request and string to sign",
    ),
    pytest.param(
        f"failed for {REQUEST_ID}.", REQUEST_ID, id="bare uuid is a request id"
    ),
]


@pytest.mark.parametrize(("text", "secret"), REDACTED)
def test_sanitise_removes(text: str, secret: str) -> None:
    clean = sanitise(text)

    assert secret not in clean
    assert sanitise(clean) == clean


KEPT = [
    pytest.param(
        "User: arn:aws:sts::111111111111:assumed-role/op/s is not authorized to "
        f"perform: sts:AssumeRole on resource: {ROLE}",
        id="plain AccessDenied message",
    ),
    pytest.param(
        "arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        id="KMS key ARN with its uuid",
    ),
    pytest.param(
        "arn:aws:iam::222222222222:role/Path1/AnotherPath2/RoleNameLongXYZabc99",
        id="role ARN with a long path",
    ),
    pytest.param(
        "The security token included in the request is invalid.",
        id="sentence mentioning a token",
    ),
    pytest.param(
        "STS is not activated in this region for account:222222222222.",
        id="account id",
    ),
]


@pytest.mark.parametrize("text", KEPT)
def test_sanitise_keeps(text: str) -> None:
    assert sanitise(text) == text


def test_sanitise_collapses_whitespace_and_caps_length() -> None:
    clean = sanitise("a  b\n\tc " + "word " * 200)

    assert clean.startswith("a b c word")
    assert len(clean) <= 300
    assert clean.endswith("...")


# --- backoff ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 2.0), (1, 4.0), (3, 16.0), (7, 256.0), (8, 300.0), (10_000, 300.0)],
    ids=lambda value: str(value),
)
def test_backoff_ceiling_doubles_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert backoff_delay(attempt, rng=lambda: 1.0) == ceiling
    assert backoff_delay(attempt, rng=lambda: 0.0) == 0.0


def test_backoff_has_full_jitter() -> None:
    delays = {backoff_delay(5) for _ in range(50)}

    assert all(0 <= delay < 64 for delay in delays)
    assert len(delays) > 1


def test_backoff_respects_base_and_cap() -> None:
    assert backoff_delay(2, base=1.0, cap=3.0, rng=lambda: 1.0) == 3.0
    assert backoff_delay(1, base=0.5, rng=lambda: 0.5) == 0.5


def test_backoff_refuses_negative_attempts() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(-1)
