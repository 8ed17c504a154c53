"""The DelegatedAWSSecret API as pydantic models: spec in, status out.

The CRD in ``crds/`` describes the same fields (a unit test keeps the two in
step). Parsing happens once, at the handler edge: ``parse_spec`` turns the raw
body into a ``Spec`` or raises ``InvalidSpecError`` naming the field. Nothing
downstream reads raw dicts.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from delegated_aws.durations import format_duration, parse_duration

# NB: these patterns are repeated in the CRD schema; tests/unit/test_crd.py
# checks that both sides accept and refuse the same samples.
ROLE_ARN_PATTERN = (
    r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$"
)
EXTERNAL_ID_PATTERN = r"^[\w+=,.@:/-]{2,1224}$"
SESSION_NAME_PATTERN = r"^[\w+=,.@-]{2,64}$"
REGION_PATTERN = r"^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$"
BUCKET_PATTERN = r"^(s3://)?[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
# S3's naming rules the pattern cannot say: what no valid bucket name matches.
BUCKET_FORBIDDEN = (
    (r"^(s3://)?[^/]*(\.\.|\.-|-\.)", "a period next to a period or a hyphen"),
    (r"^(s3://)?[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(/|$)", "the form of an IP address"),
    (r"^(s3://)?(xn--|sthree-|amzn-s3-demo-)", "a prefix S3 reserves"),
    (
        r"^(s3://)?[^/]*(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)(/|$)",
        "a suffix S3 reserves",
    ),
)
KMS_KEY_ARN_PATTERN = (
    r"^arn:aws(-[a-z]+)*:kms:[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}"
    r":key/[a-zA-Z0-9-]{1,64}$"
)
ECR_REPOSITORY_PATTERN = (
    r"^((arn:aws(-[a-z]+)*:ecr:[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:repository/)?"
    r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*)$"
)
SECRET_NAME_PATTERN = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# Letters, digits and ._/- only: the path lands in a credential_process command,
# which some SDKs run through a shell.
MOUNT_PATH_PATTERN = r"^/[A-Za-z0-9._/-]*$"
MOUNT_PATH_FORBIDDEN = (
    (r"^/+$", "no directory below the root"),
    (r"(^|/)\.\.?(/|$)", "a . or .. segment"),
)

# Set (to a timestamp) on a resource to ask for new credentials now.
# The custom resource, as the API server serves it.
GROUP, VERSION, PLURAL = "delegatedaws.io", "v1alpha1", "delegatedawssecrets"

REFRESH_ANNOTATION = "delegatedaws.io/refresh-requested"

MIN_SESSION = timedelta(minutes=15)
MAX_SESSION = timedelta(hours=12)
DEFAULT_SESSION = timedelta(hours=1)
DEFAULT_MOUNT_PATH = "/var/run/secrets/delegated-aws"


class InvalidSpecError(ValueError):
    """The spec cannot be acted on; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _matches(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern, re.ASCII)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what} (pattern {pattern})")
        return value

    return AfterValidator(check)


def _refuses(forbidden: tuple[tuple[str, str], ...], what: str) -> AfterValidator:
    compiled = [(re.compile(pattern, re.ASCII), why) for pattern, why in forbidden]

    def check(value: str) -> str:
        for pattern, why in compiled:
            if pattern.search(value):
                raise ValueError(f"{value!r} is not a valid {what}: it has {why}")
        return value

    return AfterValidator(check)


def _duration_between(low: timedelta, high: timedelta) -> AfterValidator:
    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise ValueError(
                f"{format_duration(value)} is outside "
                f"{format_duration(low)}-{format_duration(high)}"
            )
        return value

    return AfterValidator(check)


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _as_duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


def _normalise_bucket(value: str) -> str:
    """``s3://bucket/prefix`` names the bucket ``bucket``; policies want the name."""
    return value.removeprefix("s3://").split("/", 1)[0]


Duration = Annotated[timedelta, BeforeValidator(_as_duration)]
RoleArn = Annotated[str, _matches(ROLE_ARN_PATTERN, "IAM role ARN")]
ExternalId = Annotated[str, _matches(EXTERNAL_ID_PATTERN, "External ID")]
SessionName = Annotated[str, _matches(SESSION_NAME_PATTERN, "role session name")]
Region = Annotated[str, _matches(REGION_PATTERN, "AWS region")]
BucketName = Annotated[
    str,
    _matches(BUCKET_PATTERN, "S3 bucket name"),
    _refuses(BUCKET_FORBIDDEN, "S3 bucket name"),
    AfterValidator(_normalise_bucket),
]
KmsKeyArn = Annotated[str, _matches(KMS_KEY_ARN_PATTERN, "KMS key ARN")]
EcrRepository = Annotated[str, _matches(ECR_REPOSITORY_PATTERN, "ECR repository")]
SecretName = Annotated[
    str, Field(max_length=253), _matches(SECRET_NAME_PATTERN, "Secret name")
]
MountPath = Annotated[
    str,
    _matches(MOUNT_PATH_PATTERN, "absolute mount path"),
    _refuses(MOUNT_PATH_FORBIDDEN, "mount path"),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
    )


