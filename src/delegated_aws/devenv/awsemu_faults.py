"""Fault injection rules and the call log of the AWS emulator.

This module owns the emulator's test-facing bookkeeping: which injected faults
are armed (and how many times each may still fire), and the record of every
AWS call the emulator answered. Both are plain thread-safe in-memory objects;
the HTTP side lives in :mod:`delegated_aws.devenv.awsemu`.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

# Error presets with AWS's wording: name -> (HTTP status, code, message).
# ``{account_id}`` (the account asked to issue credentials), ``{caller}``,
# ``{role_arn}`` and ``{region}`` are filled in from the matched request.
PRESETS: Final[dict[str, tuple[int, str, str]]] = {
    "Throttling": (400, "Throttling", "Rate exceeded"),
    "RegionDisabledException": (
        403,
        "RegionDisabledException",
        "STS is not activated in this region for account:{account_id}. Your "
        "account administrator can activate STS in this region using the IAM "
        "Console.",
    ),
    "InvalidClientTokenId": (
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    ),
    "ExpiredToken": (
        403,
        "ExpiredToken",
        "The security token included in the request is expired",
    ),
    "SignatureDoesNotMatch": (
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you "
        "provided. Check your AWS Secret Access Key and signing method. Consult "
        "the service documentation for details.",
    ),
    # As STS words a refused AssumeRole.
    "AccessDenied": (
        403,
        "AccessDenied",
        "User: {caller} is not authorized to perform: sts:AssumeRole on resource: "
        "{role_arn}",
    ),
    "InternalFailure": (
        500,
        "InternalFailure",
        "The request processing has failed because of an unknown error, "
        "exception or failure.",
    ),
    "ServiceUnavailable": (
        503,
        "ServiceUnavailable",
        "The request has failed due to a temporary failure of the server.",
    ),
}


@dataclass
class FaultRule:
    """One armed fault.

    ``code`` None makes a latency-only rule: the call is delayed, then served
    normally. ``count`` None means unlimited; otherwise it is the number of
    remaining firings. ``action`` "*" matches every action.
    """

    action: str
    status: int = 400
    code: str | None = "Throttling"
    message: str = "Rate exceeded"
    role_arn: str | None = None
    external_id_present: bool | None = None
    probability: float = 1.0
    count: int | None = None
    latency_ms: int = 0
    drop_connection: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    fired: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        """Build a rule; ``preset`` names an entry of :data:`PRESETS`."""
        data = dict(data)
        preset = data.pop("preset", None)
        if preset is not None:
            status, code, message = PRESETS[str(preset)]
            data = {"status": status, "code": code, "message": message} | data
        allowed = set(cls.__dataclass_fields__) - {"id", "fired"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if "action" not in data:
            raise ValueError("a fault needs an 'action' ('*' for all)")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def matches(
        self, *, action: str, role_arn: str | None, external_id_present: bool
    ) -> bool:
        if self.action not in ("*", action):
            return False
        if self.role_arn is not None and self.role_arn != role_arn:
            return False
        if self.external_id_present not in (None, external_id_present):
            return False
        return self.count is None or self.count > 0


@dataclass(frozen=True)
class FiredFault:
    """What the emulator must do for one request hit by a rule."""

    status: int
    code: str | None
    message: str
    latency_ms: int
    drop_connection: bool


class FaultSet:
    """The armed rules; the first matching rule fires (and is consumed)."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [rule for rule in self._rules if rule.id != rule_id]
            return len(self._rules) != before

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def fire(
        self,
        *,
        action: str,
        role_arn: str | None,
        external_id_present: bool,
        account_id: str,
        region: str,
        caller: str = "",
    ) -> FiredFault | None:
        """Consume and return the first matching rule's effect, if any."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(
                    action=action,
                    role_arn=role_arn,
                    external_id_present=external_id_present,
                ):
                    continue
                if self._rng.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                rule.fired += 1
                message = rule.message.format(
                    account_id=account_id,
                    region=region,
                    caller=caller,
                    role_arn=role_arn or "",
                )
                return FiredFault(
                    status=rule.status,
                    code=rule.code,
                    message=message,
                    latency_ms=rule.latency_ms,
                    drop_connection=rule.drop_connection,
                )
        return None


@dataclass
class CallRecord:
    """One AWS call as the emulator saw and answered it."""

    action: str
    service: str | None
    region: str | None
    caller: str | None
    access_key_id: str | None
    role_arn: str | None = None
    external_id_given: bool = False
    role_session_name: str | None = None
    outcome: str = "ok"
    status: int = 200
    fault_injected: bool = False
    timestamp: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds")
    )


class CallLog:
    """Thread-safe, bounded list of :class:`CallRecord`."""

    def __init__(self, *, limit: int = 100_000) -> None:
        self._records: list[CallRecord] = []
        self._lock = threading.Lock()
        self._limit = limit

    def append(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)
            del self._records[: -self._limit]

    def reset(self) -> None:
        with self._lock:
            self._records.clear()

    def list(self, *, action: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            records = list(self._records)
        return [asdict(r) for r in records if action in (None, r.action)]
