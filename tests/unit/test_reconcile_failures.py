"""Failure semantics of the reconciler, on a fake clock with scriptable fakes.

The gateway, the Secret writer and the scheduler are fakes; the Reporter is
real, over fake status and Event APIs, so conditions and Events are the ones a
person would read. Time is ``Clock.now``, moved by hand: a day of refreshes
runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from delegated_aws import plan
from delegated_aws.errors import (
    AssumeRoleDeniedError,
    OperatorError,
    OperatorIdentityError,
    TemporaryError,
)
from delegated_aws.messages import Reason as R
from delegated_aws.models import InvalidSpecError, Status, parse_spec
from delegated_aws.reconcile import PERMANENT_RECHECK, Reconciler
from delegated_aws.reporting import Reporter, StatusWriteFailed
from delegated_aws.secret_content import DesiredSecret
from delegated_aws.secret_ownership import ManagedSecret
from delegated_aws.secrets import SecretConflict, SecretError, SecretRejected
from delegated_aws.settings import Settings
from delegated_aws.sts import CallerIdentity, IssuedCredentials

START = datetime(2030, 1, 1, tzinfo=UTC)
ROLE = "arn:aws:iam::111122223333:role/reader"
OPERATOR = CallerIdentity.from_arn("444455556666", "arn:aws:iam::444455556666:user/op")
LIFETIME = timedelta(hours=1)

Behaviour = Callable[[timedelta], Exception | None]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FakeGateway:
    """AssumeRole on the fake clock; ``behaviour`` may fail a call."""

    clock: Clock
    behaviour: Behaviour = lambda duration: None
    enforced: bool = True
    calls: list[timedelta] = field(default_factory=list)

    async def assume_role(self, *, duration: timedelta, **_: Any) -> IssuedCredentials:
        self.calls.append(duration)
        failure = self.behaviour(duration)
        if failure is not None:
            raise failure
        now = self.clock()
        return IssuedCredentials(
            access_key_id=f"ASIA{secrets.token_hex(6).upper()}",
            secret_access_key="s",
            session_token="t",
            expiration=now + min(duration, LIFETIME),
            assumed_role_arn="arn:aws:sts::111122223333:assumed-role/reader/ns.x",
            issued_at=now,
        )

    async def external_id_enforced(self, **_: Any) -> bool:
        return self.enforced

    async def check_access(self, *_: Any, **__: Any) -> list[Any]:
        return []


class FakeWriter:
    """Secrets in a dict, as the writer would report them."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], DesiredSecret] = {}
        # Called inside the next write, to stage what happens meanwhile.
        self.during_write: Callable[[], Awaitable[None]] | None = None
        # Raised by every read or write while set, as the real writer would.
        self.read_error: SecretError | None = None
        self.write_error: SecretError | None = None

    async def read(self, namespace: str, name: str, **_: Any) -> Any:
        if self.read_error is not None:
            raise self.read_error
        desired = self.secrets.get((namespace, name))
        if desired is None:
            return None
        return ManagedSecret(
            namespace=namespace,
            name=name,
            resource_version="1",
            expiration=plan.parse_time(desired.expiration),
            role_arn=ROLE,
            recorded_hash=desired.content_hash,
            actual_hash=desired.content_hash,
            garbage_collected=True,
        )

    async def write(self, namespace: str, desired: DesiredSecret) -> str:
        if self.write_error is not None:
            raise self.write_error
        hook, self.during_write = self.during_write, None
        if hook is not None:
            await hook()
        self.secrets[namespace, desired.name] = desired
        return "created"

    async def delete_if_owned(self, *_: Any, **__: Any) -> bool:
        return True


class FakeScheduler:
    """Records the next wake-up per key; the test does the waking."""

    def __init__(self) -> None:
        self.due: dict[Any, datetime] = {}

    def at(self, key: Any, when: datetime, *, now: datetime) -> None:
        self.due[key] = when

    def cancel(self, key: Any) -> None:
        self.due.pop(key, None)


