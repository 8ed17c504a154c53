"""What AWS errors mean: botocore failures mapped onto ``delegated_aws.errors``.

Part of the AWS seam (with ``sts`` and ``sts_access``); only these modules
know botocore's exceptions. ``map_client_error`` is a pure function from a
botocore failure (an AWS answer, a network error, missing credentials) to an
``OperatorError`` whose reason comes from ``messages.Reason`` and whose
message is one sentence naming what to do next. ``sanitise`` strips anything
credential-like from AWS text before it can reach a condition, an Event or a
log line.

Messages for known errors are our own templates, never AWS text: AWS echoes
the caller's session ARN (with a timestamped session name), which would make
the condition change on every retry.
"""

from __future__ import annotations

import re
from datetime import timedelta

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from delegated_aws.durations import format_duration
from delegated_aws.errors import (
    AssumeRoleDeniedError,
    OperatorError,
    OperatorIdentityError,
    PermanentError,
    RoleChainingLimitError,
    SessionDurationExceedsRoleMaximum,
    TemporaryError,
)
from delegated_aws.messages import Reason

DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "Forbidden", "403"})
NOT_FOUND_CODES = frozenset(
    {"NoSuchBucket", "NoSuchKey", "NotFoundException", "RepositoryNotFoundException"}
)
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_INVALID_REQUEST_CODES = frozenset(
    {"ValidationError", "MalformedPolicyDocument", "PackedPolicyTooLarge"}
)

# What each failure of the operator's own credentials means; "not your role"
# because every resource shows the same condition at once.
_IDENTITY_MESSAGES = {
    "invalid": (
        "AWS rejected the operator's own credentials as invalid, not your role: "
        "check the operator's IRSA, Pod Identity or key setup, and that the "
        "operator's account has enabled {region} if it is an opt-in region."
    ),
    "expired": (
        "The operator's own AWS session token has expired, not your role: it "
        "retries with refreshed credentials; if this persists, check its "
        "credential source."
    ),
    "signature": (
        "AWS rejected the signature of the operator's own request, not your role: "
        "check the operator's secret access key."
    ),
    "clock": (
        "AWS rejected the operator's request as expired, not your role: the "
        "operator's clock is skewed, so synchronise its node's clock (NTP)."
    ),
    "missing": (
        "The operator found no AWS credentials of its own, not your role: give it "
        "IRSA, Pod Identity, an instance role or access keys."
    ),
    "unobtainable": (
        "The operator could not obtain its own AWS credentials, not your role: "
        "check its IRSA, Pod Identity, instance role or access key setup."
    ),
    "web": (
        "The operator could not exchange its web identity token for AWS "
        "credentials, not your role: check the trust policy of the operator's own "
        "IAM role (IRSA or Pod Identity)."
    ),
}
_IDENTITY_CODES = {
    "InvalidClientTokenId": "invalid",
    "UnrecognizedClientException": "invalid",
    "InvalidAccessKeyId": "invalid",
    "AuthFailure": "invalid",
    "MissingAuthenticationToken": "missing",
    "ExpiredToken": "expired",
    "ExpiredTokenException": "expired",
    "SignatureDoesNotMatch": "signature",
    "IncompleteSignature": "signature",
    "InvalidSignatureException": "signature",
    "RequestExpired": "clock",
    "RequestTimeTooSkewed": "clock",
    "RequestInTheFuture": "clock",
}
# Operations the SDK runs for the operator's own credentials (IRSA).
_OWN_CREDENTIAL_OPERATIONS = frozenset({"AssumeRoleWithWebIdentity"})
_CREDENTIAL_ERRORS = (
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
)
_NETWORK_ERRORS = (BotoConnectionError, HTTPClientError)

# AWS parameter names (lower case) and the spec field each comes from.
_SPEC_FIELDS = {
    "rolearn": "spec.roleArn",
    # STS's whole answer to a RoleArn it cannot parse.
    "request arn is invalid": "spec.roleArn",
    "rolesessionname": "spec.roleSessionName",
    "durationseconds": "spec.sessionDuration",
    "externalid": "spec.externalId",
}


