"""The AWS seam: the operator's STS calls, behind one async gateway.

Together with ``sts_errors`` (what AWS errors mean) and ``sts_access`` (the
access checks), the only code that imports boto3 or botocore. This module
owns:

* ``StsGateway``: the operator's own identity, AssumeRole with the External
  ID, the wrong-id probe (the confused-deputy check) and the access checks with
  the new credentials; async, with a global bound on AWS calls in flight;
* ``CallerIdentity`` and ``IssuedCredentials``: what comes back, with the
  secret parts kept out of ``repr``/``str``.

``map_client_error`` and ``sanitise`` are re-exported from ``sts_errors``.

STS is always called on the regional endpoint of the requested region. Tests
and emulators redirect the SDK only through its standard settings
(``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_STS``, ``AWS_CONFIG_FILE``, ...);
nothing here is test-specific.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from delegated_aws.models import AccessCheck, Resources
from delegated_aws.sts_access import run_access_checks
from delegated_aws.sts_errors import (
    DENIED_CODES,
    error_code,
    map_client_error,
    sanitise,
)

__all__ = [
    "PROBE_DURATION",
    "CallerIdentity",
    "IssuedCredentials",
    "StsGateway",
    "map_client_error",
    "sanitise",
]

T = TypeVar("T")

# The shortest session STS grants; the wrong-id probe asks for no more.
PROBE_DURATION = timedelta(seconds=900)


@dataclass(frozen=True)
class CallerIdentity:
    """Who the operator is to AWS (``sts:GetCallerIdentity``)."""

    account_id: str
    arn: str
    partition: str
    # An assumed-role session (IRSA, Pod Identity, instance role): AWS caps the
    # sessions it assumes at 1 h (role chaining).
    is_role_session: bool

    @classmethod
    def from_arn(cls, account_id: str, arn: str) -> CallerIdentity:
        parts = arn.split(":", 5)
        return cls(
            account_id=account_id,
            arn=arn,
            partition=parts[1] if len(parts) > 1 else "aws",
            is_role_session=parts[2:3] == ["sts"]
            and parts[-1].startswith("assumed-role/"),
        )


@dataclass(frozen=True)
class IssuedCredentials:
    """Temporary credentials from AssumeRole; only metadata shows in repr/str."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    assumed_role_arn: str
    issued_at: datetime

    def __repr__(self) -> str:
        return (
            f"IssuedCredentials(assumed_role_arn={self.assumed_role_arn!r}, "
            f"issued_at={self.issued_at.isoformat()}, "
            f"expiration={self.expiration.isoformat()})"
        )

    __str__ = __repr__