class FakeApis:
    """The status and Event APIs the Reporter writes to, by resource name."""

    def __init__(self) -> None:
        self.status: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str, str]] = []
        # The uid of the object that holds each name, as the API server knows it.
        self.uids: dict[str, str] = {}

    def patch_namespaced_custom_object_status(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: Any,
        **kwargs: Any,
    ) -> None:
        assert kwargs == {"_content_type": "application/json-patch+json"}
        test, add = body
        assert (test["op"], test["path"]) == ("test", "/metadata/uid")
        assert (add["op"], add["path"]) == ("add", "/status")
        if test["value"] != self.uids.get(name, test["value"]):
            raise ApiException(status=422, reason="Unprocessable Entity")
        self.status[name] = add["value"]

    def get_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        **kwargs: Any,
    ) -> Any:
        if name not in self.uids:
            raise ApiException(status=404, reason="Not Found")
        return {"metadata": {"name": name, "uid": self.uids[name]}}

    def create_namespaced_event(self, namespace: str, body: Any) -> None:
        name = body["involvedObject"]["name"]
        self.events.append((name, body["type"], body["reason"], body["message"]))


class World:
    """One reconciler and its fakes; resources are bodies kept here."""

    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.gateway = FakeGateway(self.clock)
        self.writer = FakeWriter()
        self.apis = FakeApis()
        self.reconciler = Reconciler(
            settings=Settings(**settings),
            gateway=self.gateway,  # type: ignore[arg-type]
            writer=self.writer,  # type: ignore[arg-type]
            reporter=Reporter(status_api=self.apis, events_api=self.apis),
            clock=self.clock,
        )
        self.scheduler = FakeScheduler()
        self.reconciler.scheduler = self.scheduler  # type: ignore[assignment]
        self.reconciler.identity = OPERATOR

    async def apply(
        self, name: str, spec: dict[str, Any], *, age: int = 0, generation: int = 1
    ) -> None:
        body = {
            "metadata": {
                "namespace": "ns",
                "name": name,
                "uid": f"uid-{name}",
                "generation": generation,
                "creationTimestamp": f"2029-01-01T00:00:{age:02d}Z",
            },
            "spec": spec,
            "status": self.apis.status.get(name, {}),
        }
        self.apis.uids[name] = body["metadata"]["uid"]
        await self.reconciler.observe(body)

    async def wake(self, name: str) -> None:
        """Move the clock to the scheduled wake-up and reconcile, as the timer would."""
        self.clock.now = max(self.clock.now, self.scheduler.due[("ns", name)])
        await self.reconciler.reconcile(("ns", name))

    def condition(self, name: str, kind: str) -> tuple[str, str, str]:
        for found in self.apis.status[name]["conditions"]:
            if found["type"] == kind:
                return found["status"], found["reason"], found["message"]
        raise AssertionError(f"no {kind} condition on {name}")

    def events(self, name: str) -> list[tuple[str, str]]:
        return [
            (kind, reason) for who, kind, reason, _ in self.apis.events if who == name
        ]

    def secret_expiration(self, name: str) -> datetime:
        return plan.parse_time(self.writer.secrets["ns", name].expiration)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def _identity_error() -> OperatorIdentityError:
    return OperatorIdentityError(
        "AWS rejected the operator's own credentials as invalid, not your role: "
        "check the operator's IRSA, Pod Identity or key setup.",
        aws_code="InvalidClientTokenId",
    )


# --- F04, F01 on refresh: a refresh restates only what it proved -------------------


def test_refresh_keeps_external_id_not_enforced() -> None:
    async def scenario() -> World:
        world = World(require_external_id_enforcement=False)
        world.gateway.enforced = False
        await world.apply("reader", {"roleArn": ROLE})
        for _ in range(3):
            await world.wake("reader")
        return world

    world = run(scenario())

    assert world.condition("reader", "ExternalIdEnforced")[:2] == (
        "False",
        "ExternalIdNotEnforced",
    )
    assert world.condition("reader", "Ready")[:2] == ("True", "Ready")
    # One Warning when it was found, none on each refresh.
    assert world.events("reader").count(("Warning", "ExternalIdNotEnforced")) == 1