def map_client_error(
    error: Exception,
    *,
    region: str | None = None,
    requested: timedelta | None = None,
) -> OperatorError:
    """What a botocore failure means for the operator, as an ``OperatorError``.

    ``region`` and ``requested`` (the session duration asked for) only make the
    message more precise. Unknown failures are temporary: retrying is safer
    than declaring a role broken on an error never seen before.
    """
    if isinstance(error, OperatorError):
        return error
    name = type(error).__name__
    if isinstance(error, ClientError):
        return _map_aws_answer(error, region=region, requested=requested)
    if isinstance(error, NoCredentialsError):
        return OperatorIdentityError(_IDENTITY_MESSAGES["missing"], aws_code=name)
    if isinstance(error, _CREDENTIAL_ERRORS):
        return OperatorIdentityError(_IDENTITY_MESSAGES["unobtainable"], aws_code=name)
    if isinstance(error, _NETWORK_ERRORS):
        return TemporaryError(
            Reason.AWS_UNAVAILABLE,
            f"AWS could not be reached in {region or 'the region'} ({name}); "
            "the operator retries with backoff.",
            aws_code=name,
        )
    if isinstance(error, ParamValidationError):
        return _invalid_spec(str(error), code=name)
    return TemporaryError(
        Reason.AWS_UNAVAILABLE,
        f"The AWS call failed unexpectedly ({name}); the operator retries with "
        "backoff.",
        aws_code=name,
    )


def _map_aws_answer(
    error: ClientError, *, region: str | None, requested: timedelta | None
) -> OperatorError:
    code, text = error_code(error), error_text(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if error.operation_name in _OWN_CREDENTIAL_OPERATIONS:
        return OperatorIdentityError(_IDENTITY_MESSAGES["web"], aws_code=code)
    if code in _IDENTITY_CODES:
        return _identity_error(code, text, region=region)
    if code in _THROTTLING_CODES:
        return TemporaryError(
            Reason.THROTTLED,
            "AWS throttled the request; the operator retries with backoff.",
            delay=20.0,
            aws_code=code,
        )
    if code == "RegionDisabledException":
        return _region_disabled(region)
    if code in DENIED_CODES and error.operation_name == "AssumeRole":
        return _assume_role_denied(text, code=code)
    if code == "ValidationError":
        return _validation_error(text, requested=requested)
    if code in _INVALID_REQUEST_CODES:
        return _invalid_spec(text, code=code)
    if status >= 500 or code in _UNAVAILABLE_CODES:
        return TemporaryError(
            Reason.AWS_UNAVAILABLE,
            f"AWS answered with a server error ({code}); the operator retries "
            "with backoff.",
            aws_code=code,
        )
    return TemporaryError(
        Reason.AWS_UNAVAILABLE,
        f"AWS answered {code} to {error.operation_name}: {_clause(text)}; the "
        "operator retries with backoff.",
        aws_code=code,
    )


def _identity_error(code: str, text: str, *, region: str | None) -> OperatorError:
    kind = _IDENTITY_CODES[code]
    # A request signed too long ago comes back as SignatureDoesNotMatch too.
    if kind == "signature" and "signature expired" in text.lower():
        kind = "clock"
    message = _IDENTITY_MESSAGES[kind].format(region=region or "the region")
    return OperatorIdentityError(message, aws_code=code)


def _region_disabled(region: str | None) -> OperatorError:
    return PermanentError(
        Reason.REGION_DISABLED,
        f"STS is not activated in {region or 'this region'} for the role's "
        "account: activate it in the IAM console (Account settings, Security "
        "Token Service endpoints) or choose another spec.region.",
        aws_code="RegionDisabledException",
    )


def _assume_role_denied(text: str, *, code: str) -> OperatorError:
    lowered = text.lower()
    # Newer AWS messages say which policy type denied; the operator's own
    # identity policy, boundary or an SCP is a different fix from the trust.
    operator_policy = any(
        phrase in lowered
        for phrase in (
            "identity-based policy",
            "permissions boundary",
            "control policy",
        )
    )
    if operator_policy:
        message = (
            "AWS denied sts:AssumeRole because the operator's own permissions "
            "(identity policy, permissions boundary or an SCP) do not allow it on "
            "this role: grant sts:AssumeRole on the role to the operator's principal."
        )
    else:
        message = (
            "AWS denied sts:AssumeRole: check that the role exists, that its trust "
            "policy names the account or principal in status.trustedPrincipal with "
            "an sts:ExternalId condition equal to status.externalId, and that the "
            "operator's own IAM policy allows sts:AssumeRole on the role."
        )
    return AssumeRoleDeniedError(
        message, operator_policy=operator_policy, aws_code=code
    )


def _validation_error(text: str, *, requested: timedelta | None) -> OperatorError:
    session = f"a {format_duration(requested)}" if requested else "the requested"
    if "maxsessionduration" in text.lower():
        return SessionDurationExceedsRoleMaximum(
            f"AWS refused {session} session because it exceeds the role's "
            "MaxSessionDuration: raise the role's maximum session duration (up to "
            "12h) or lower spec.sessionDuration.",
            requested=requested,
            aws_code="ValidationError",
        )
    if "role chaining" in text.lower():
        return RoleChainingLimitError(
            f"AWS refused {session} session because the operator's own identity is "
            "a role session and AWS caps role chaining at 1h: lower "
            "spec.sessionDuration to 1h or run the operator with non-session "
            "credentials.",
            requested=requested,
            aws_code="ValidationError",
        )
    return _invalid_spec(text, code="ValidationError")


def _invalid_spec(text: str, *, code: str) -> OperatorError:
    lowered = text.lower()
    fields = [spec for name, spec in _SPEC_FIELDS.items() if name in lowered]
    if fields:
        # Name the fields, not the values: one of them may be the External ID.
        detail = f"check {', '.join(fields)}"
    else:
        detail = f"{_clause(text)}; fix the spec and apply it again"
    return PermanentError(
        Reason.INVALID_SPEC,
        f"AWS rejected the request as invalid ({code}): {detail}.",
        aws_code=code,
    )


def error_code(error: ClientError | BotoCoreError) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "Unknown"))
    return type(error).__name__


