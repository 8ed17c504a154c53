"""STS ``AssumeRole`` as AWS answers it, on top of moto's backends.

This module owns the parts of the emulator that decide an ``AssumeRole``:
parameter validation with AWS's ``ValidationError`` wording, caller
identification from the SigV4 access key (IAM user keys in any account and
sessions created by earlier ``AssumeRole`` calls), the signature check and
the caller's identity-policy check (both delegated to moto's own IAM auth
classes), the trust-policy decision (:mod:`delegated_aws.devenv.trust`) against
the role in the *role's* account, ``MaxSessionDuration`` and the role-chaining
limit. Credentials are minted with moto's STS backend so that moto then
recognises them (account, IAM auth, ``GetCallerIdentity``) on later calls.
Requests and error bodies on the wire are :mod:`delegated_aws.devenv.awsemu_wire`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from xml.sax.saxutils import escape

from moto.core.utils import utcnow
from moto.iam.access_control import (
    CreateAccessKeyFailure,
    IAMPolicy,
    IAMRequest,
    PermissionResult,
    create_access_key,
)
from moto.iam.exceptions import NotFoundException
from moto.iam.models import get_account_id_from, iam_backends
from moto.sts.models import AssumedRole, sts_backends
from moto.utilities.utils import get_partition
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from delegated_aws.devenv.awsemu_wire import STS_XMLNS, AwsError, SignedRequest
from delegated_aws.devenv.trust import (
    PrincipalMatch,
    RequestContext,
    UnsupportedPolicyError,
    evaluate_trust_policy,
)

CHAINING_LIMIT_SECONDS: Final = 3600
DEFAULT_DURATION_SECONDS: Final = 3600
_ROLE_ARN = re.compile(r"^arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):role/.+$")
_SESSION_NAME = re.compile(r"[\w+=,.@-]*")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]*")


# -- callers ---------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The principal behind an access key id."""

    arn: str
    account_id: str
    access_key_id: str
    session: AssumedRole | None = None

    @property
    def is_role_session(self) -> bool:
        return self.session is not None


def find_identity(access_key_id: str, *, region: str) -> Identity | None:
    """Look the key up where moto keeps it: user keys and STS sessions."""
    account_id = get_account_id_from(access_key_id)
    partition = get_partition(region)
    iam = iam_backends[account_id][partition]
    if access_key_id not in iam.access_keys:
        return None
    session = sts_backends[account_id][partition].get_assumed_role_from_access_key(
        access_key_id
    )
    if session is not None:
        return Identity(session.arn, account_id, access_key_id, session)
    user = iam.get_user_from_access_key_id(access_key_id)
    if user is None:
        return None
    return Identity(user.arn, account_id, access_key_id)


def expired_session(access_key_id: str, *, region: str) -> bool:
    """True when the key belongs to an STS session past its expiration."""
    identity = find_identity(access_key_id, region=region)
    if identity is None or identity.session is None:
        return False
    expiration: datetime = identity.session.expiration
    return bool(expiration <= utcnow())


# -- AssumeRole --------------------------------------------------------------


@dataclass(frozen=True)
class AssumeRoleParams:
    role_arn: str
    session_name: str
    duration: int | None
    external_id: str | None
    policy: str | None


def validate_params(params: dict[str, str]) -> AssumeRoleParams:
    """AWS's syntactic checks, reported together like the real service."""
    problems = [
        *_check_text(params.get("RoleArn"), "roleArn", low=20, high=2048, pattern=None),
        *_check_text(
            params.get("RoleSessionName"),
            "roleSessionName",
            low=2,
            high=64,
            pattern=_SESSION_NAME,
        ),
        *_check_duration(params.get("DurationSeconds")),
        *_check_optional_text(
            params.get("ExternalId"),
            "externalId",
            low=2,
            high=1224,
            pattern=_EXTERNAL_ID,
        ),
    ]
    if problems:
        plural = "error" if len(problems) == 1 else "errors"
        raise AwsError(
            400,
            "ValidationError",
            message=f"{len(problems)} validation {plural} detected: "
            + "; ".join(problems),
        )
    role_arn = params["RoleArn"]
    if not _ROLE_ARN.match(role_arn):
        raise AwsError(400, "ValidationError", message="Request ARN is invalid")
    duration = params.get("DurationSeconds")
    return AssumeRoleParams(
        role_arn,
        params["RoleSessionName"],
        int(duration) if duration is not None else None,
        params.get("ExternalId"),
        params.get("Policy"),
    )