def test_refresh_keeps_the_duration_fallback_visible() -> None:
    async def scenario() -> World:
        world = World()
        world.gateway.behaviour = lambda duration: (
            _max_exceeded() if duration > LIFETIME else None
        )
        await world.apply("reader", {"roleArn": ROLE, "sessionDuration": "12h"})
        for _ in range(3):
            await world.wake("reader")
        return world

    world = run(scenario())

    status, reason, message = world.condition("reader", "RoleValidated")
    assert (status, reason) == ("True", "SessionDurationExceedsRoleMaximum")
    assert "Requested 12h" in message and "granted 1h" in message
    assert world.apis.status["reader"]["credentials"]["sessionDuration"] == "1h"
    assert (
        world.events("reader").count(("Warning", "SessionDurationExceedsRoleMaximum"))
        == 1
    )
    # Each pass asks for 12h first: the role's maximum may have been raised.
    assert world.gateway.calls == [timedelta(hours=12), LIFETIME] * 4


def _max_exceeded() -> OperatorError:
    from delegated_aws.errors import SessionDurationExceedsRoleMaximum

    return SessionDurationExceedsRoleMaximum(
        "AWS refused a 12h session.", requested=timedelta(hours=12), aws_code="x"
    )


# --- F05: External ID override and uniqueness -------------------------------------


def test_external_id_override_forbidden_by_setting() -> None:
    async def scenario() -> World:
        world = World(allow_external_id_override=False)
        await world.apply("reader", {"roleArn": ROLE, "externalId": "pinned-id"})
        return world

    world = run(scenario())

    status, reason, message = world.condition("reader", "Ready")
    assert (status, reason) == ("False", "ExternalIdOverrideForbidden")
    assert "remove it to use the generated External ID" in message
    # The generated id the message points at is in status.
    assert world.apis.status["reader"]["externalId"] not in (None, "pinned-id")
    assert world.gateway.calls == []
    assert ("Warning", "ExternalIdOverrideForbidden") in world.events("reader")


def test_external_id_in_use_by_an_older_resource_stays_with_it() -> None:
    async def scenario() -> World:
        world = World()
        await world.apply("older", {"roleArn": ROLE, "externalId": "shared-id"}, age=1)
        await world.apply(
            "younger", {"roleArn": ROLE, "externalId": "shared-id"}, age=2
        )
        await world.apply("older", {"roleArn": ROLE, "externalId": "shared-id"}, age=1)
        return world

    world = run(scenario())

    status, reason, message = world.condition("younger", "RoleValidated")
    assert (status, reason) == ("False", "ExternalIdConflict")
    assert message == (
        "spec.externalId is already used by ns/older, which keeps it; choose "
        "another value."
    )
    assert world.condition("older", "Ready")[:2] == ("True", "Ready")
    assert world.apis.status["older"]["externalId"] == "shared-id"


# --- F06: IAM propagation ----------------------------------------------------------


def _denied() -> AssumeRoleDeniedError:
    return AssumeRoleDeniedError(
        "AWS denied sts:AssumeRole.", operator_policy=False, aws_code="AccessDenied"
    )


def test_denial_right_after_a_change_waits_for_iam_then_validates() -> None:
    denials = iter([_denied(), _denied()])

    async def scenario() -> tuple[World, list[tuple[str, str]]]:
        world = World(iam_propagation_grace="2m")
        world.gateway.behaviour = lambda _: next(denials, None)
        await world.apply("reader", {"roleArn": ROLE})
        waiting = [world.condition("reader", t)[:2] for t in ("RoleValidated", "Ready")]
        await world.wake("reader")
        await world.wake("reader")
        return world, waiting

    world, waiting = run(scenario())

    assert waiting == [
        ("False", "WaitingForIamPropagation"),
        ("False", "WaitingForIamPropagation"),
    ]
    assert world.condition("reader", "Ready")[:2] == ("True", "Ready")
    # Progress, not a call to action; and Ready only after validation. Other
    # conditions' progress is in status, not in Events.
    assert world.events("reader") == [
        ("Normal", "WaitingForIamPropagation"),
        ("Normal", "Ready"),
    ]