class Resources(_Model):
    """What the delegated role is for; drives the policy and the access checks."""

    s3_buckets: tuple[BucketName, ...] = ()
    kms_key_arns: tuple[KmsKeyArn, ...] = ()
    ecr_repositories: tuple[EcrRepository, ...] = ()


class SecretSpec(_Model):
    """Where and how the credentials are written."""

    name: SecretName | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    deletion_policy: Literal["Delete", "Retain"] = "Delete"
    mount_path: MountPath = DEFAULT_MOUNT_PATH


class RefreshSpec(_Model):
    """When to rewrite the Secret; by default a third of the lifetime before expiry."""

    before: Annotated[
        Duration | None,
        AfterValidator(
            lambda v: v if v is None or v > timedelta(0) else _raise("must be > 0")
        ),
    ] = None


class AccessChecksSpec(_Model):
    """Optional proof, with the new credentials, that the listed resources answer."""

    enabled: bool = False


class Spec(_Model):
    """The desired state of one delegated role and its Secret."""

    # An empty string means what an absent field means: no role yet.
    role_arn: Annotated[RoleArn | None, BeforeValidator(_empty_is_none)] = None
    external_id: ExternalId | None = None
    region: Region | None = None
    session_duration: Annotated[
        Duration, _duration_between(MIN_SESSION, MAX_SESSION)
    ] = DEFAULT_SESSION
    role_session_name: SessionName | None = None
    resources: Resources = Resources()
    secret: SecretSpec = SecretSpec()
    refresh: RefreshSpec = RefreshSpec()
    access_checks: AccessChecksSpec = AccessChecksSpec()


def _raise(message: str) -> Any:
    raise ValueError(message)


def parse_spec(raw: Any) -> Spec:
    """Parse ``spec`` from a body, naming the first offending field on failure."""
    try:
        return Spec.model_validate(raw or {})
    except ValidationError as error:
        first = error.errors()[0]
        path = ".".join(str(part) for part in ("spec", *first["loc"]))
        raise InvalidSpecError(path, _clean(first["msg"])) from None


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")


# --- status -----------------------------------------------------------------


class TrustedPrincipal(_Model):
    """The operator's own AWS identity, which the customer's role must trust."""

    account_id: str
    arn: str
    partition: str
    trust_principal: str


class Instructions(_Model):
    """Everything the customer's AWS administrator needs, ready to paste."""

    role_name: str
    trust_policy: str
    permissions_policy: str | None = None
    kms_key_policy_statement: str | None = None
    max_session_duration: int
    steps: tuple[str, ...]
    aws_cli: str


class CredentialsStatus(_Model):
    """Metadata of the credentials in the Secret; never the values."""

    expiration: str
    refresh_at: str
    last_refresh_time: str
    session_duration: str
    assumed_role_arn: str
    role_arn: str
    secret_name: str
    # A digest of the spec fields the credentials were issued for; a spec change
    # that alters it means the role must be validated again.
    spec_fingerprint: str


class AccessCheck(_Model):
    resource: str
    action: str
    result: Literal["Passed", "Failed"]
    reason: str = ""


class Condition(_Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    observed_generation: int | None = None
    last_transition_time: str


class Status(_Model):
    """Everything the operator writes; a round trip through the API keeps it all."""

    external_id: str | None = None
    trusted_principal: TrustedPrincipal | None = None
    instructions: Instructions | None = None
    credentials: CredentialsStatus | None = None
    access_checks: tuple[AccessCheck, ...] = ()
    conditions: tuple[Condition, ...] = ()
    observed_generation: int | None = None


def parse_status(raw: Any) -> Status:
    """Parse what an earlier run wrote, keeping every field that still parses.

    A field edited into nonsense is dropped alone: above all the External ID in
    force must survive a broken neighbour, or a working role would stop working.
    """
    try:
        return Status.model_validate(raw or {})
    except ValidationError:
        pass
    kept = {}
    for name, value in (raw if isinstance(raw, dict) else {}).items():
        try:
            Status.model_validate({name: value})
        except ValidationError:
            continue
        kept[name] = value
    return Status.model_validate(kept)


def dump(model: BaseModel) -> dict[str, Any]:
    """The API form of a model: camelCase keys, no unset optionals."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
