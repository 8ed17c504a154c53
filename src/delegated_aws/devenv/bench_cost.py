"""STS cost and Secret freshness over simulated days, on a fake clock.

This module owns the cost half of ``make bench``. It drives the real
``Reconciler`` (``plan.decide``, ``schedule.plan_refresh``, its own refresh
schedule) with a fake clock, a fake STS gateway that grants exactly the
requested lifetime, and a fake Secret store that records every write. Time
jumps from one scheduled wake-up to the next, so a simulated week takes
milliseconds, and the numbers are those of the code that runs in the cluster,
not of a model of it.

The same timeline is computed for two references: the physical minimum (one
AssumeRole per lifetime, rewritten the instant the old credentials expire) and
a fixed-interval refresher that renews every hour whatever the expiry, the
approach of generic secret tools with a ``refreshInterval``.

Each AssumeRole advances the clock by ``STS_LATENCY`` and each Secret write by
``WRITE_LATENCY``, so "new credentials in the Secret" lands a little after the
call, as it does for real.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from delegated_aws.reconcile import Reconciler
from delegated_aws.reporting import Reporter
from delegated_aws.secret_content import DesiredSecret, Owner
from delegated_aws.secret_ownership import ManagedSecret
from delegated_aws.settings import Settings
from delegated_aws.sts import CallerIdentity, IssuedCredentials

STS_LATENCY = timedelta(milliseconds=200)
WRITE_LATENCY = timedelta(milliseconds=50)
LOW_WINDOW = timedelta(minutes=15)
SIMULATED_DAYS = 7
START = datetime(2030, 1, 1, tzinfo=UTC)
OPERATOR_ARN = "arn:aws:iam::111111111111:user/operator"
ROLE_ARN = "arn:aws:iam::222222222222:role/bench"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@dataclass
class Timeline:
    """Every AssumeRole and every Secret write, in fake-clock time."""

    assume_calls: list[datetime] = field(default_factory=list)
    # (written at, expiration of the credentials written)
    writes: list[tuple[datetime, datetime]] = field(default_factory=list)


class FakeGateway:
    """STS that grants what is asked, ``STS_LATENCY`` later."""

    def __init__(self, clock: FakeClock, timeline: Timeline) -> None:
        self.clock, self.timeline = clock, timeline
        self.serial = itertools.count()

    async def assume_role(self, *, duration: timedelta, **_: Any) -> IssuedCredentials:
        self.timeline.assume_calls.append(self.clock())
        self.clock.advance(STS_LATENCY)
        number = next(self.serial)
        return IssuedCredentials(
            access_key_id=f"ASIAFAKE{number:012d}",
            secret_access_key="fake",
            session_token="fake",
            expiration=self.clock() + duration - STS_LATENCY,
            assumed_role_arn=f"{ROLE_ARN}/bench",
            issued_at=self.clock(),
        )

    async def external_id_enforced(self, **_: Any) -> bool:
        # The wrong-id probe is part of validation, not of steady-state cost.
        return True


class FakeWriter:
    """One namespace of Secrets in memory; each write takes ``WRITE_LATENCY``."""

    def __init__(self, clock: FakeClock, timeline: Timeline) -> None:
        self.clock, self.timeline = clock, timeline
        self.secrets: dict[str, DesiredSecret] = {}

    async def read(
        self, namespace: str, name: str, *, owner: Owner, **_: Any
    ) -> ManagedSecret | None:
        found = self.secrets.get(name)
        if found is None:
            return None
        return ManagedSecret(
            namespace=namespace,
            name=name,
            resource_version="1",
            expiration=_parse(found.expiration),
            role_arn=found.role_arn,
            recorded_hash=found.content_hash,
            actual_hash=found.content_hash,
            garbage_collected=True,
        )

    async def write(self, namespace: str, desired: DesiredSecret) -> str:
        self.clock.advance(WRITE_LATENCY)
        self.secrets[desired.name] = desired
        self.timeline.writes.append((self.clock(), _parse(desired.expiration)))
        return "updated"

    async def delete_if_owned(self, *_: Any, **__: Any) -> bool:
        return False


class _NoApi:
    def patch_namespaced_custom_object_status(self, *_: Any, **__: Any) -> None:
        return None

    def get_namespaced_custom_object(self, *_: Any, **__: Any) -> None:
        return None

    def create_namespaced_event(self, *_: Any, **__: Any) -> None:
        return None


@dataclass(frozen=True)
class CostFigures:
    """One strategy at one lifetime, per resource per day."""

    strategy: str
    lifetime_hours: float
    assume_role_per_day: float
    minimum_per_day: float
    expired_seconds_per_day: float
    low_seconds_per_day: float
    """Seconds the Secret held credentials with less than 15 minutes left."""

    def as_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "lifetime_hours": self.lifetime_hours,
            "assume_role_per_day": round(self.assume_role_per_day, 2),
            "minimum_per_day": round(self.minimum_per_day, 2),
            "ratio_to_minimum": round(
                self.assume_role_per_day / self.minimum_per_day, 2
            ),
            "expired_seconds_per_day": round(self.expired_seconds_per_day, 2),
            "under_15min_seconds_per_day": round(self.low_seconds_per_day, 2),
        }


# --- the operator, for real, on a fake clock -----------------------------------


async def _operator_timeline(lifetime: timedelta, days: int) -> Timeline:
    clock, timeline = FakeClock(START), Timeline()
    reconciler = Reconciler(
        settings=Settings(metrics_port=0),
        gateway=FakeGateway(clock, timeline),  # type: ignore[arg-type]
        writer=FakeWriter(clock, timeline),  # type: ignore[arg-type]
        reporter=Reporter(status_api=_NoApi(), events_api=_NoApi()),
        clock=clock,
    )
    reconciler.identity = CallerIdentity.from_arn("111111111111", OPERATOR_ARN)
    body = _body(lifetime)
    key = ("bench", "cost")
    await reconciler.observe(body)
    end = START + timedelta(days=days)
    while clock() < end:
        due = reconciler.scheduler.due(key)
        if due is None:
            raise RuntimeError("the reconciler scheduled no refresh")
        # Jump straight to the wake-up instead of waiting for the timer.
        reconciler.scheduler.cancel(key)
        clock.now = max(clock(), due)
        await reconciler.reconcile(key)
    reconciler.scheduler.cancel(key)
    return timeline


def _body(lifetime: timedelta) -> Mapping[str, Any]:
    hours = int(lifetime.total_seconds() // 3600)
    return {
        "apiVersion": "delegatedaws.io/v1alpha1",
        "kind": "DelegatedAWSSecret",
        "metadata": {
            "namespace": "bench",
            "name": "cost",
            "uid": "00000000-0000-0000-0000-000000000001",
            "generation": 1,
        },
        "spec": {
            "roleArn": ROLE_ARN,
            "externalId": "bench-cost",
            "sessionDuration": f"{hours}h",
        },
    }


# --- the references -----------------------------------------------------------


def _fixed_interval_timeline(
    lifetime: timedelta, days: int, interval: timedelta
) -> Timeline:
    timeline, now = Timeline(), START
    end = START + timedelta(days=days)
    while now < end:
        timeline.assume_calls.append(now)
        issued = now + STS_LATENCY
        timeline.writes.append((issued + WRITE_LATENCY, issued + lifetime))
        now += interval
    return timeline


def _minimum_timeline(lifetime: timedelta, days: int) -> Timeline:
    """One call per lifetime: renew only once the credentials have expired."""
    timeline, now = Timeline(), START
    end = START + timedelta(days=days)
    while now < end:
        timeline.assume_calls.append(now)
        issued = now + STS_LATENCY
        timeline.writes.append((issued + WRITE_LATENCY, issued + lifetime))
        now = issued + lifetime
    return timeline


def _figures(
    strategy: str, lifetime: timedelta, timeline: Timeline, days: int
) -> CostFigures:
    end = START + timedelta(days=days)
    calls = sum(1 for moment in timeline.assume_calls if moment < end)
    expired = low = 0.0
    # Skip the very first fill: before it there was no Secret at all.
    writes = [*timeline.writes, (end, end)]
    for (written, expires), (following, _) in itertools.pairwise(writes):
        stop = min(following, end)
        if stop <= written:
            continue
        expired += _overlap(written, stop, expires, end)
        low += _overlap(written, stop, expires - LOW_WINDOW, end)
    return CostFigures(
        strategy=strategy,
        lifetime_hours=lifetime.total_seconds() / 3600,
        assume_role_per_day=calls / days,
        minimum_per_day=timedelta(days=1) / lifetime,
        expired_seconds_per_day=expired / days,
        low_seconds_per_day=low / days,
    )


def _overlap(start: datetime, stop: datetime, since: datetime, end: datetime) -> float:
    """Seconds of [start, stop) that are at or after ``since``."""
    begin = max(start, since)
    return max(0.0, (min(stop, end) - begin).total_seconds())


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run(
    lifetimes: tuple[timedelta, ...] = (timedelta(hours=1), timedelta(hours=12)),
    *,
    days: int = SIMULATED_DAYS,
) -> list[CostFigures]:
    """Figures for the operator and both references at each lifetime."""
    results = []
    for lifetime in lifetimes:
        operator = asyncio.run(_operator_timeline(lifetime, days))
        results += [
            _figures("operator", lifetime, operator, days),
            _figures(
                "fixed 1h interval",
                lifetime,
                _fixed_interval_timeline(lifetime, days, timedelta(hours=1)),
                days,
            ),
            _figures(
                "minimum (at expiry)", lifetime, _minimum_timeline(lifetime, days), days
            ),
        ]
    return results


if __name__ == "__main__":
    for figures in run():
        print(figures.as_json())