def test_denial_past_the_grace_is_assume_role_denied_with_the_checklist() -> None:
    async def scenario() -> World:
        world = World(iam_propagation_grace="2m")
        world.gateway.behaviour = lambda _: _denied()
        await world.apply("reader", {"roleArn": ROLE})
        while world.clock.now < START + timedelta(minutes=3):
            await world.wake("reader")
        return world

    world = run(scenario())

    status, reason, message = world.condition("reader", "RoleValidated")
    external_id = world.apis.status["reader"]["externalId"]
    assert (status, reason) == ("False", "AssumeRoleDenied")
    assert message == (
        "AWS denied sts:AssumeRole: check that the role in spec.roleArn exists, "
        "that its trust policy allows the principal arn:aws:iam::444455556666:root, "
        f"that it requires sts:ExternalId {external_id} (status.externalId), and "
        "that the operator's own IAM policy allows sts:AssumeRole on the role."
    )
    assert ("Warning", "AssumeRoleDenied") in world.events("reader")
    # Terminal: checked again only after the long recheck, not in a loop.
    assert world.scheduler.due["ns", "reader"] == world.clock.now + PERMANENT_RECHECK
    assert "Ready" not in {r for _, r in world.events("reader")}


# --- F15: an invalid spec calls nothing -------------------------------------------


@pytest.mark.parametrize(
    "role_arn",
    [
        pytest.param("arn:aws:iam::111122223333:user/bob", id="user-arn"),
        pytest.param("arn:aws:iam::1111:role/short-account", id="short-account"),
        pytest.param("arn:aws:s3:::bucket", id="not-iam"),
        pytest.param("reader", id="bare-name"),
    ],
)
def test_invalid_role_arn_is_permanent_without_sts_call(role_arn: str) -> None:
    with pytest.raises(InvalidSpecError) as raised:
        parse_spec({"roleArn": role_arn})
    assert raised.value.field == "spec.roleArn"

    async def scenario() -> World:
        world = World()
        await world.apply("reader", {"roleArn": role_arn})
        return world

    world = run(scenario())

    status, reason, message = world.condition("reader", "RoleValidated")
    assert (status, reason) == ("False", "InvalidSpec")
    assert message.startswith("spec.roleArn: ")
    assert message.endswith("correct spec.roleArn and apply again.")
    assert world.gateway.calls == []
    assert world.scheduler.due == {}


# --- throttling, 5xx, the operator's identity: Ready holds on a valid Secret ----------


@pytest.mark.parametrize(
    ("failure", "reason", "event"),
    [
        pytest.param(
            TemporaryError(R.THROTTLED, "AWS throttled the request.", delay=20),
            "Throttled",
            "Normal",
            id="throttled",
        ),
        pytest.param(
            TemporaryError(R.AWS_UNAVAILABLE, "AWS answered with a server error."),
            "AwsUnavailable",
            "Normal",
            id="5xx",
        ),
        pytest.param(
            _identity_error(), "OperatorCredentialsInvalid", "Warning", id="own"
        ),
    ],
)
def test_refresh_failure_keeps_ready_and_backs_off(
    failure: OperatorError, reason: str, event: str
) -> None:
    async def scenario() -> tuple[World, list[timedelta]]:
        world = World()
        await world.apply("reader", {"roleArn": ROLE})
        world.gateway.behaviour = lambda _: failure
        delays = []
        for _ in range(6):
            await world.wake("reader")
            delays.append(world.scheduler.due["ns", "reader"] - world.clock.now)
        return world, delays

    world, delays = run(scenario())

    assert world.condition("reader", "Ready")[:2] == ("True", reason)
    assert world.condition("reader", "SecretSynced")[:2] == ("True", "RefreshFailing")
    assert world.condition("reader", "RoleValidated")[:2] == ("True", "RoleAssumed")
    assert (event, reason) in world.events("reader")
    # Capped exponential backoff with jitter: never beyond 2 * 2**attempt.
    assert all(
        timedelta(0) <= d <= timedelta(seconds=4 * 2**i) for i, d in enumerate(delays)
    )


def test_every_resource_blames_the_operator_and_it_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = ("a", "b", "c")

    async def scenario() -> World:
        world = World()
        for name in names:
            await world.apply(name, {"roleArn": ROLE})
        world.gateway.behaviour = lambda _: _identity_error()
        for _ in range(3):
            for name in names:
                await world.wake(name)
        return world

    with caplog.at_level(logging.ERROR, logger="delegated_aws"):
        world = run(scenario())

    for name in names:
        status, reason, message = world.condition(name, "Ready")
        assert (status, reason) == ("True", "OperatorCredentialsInvalid")
        assert "not your role" in message
        assert ("ns", name) in world.writer.secrets
    operator_level = [
        r for r in caplog.records if "own AWS identity is failing" in r.getMessage()
    ]
    assert len(operator_level) == 1