def _check_text(
    value: str | None,
    member: str,
    *,
    low: int,
    high: int,
    pattern: re.Pattern[str] | None,
) -> list[str]:
    if value is None:
        return [
            f"Value null at '{member}' failed to satisfy constraint: "
            "Member must not be null"
        ]
    return _check_optional_text(value, member, low=low, high=high, pattern=pattern)


def _check_optional_text(
    value: str | None,
    member: str,
    *,
    low: int,
    high: int,
    pattern: re.Pattern[str] | None,
) -> list[str]:
    if value is None:
        return []
    prefix = f"Value '{value}' at '{member}' failed to satisfy constraint: "
    problems = []
    if pattern is not None and not pattern.fullmatch(value):
        problems.append(
            prefix
            + "Member must satisfy regular expression pattern: "
            + pattern.pattern.replace(":/", r":\/")
        )
    if len(value) < low:
        problems.append(
            prefix + f"Member must have length greater than or equal to {low}"
        )
    if len(value) > high:
        problems.append(
            prefix + f"Member must have length less than or equal to {high}"
        )
    return problems


def _check_duration(value: str | None) -> list[str]:
    if value is None:
        return []
    prefix = f"Value '{value}' at 'durationSeconds' failed to satisfy constraint: "
    if not re.fullmatch(r"-?\d+", value):
        return [prefix + "Member must be a number"]
    if int(value) < 900:
        return [prefix + "Member must have value greater than or equal to 900"]
    if int(value) > 43200:
        return [prefix + "Member must have value less than or equal to 43200"]
    return []


class AssumeRoleHandler:
    """Decide and answer one ``AssumeRole`` request."""

    def __init__(self, *, lifetime_override: Callable[[], int | None]) -> None:
        self._lifetime_override = lifetime_override

    def handle(
        self, request: Request, signed: SignedRequest, *, body: bytes
    ) -> Response:
        region = signed.region or "us-east-1"
        caller = _authenticate(request, signed, body=body, region=region)
        params = validate_params(signed.params)
        role = _authorize(caller, params, region=region)
        granted = self._granted_duration(caller, params, role=role)
        session = sts_backends[account_of(params.role_arn)][
            get_partition(region)
        ].assume_role(
            region_name=region,
            role_session_name=params.session_name,
            role_arn=params.role_arn,
            policy=params.policy,  # type: ignore[arg-type]  # moto accepts None
            duration=granted,
            external_id=params.external_id,  # type: ignore[arg-type]
        )
        return _assume_role_response(session, packed=params.policy is not None)

    def _granted_duration(
        self, caller: Identity, params: AssumeRoleParams, *, role: Any
    ) -> int:
        requested = params.duration or DEFAULT_DURATION_SECONDS
        if caller.is_role_session and requested > CHAINING_LIMIT_SECONDS:
            raise AwsError(
                400,
                "ValidationError",
                message="The requested DurationSeconds exceeds the 1 hour session "
                "limit for roles assumed by role chaining.",
            )
        if requested > int(role.max_session_duration or DEFAULT_DURATION_SECONDS):
            raise AwsError(
                400,
                "ValidationError",
                message="The requested DurationSeconds exceeds the "
                "MaxSessionDuration set for this role.",
            )
        override = self._lifetime_override()
        return override if override is not None else requested