class StsGateway:
    """Async STS calls and access checks through one boto3 Session.

    The Session uses the default credential chain: IRSA or Pod Identity web
    identity, the container or instance role, or keys in the environment. For
    the role-based sources botocore's providers hand out refreshable
    credentials that renew themselves before they expire, and every client made
    from the Session shares them, so the cached clients keep working when the
    operator's own credentials rotate. Nothing here refreshes by hand.

    Retries of throttling, 5xx and network errors are botocore's ("standard"
    mode, 3 attempts); what still fails is mapped to ``TemporaryError`` and
    kopf retries later. Blocking calls run in worker threads under one
    semaphore, the global bound on AWS calls in flight.

    An injected ``session`` is pinned to regional STS endpoints like the
    default one.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        session: boto3.session.Session | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {concurrency}")
        self._session = session or boto3.session.Session()
        _pin_regional_sts(self._session)
        self._config = Config(
            # Three attempts in all: botocore's "max_attempts" would add a fourth.
            retries={"mode": "standard", "total_max_attempts": 3},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._semaphore = asyncio.Semaphore(concurrency)
        self._sts_clients: dict[str, Any] = {}
        # NB: botocore clients are thread-safe, sessions are not; every client
        # is created under this lock.
        self._lock = threading.Lock()

    def client(self, region: str) -> Any:
        """The cached STS client of ``region`` (tests stub it here)."""
        with self._lock:
            if region not in self._sts_clients:
                self._sts_clients[region] = self._session.client(
                    "sts", region_name=region, config=self._config
                )
            return self._sts_clients[region]

    def resource_client(
        self, credentials: IssuedCredentials, service: str, *, region: str
    ) -> Any:
        """A client of ``service`` that acts with the issued credentials."""
        with self._lock:
            return self._session.client(
                service,
                region_name=region,
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
                config=self._config,
            )

    async def identity(self, region: str) -> CallerIdentity:
        """The operator's own account, principal and partition."""

        def call() -> CallerIdentity:
            answer = self.client(region).get_caller_identity()
            return CallerIdentity.from_arn(answer["Account"], answer["Arn"])

        return await self._sts(call, region=region)

    async def assume_role(
        self,
        *,
        role_arn: str,
        external_id: str,
        session_name: str,
        duration: timedelta,
        region: str,
    ) -> IssuedCredentials:
        """Assume the customer's role with the External ID."""

        def call() -> IssuedCredentials:
            return _assume(
                self.client(region),
                role_arn=role_arn,
                external_id=external_id,
                session_name=session_name,
                duration=duration,
            )

        return await self._sts(call, region=region, requested=duration)

    async def external_id_enforced(
        self, *, role_arn: str, session_name: str, region: str
    ) -> bool:
        """Whether the role refuses a wrong External ID (it must).

        Meaningful only after AssumeRole with the right id succeeded: a missing
        role or a trust policy naming someone else is also AccessDenied. When
        the wrong id is accepted, the 15-minute credentials are dropped unseen.
        """
        wrong_id = str(uuid.uuid4())

        def call() -> bool:
            try:
                _assume(
                    self.client(region),
                    role_arn=role_arn,
                    external_id=wrong_id,
                    session_name=session_name,
                    duration=PROBE_DURATION,
                )
            except ClientError as error:
                if error_code(error) in DENIED_CODES:
                    return True
                raise
            return False

        return await self._sts(call, region=region, requested=PROBE_DURATION)

    async def check_access(
        self, credentials: IssuedCredentials, *, resources: Resources, region: str
    ) -> list[AccessCheck]:
        """Prove with the new credentials that each listed resource answers.

        Never raises: every failure becomes a ``Failed`` check naming the action
        and the resource ARN.
        """

        # One semaphore slot for the whole pass: its calls run one after another.
        def make_client(service: str, client_region: str) -> Any:
            return self.resource_client(credentials, service, region=client_region)

        return await self._run(
            lambda: run_access_checks(
                make_client,
                assumed_role_arn=credentials.assumed_role_arn,
                resources=resources,
                region=region,
            )
        )

    async def _run(self, call: Callable[[], T]) -> T:
        async with self._semaphore:
            return await asyncio.to_thread(call)

    async def _sts(
        self,
        call: Callable[[], T],
        *,
        region: str,
        requested: timedelta | None = None,
    ) -> T:
        try:
            return await self._run(call)
        except (ClientError, BotoCoreError) as error:
            # `from None`: the botocore traceback may echo request details.
            raise map_client_error(error, region=region, requested=requested) from None


def _pin_regional_sts(session: boto3.session.Session) -> None:
    # botocore's Config has no option for this; it is a session variable, and
    # AWS_STS_REGIONAL_ENDPOINTS=legacy would send us-east-1 & co. to the
    # global endpoint.
    session._session.set_config_variable("sts_regional_endpoints", "regional")


def _assume(
    client: Any,
    *,
    role_arn: str,
    external_id: str,
    session_name: str,
    duration: timedelta,
) -> IssuedCredentials:
    answer = client.assume_role(
        RoleArn=role_arn,
        RoleSessionName=session_name,
        ExternalId=external_id,
        DurationSeconds=int(duration.total_seconds()),
    )
    issued_at = datetime.now(UTC)
    credentials = answer["Credentials"]
    return IssuedCredentials(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
        expiration=_as_utc(credentials["Expiration"]),
        assumed_role_arn=answer["AssumedRoleUser"]["Arn"],
        issued_at=issued_at,
    )


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