# --- F11: a time-shifted soak -------------------------------------------------------


def test_soak_refreshes_over_many_lifetimes_while_base_credentials_rotate() -> None:
    """Two days of 1 h sessions; the operator's own credentials rotate every 6 h.

    At each rotation the first call fails as AWS answers a just-expired token
    (``ExpiredToken``); the next, with the refreshed base credentials, works.
    """
    rotation = timedelta(hours=6)
    failed_rotations: set[int] = set()

    def behaviour(_: timedelta) -> Exception | None:
        generation = (world.clock.now - START) // rotation
        if generation and generation not in failed_rotations:
            failed_rotations.add(generation)
            return OperatorIdentityError(
                "The operator's own AWS session token has expired, not your role.",
                aws_code="ExpiredToken",
            )
        return None

    world = World()
    world.gateway.behaviour = behaviour
    remaining: list[timedelta] = []
    # What the Secret still held at each wake-up, before the operator acted.
    left_at_wake: list[timedelta] = []

    async def scenario() -> None:
        await world.apply("reader", {"roleArn": ROLE})
        while world.clock.now < START + timedelta(days=2):
            due = max(world.clock.now, world.scheduler.due[("ns", "reader")])
            left_at_wake.append(world.secret_expiration("reader") - due)
            await world.wake("reader")
            remaining.append(world.secret_expiration("reader") - world.clock.now)
            assert world.condition("reader", "Ready")[0] == "True"
        # The last wake-up may have met a rotation; its retry works.
        await world.wake("reader")

    run(scenario())

    issued = [c for c in world.gateway.calls if c == LIFETIME]
    assert len(issued) > 2 * 24 * 3 // 2  # well over one refresh per lifetime
    assert failed_rotations >= set(range(1, 8))  # every rotation hit a call
    # The Secret never held credentials with under the SDKs' 15 minutes left,
    # and every rewrite, retries after a rotation included, began with at
    # least those 15 minutes plus 2 for kubelet to propagate it into pods.
    assert min(remaining) > timedelta(minutes=15)
    assert min(left_at_wake) >= timedelta(minutes=17)
    assert world.condition("reader", "Ready")[1] == "Ready"


# --- a name reused by a new object (delete and re-create from Git) -------------------


def test_late_deletion_of_the_old_object_keeps_the_new_one() -> None:
    """kopf serves objects by uid: the old object's DELETED may come last."""

    async def scenario() -> World:
        world = World()
        await world.apply("reader", {"roleArn": ROLE, "externalId": "pinned-id-1"})
        old = dict(world.reconciler._bodies["ns", "reader"])
        world.apis.status.pop("reader")
        new = {
            "metadata": {**old["metadata"], "uid": "uid-reader-2"},
            "spec": old["spec"],
            "status": {},
        }
        world.apis.uids["reader"] = "uid-reader-2"
        await world.reconciler.observe(new)
        world.reconciler.forget(old)
        return world

    world = run(scenario())

    assert world.reconciler._bodies["ns", "reader"]["metadata"]["uid"] == "uid-reader-2"
    assert world.condition("reader", "Ready")[:2] == ("True", "Ready")
    assert ("ns", "reader") in world.scheduler.due


def test_pass_for_an_object_replaced_meanwhile_publishes_nothing() -> None:
    """Deleted and re-created while its pass wrote the Secret: the pass is void."""

    async def scenario() -> World:
        world = World()
        new = {
            "metadata": {"namespace": "ns", "name": "reader", "uid": "uid-reader-2"},
            "spec": {"roleArn": ROLE, "externalId": "pinned-new-1"},
            "status": {},
        }

        async def replace() -> None:
            world.apis.uids["reader"] = "uid-reader-2"
            world.apis.status.pop("reader", None)
            await world.reconciler.observe(new)

        # The first object's first Secret write is when the name changes hands.
        world.writer.during_write = replace
        await world.apply("reader", {"roleArn": ROLE, "externalId": "pinned-old-1"})
        return world

    world = run(scenario())

    assert world.apis.status["reader"]["externalId"] == "pinned-new-1"
    assert (
        world.reconciler.published.last(("ns", "reader"))["externalId"]
        == "pinned-new-1"
    )