def account_of(arn: str) -> str:
    """The account field of an ARN, or "" when it has none."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


def _authenticate(
    request: Request, signed: SignedRequest, body: bytes, *, region: str
) -> Identity:
    """Moto's own signature check, run against the caller's account."""
    key = signed.access_key_id or ""
    account_id = get_account_id_from(key)
    path = request.path + (
        f"?{request.query_string.decode()}" if request.query_string else ""
    )
    try:
        iam_request = IAMRequest(
            account_id=account_id,
            method=request.method,
            path=path,
            data={k: [v] for k, v in signed.params.items()},  # type: ignore[misc]
            body=body,
            headers=request.headers,  # type: ignore[arg-type]
            action="AssumeRole",
        )
        iam_request.check_signature()
    except HTTPException as exc:
        raise AwsError(
            int(exc.code or 403),
            str(getattr(exc, "error_type", "AccessDenied")),
            message=str(getattr(exc, "message", exc.description)),
        ) from exc
    identity = find_identity(key, region=region)
    if identity is None:
        raise AwsError(
            403,
            "InvalidClientTokenId",
            message="The security token included in the request is invalid.",
        )
    return identity


def _authorize(caller: Identity, params: AssumeRoleParams, *, region: str) -> Any:
    """Trust policy in the role's account, then the caller's identity policy."""
    denied = AwsError(
        403,
        "AccessDenied",
        message=f"User: {caller.arn} is not authorized to perform: sts:AssumeRole "
        f"on resource: {params.role_arn}",
    )
    partition = get_partition(region)
    try:
        role = iam_backends[account_of(params.role_arn)][partition].get_role_by_arn(
            params.role_arn
        )
    except NotFoundException:
        raise denied from None
    context = RequestContext(
        caller_arn=caller.arn,
        external_id=params.external_id,
        role_session_name=params.session_name,
    )
    try:
        decision = evaluate_trust_policy(role.assume_role_policy_document, context)
    except (UnsupportedPolicyError, ValueError):
        raise denied from None
    if not decision.allowed:
        raise denied
    same_account = caller.account_id == account_of(params.role_arn)
    if same_account and decision.principal_match is PrincipalMatch.EXACT:
        return role
    if not _identity_allows(caller, params.role_arn, partition=partition):
        raise denied
    return role


def _identity_allows(caller: Identity, role_arn: str, *, partition: str) -> bool:
    """Evaluate the caller's identity policies with moto's evaluator."""
    headers: dict[str, str] = {}
    if caller.session is not None:
        headers["X-Amz-Security-Token"] = caller.session.session_token
    try:
        access_key = create_access_key(
            caller.account_id, partition, caller.access_key_id, headers
        )
    except CreateAccessKeyFailure:
        return False
    allowed = False
    for policy in access_key.collect_policies():
        result = IAMPolicy(policy).is_action_permitted("sts:AssumeRole", role_arn)
        if result is PermissionResult.DENIED:
            return False
        allowed = allowed or result is PermissionResult.PERMITTED
    return allowed


def _assume_role_response(session: AssumedRole, *, packed: bool) -> Response:
    request_id = str(uuid.uuid4())
    expiration = session.expiration.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    packed_xml = "<PackedPolicySize>6</PackedPolicySize>" if packed else ""
    xml = (
        f'<AssumeRoleResponse xmlns="{STS_XMLNS}"><AssumeRoleResult>'
        f"<AssumedRoleUser><Arn>{escape(session.arn)}</Arn>"
        f"<AssumedRoleId>{escape(session.user_id)}</AssumedRoleId></AssumedRoleUser>"
        f"<Credentials><AccessKeyId>{session.access_key_id}</AccessKeyId>"
        f"<SecretAccessKey>{session.secret_access_key}</SecretAccessKey>"
        f"<SessionToken>{session.session_token}</SessionToken>"
        f"<Expiration>{expiration}</Expiration></Credentials>{packed_xml}"
        f"</AssumeRoleResult><ResponseMetadata><RequestId>{request_id}"
        f"</RequestId></ResponseMetadata></AssumeRoleResponse>"
    )
    return Response(xml, 200, {"x-amzn-RequestId": request_id}, "text/xml")
