"""What the reconciler remembers about each resource, and what a pass concludes.

This state lives only as long as the process: the credentials last issued (so a
deleted Secret is restored without a new STS call), retry bookkeeping and the
hold that keeps a failed call from being repeated before its retry is due.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from delegated_aws.conditions import Verdict
from delegated_aws.messages import Reason as R
from delegated_aws.models import Status
from delegated_aws.secret_content import Owner
from delegated_aws.sts import IssuedCredentials

Key = tuple[str, str]


@dataclass
class Memory:
    """Per-resource state that lives only as long as the process."""

    credentials: IssuedCredentials | None = None
    attempts: int = 0
    first_denied: dict[str, datetime] = field(default_factory=dict)
    refresh_handled: str | None = None
    hold: Hold | None = None


@dataclass(frozen=True)
class Hold:
    """A failed STS pass: until ``until``, events repeat it instead of calling."""

    fingerprint: str
    until: datetime
    verdicts: list[Verdict]


@dataclass
class Outcome:
    """What a pass concluded: the status to publish and when to come back."""

    status: Status
    verdicts: list[Verdict]
    retry_in: timedelta | None = None
    warnings: list[tuple[R, str]] = field(default_factory=list)


def owner_of(body: Mapping[str, Any]) -> Owner:
    return Owner(name=body["metadata"]["name"], uid=body["metadata"]["uid"])


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return meta["namespace"], meta["name"]