@pytest.mark.parametrize(
    ("holder", "gone"),
    [
        pytest.param("uid-reader-2", True, id="name-taken-by-a-new-object"),
        pytest.param(None, True, id="name-free"),
        pytest.param("uid-reader", False, id="same-object-refused-the-patch"),
    ],
)
def test_refused_status_patch_is_gone_only_when_the_object_is(
    holder: str | None, gone: bool
) -> None:
    apis = FakeApis()
    if holder is not None:
        apis.uids["reader"] = holder
    body = {"metadata": {"namespace": "ns", "name": "reader", "uid": "uid-reader"}}

    def refuse(*_: Any, **__: Any) -> None:
        raise ApiException(status=422, reason="Unprocessable Entity")

    apis.patch_namespaced_custom_object_status = refuse  # type: ignore[method-assign]
    reporter = Reporter(status_api=apis, events_api=apis)

    with pytest.raises(StatusWriteFailed) as failed:
        run(reporter.publish(body, Status(external_id="x"), []))

    assert failed.value.gone is gone


# --- status edited by hand -----------------------------------------------------------


def test_status_edited_by_hand_is_put_back() -> None:
    async def scenario() -> tuple[World, str]:
        world = World()
        await world.apply("reader", {"roleArn": ROLE})
        ours = world.apis.status["reader"]["externalId"]
        body = dict(world.reconciler._bodies["ns", "reader"])
        junk = {"externalId": "attacker-chosen", "conditions": []}
        edited = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": "edited"},
            "status": junk,
        }
        world.apis.status["reader"] = junk
        await world.reconciler.observe(edited)
        return world, ours

    world, ours = run(scenario())

    assert world.apis.status["reader"]["externalId"] == ours
    assert world.condition("reader", "Ready")[:2] == ("True", "Ready")


# --- the Secret fails before or after the role is assumed ---------------------------


def test_secret_name_conflict_leaves_no_stale_role_conditions() -> None:
    async def scenario() -> World:
        world = World()
        await world.apply("reader", {})
        assert world.condition("reader", "RoleValidated")[1] == "AwaitingRoleArn"
        world.writer.read_error = SecretConflict("ns", "reader", holder="not managed")
        await world.apply("reader", {"roleArn": ROLE}, generation=2)
        return world

    world = run(scenario())

    assert world.condition("reader", "SecretSynced")[:2] == (
        "False",
        "SecretNameConflict",
    )
    status, reason, message = world.condition("reader", "RoleValidated")
    assert (status, reason) == ("Unknown", "Pending")
    assert "Secret reader cannot be written" in message
    assert world.condition("reader", "ExternalIdEnforced")[:2] == ("Unknown", "Pending")
    assert world.gateway.calls == []
    # Foreign Secrets are not watched: the name is looked at again in a minute.
    assert world.scheduler.due["ns", "reader"] == START + timedelta(minutes=1)


def test_spec_change_releases_a_held_secret_failure_at_once() -> None:
    async def scenario() -> World:
        world = World()
        world.writer.write_error = SecretRejected(
            "SecretRejected", "The API server rejected Secret ns/reader as invalid."
        )
        await world.apply("reader", {"roleArn": ROLE})
        assert world.condition("reader", "SecretSynced")[1] == "SecretRejected"
        # The fix (new Secret labels) is outside the credentials' fingerprint.
        world.writer.write_error = None
        world.clock.now += timedelta(seconds=5)
        await world.apply(
            "reader", {"roleArn": ROLE, "secret": {"labels": {"a": "b"}}}, generation=2
        )
        return world

    world = run(scenario())

    assert ("ns", "reader") in world.writer.secrets
    assert world.condition("reader", "SecretSynced")[:2] == ("True", "SecretWritten")
    assert world.condition("reader", "Ready")[:2] == ("True", "Ready")