def error_text(error: ClientError | BotoCoreError) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Message", ""))
    return str(error)


def _clause(text: str) -> str:
    """AWS text fit to sit inside our one sentence."""
    return sanitise(text).rstrip(". ") or "no details"


# --- sanitising -------------------------------------------------------------

_REDACTED = "[redacted]"
_MAX_SANITISED = 300
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # SignatureDoesNotMatch may echo the canonical request and string to sign.
    (re.compile(r"\s*(The Canonical String|The String-to-Sign).*", re.I | re.S), ""),
    # The Java-style "(Service: ...; Request ID: ...; Proxy: null)" trailer.
    (re.compile(r"\s*\(Service: [^)]*\)"), ""),
    (
        re.compile(
            r"\b(request[ _-]?id|x-amz-request-id|x-amz-id-2|host[ _-]?id"
            r"|x-amz-security-token|x-amz-signature|x-amz-credential|credential"
            r"|signature"
            r"|session[ _-]?token|security[ _-]?token|secret[ _-]?access[ _-]?key"
            r"|aws_secret_access_key|aws_session_token|token|password)"
            r"([\"']?\s*[:=]\s*[\"']?)[^\s\"',;&)]+",
            re.I,
        ),
        rf"\1\2{_REDACTED}",
    ),
    # Access key ids and unique ids of users and roles.
    (
        re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|AGPA)[A-Z0-9]{12,}"),
        _REDACTED,
    ),
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), _REDACTED),
    # A bare UUID is a request id; one inside an ARN (key/...) is kept.
    (
        re.compile(
            r"(?<![\w/:-])[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}(?![\w-])"
        ),
        _REDACTED,
    ),
)
_BLOB = re.compile(r"(?<![\w+/])[A-Za-z0-9+/]{40,}={0,2}")


def sanitise(text: str) -> str:
    """AWS message text without request ids, key ids, signatures or tokens.

    Long base64-like runs (secret keys, session tokens) are removed unless
    they are part of an ARN; whitespace is collapsed and the result capped.
    """
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    text = _BLOB.sub(lambda match: _redact_blob(match, match.string), text)
    text = " ".join(text.split())
    if len(text) > _MAX_SANITISED:
        text = text[: _MAX_SANITISED - 3].rstrip() + "..."
    return text


def _redact_blob(match: re.Match[str], text: str) -> str:
    blob = match.group()
    word_start = max(text.rfind(" ", 0, match.start()) + 1, 0)
    if text.startswith("arn:", word_start):
        return blob
    # Secrets mix cases and digits; long plain words or paths rarely do.
    mixed = (
        any(c.isupper() for c in blob)
        and any(c.islower() for c in blob)
        and any(c.isdigit() for c in blob)
    )
    return _REDACTED if mixed else blob
