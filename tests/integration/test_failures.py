"""Failure semantics on the real control plane and the emulated AWS.

Each test's docstring says which AWS behaviour moto emulates, which the
emulator layer supplies (trust policies across accounts, MaxSessionDuration,
the 1 h role-chaining limit) and which is injected as a fault with AWS's own
code and message (AccessDenied, ValidationError, RegionDisabledException,
InvalidClientTokenId). Together with the emulator's own unit tests
(``tests/unit/devenv``) this is how the suite proves error paths against an
emulator that would otherwise accept any role (F19).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from kubernetes.client.exceptions import ApiException

from delegated_aws.models import REFRESH_ANNOTATION
from tests.fixtures.operator import Customer, OperatorRunner, Resources, wait_for


def _assume_calls(customer: Customer, role_arn: str) -> list[dict[str, object]]:
    calls = customer.aws.client.calls(action="AssumeRole")
    return [c for c in calls if c.get("role_arn") == role_arn]


def _ready_role(das: Resources, customer: Customer, name: str, **spec: object) -> str:
    das.create(name, dict(spec))
    status = das.wait_status(name, "instructions")
    role_arn = customer.create_role_from_status(status)
    das.patch_spec(name, {"roleArn": role_arn})
    das.wait_condition(name, "Ready", status="True")
    return role_arn


def _request_refresh(das: Resources, name: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    das.custom.patch_namespaced_custom_object(
        "delegatedaws.io",
        "v1alpha1",
        das.namespace,
        "delegatedawssecrets",
        name,
        {"metadata": {"annotations": {REFRESH_ANNOTATION: now}}},
    )


# --- F01, F02: durations ---------------------------------------------------------


def test_f01_duration_above_role_maximum_falls_back_and_says_so(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """Emulator layer: the role's MaxSessionDuration (1 h), refused with AWS's
    ``ValidationError`` "The requested DurationSeconds exceeds the
    MaxSessionDuration set for this role."; moto: the role and credentials."""
    run_operator()
    das.create("reader", {"sessionDuration": "12h"})
    status = das.wait_status("reader", "instructions")
    found = status["instructions"]
    role_arn = customer.create_role(found["trustPolicy"], max_session=3600)

    das.patch_spec("reader", {"roleArn": role_arn})

    validated = das.wait_condition(
        "reader",
        "RoleValidated",
        status="True",
        reason="SessionDurationExceedsRoleMaximum",
    )
    assert validated["message"].startswith(
        "Requested 12h exceeds the role's maximum session duration; granted 1h."
    )
    das.wait_condition("reader", "Ready", status="True")
    assert das.status("reader")["credentials"]["sessionDuration"] == "1h"
    assert {
        "type": "Warning",
        "reason": "SessionDurationExceedsRoleMaximum",
        "message": validated["message"],
    } in das.events("reader")
    # STS really refused the 12 h call; the 1 h one and the probe followed.
    outcomes = [c["outcome"] for c in _assume_calls(customer, role_arn)]
    assert outcomes[0] == "ValidationError"
    assert sorted(outcomes[1:]) == ["AccessDenied", "ok"]


def test_f02_role_session_identity_is_capped_at_one_hour(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """Emulator layer: the operator runs as a role session (as IRSA gives) and
    AWS's 1 h role-chaining limit; moto: the pod role and its session."""
    run_operator(identity="role-session")
    role_arn = _ready_role(das, customer, "reader", sessionDuration="12h")

    found = das.condition("reader", "RoleValidated")
    assert found is not None
    assert (found["status"], found["reason"]) == ("True", "RoleChainingLimit")
    assert "AWS caps sessions started from one at 1h; granted 1h" in found["message"]
    assert das.status("reader")["credentials"]["sessionDuration"] == "1h"
    assert ("Warning", "RoleChainingLimit") in {
        (e["type"], e["reason"]) for e in das.events("reader")
    }
    # Detected up front: no AssumeRole was refused for its duration.
    outcomes = {c["outcome"] for c in _assume_calls(customer, role_arn)}
    assert "ValidationError" not in outcomes


# --- F03, F15: admission ---------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        pytest.param(
            {"roleSessionName": "team/a:b[0]"},
            "roleSessionName must be 2-64 characters of letters, digits and "
            "+ = , . @ _ - (no '/', ':' or spaces).",
            id="F03-session-name",
        ),
        pytest.param(
            {"roleArn": "arn:aws:iam::111122223333:user/bob"},
            "spec.roleArn",
            id="F15-user-arn",
        ),
        pytest.param(
            {"roleArn": "arn:aws:iam::1111:role/reader"},
            "spec.roleArn",
            id="F15-malformed-arn",
        ),
        pytest.param(
            {"resources": {"s3Buckets": ["acme", "s3://acme..raw/data"]}},
            "a bucket name has no period next to a period or a hyphen.",
            id="bucket-adjacent-periods",
        ),
        pytest.param(
            {"resources": {"s3Buckets": ["192.168.1.1"]}},
            "a bucket name does not have the form of an IP address.",
            id="bucket-ip-address",
        ),
        pytest.param(
            {"sessionDuration": "abc"},
            "spec.sessionDuration: Invalid value",
            id="duration-not-a-duration",
        ),
        pytest.param(
            {"sessionDuration": "9999999999999h"},
            "spec.sessionDuration: Invalid value",
            id="duration-absurd",
        ),
    ],
)
def test_bad_spec_is_rejected_at_admission(
    das: Resources, spec: dict[str, object], says: str
) -> None:
    """No AWS involved: the CRD's pattern and CEL rules refuse the object."""
    with pytest.raises(ApiException) as raised:
        das.create("reader", spec)

    assert raised.value.status == 422
    assert says in str(raised.value.body)
    # Every error is ours: none is CEL failing on a value it cannot convert.
    assert "type conversion error" not in str(raised.value.body)


def test_f15_role_arn_refused_by_sts_is_permanent_without_a_retry_loop(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """Injected: AssumeRole answers ``ValidationError`` "Request ARN is
    invalid", STS's answer to a RoleArn it cannot parse (as for an ARN that got
    past admission and the operator's own checks); moto: the rest."""
    run_operator()
    das.create("reader")
    das.wait_status("reader", "instructions")
    role_arn = "arn:aws:iam::111122223333:role/gone-wrong"
    customer.aws.client.add_fault(
        "AssumeRole",
        status=400,
        code="ValidationError",
        message="Request ARN is invalid",
    )

    das.patch_spec("reader", {"roleArn": role_arn})

    found = das.wait_condition(
        "reader", "RoleValidated", status="False", reason="InvalidSpec"
    )
    assert found["message"] == (
        "AWS rejected the request as invalid (ValidationError): check spec.roleArn."
    )
    # A temporary error would be retried within 2 s (the first backoff).
    time.sleep(4)
    assert len(_assume_calls(customer, role_arn)) == 1


# --- F04, F05: External IDs --------------------------------------------------------


def test_f04_operator_may_allow_an_unenforced_external_id_loudly(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """Emulator layer: the trust policy without an sts:ExternalId condition
    accepts the probe's wrong id; moto: the role and credentials."""
    run_operator(require_external_id_enforcement="false")
    das.create("reader")
    das.wait_status("reader", "externalId")
    role_arn = customer.create_role(customer.trust_policy(None))

    das.patch_spec("reader", {"roleArn": role_arn})

    das.wait_condition("reader", "Ready", status="True")
    found = das.condition("reader", "ExternalIdEnforced")
    assert found is not None
    assert (found["status"], found["reason"]) == ("False", "ExternalIdNotEnforced")
    assert das.secret("reader") is not None
    assert {
        "type": "Warning",
        "reason": "ExternalIdNotEnforced",
        "message": found["message"],
    } in das.events("reader")


def test_f05_recreated_resource_with_pinned_external_id_keeps_working(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """Emulator layer: the customer's trust policy holds the External ID and
    is evaluated across accounts; moto: the role and credentials."""
    run_operator()
    pinned = "acme-reader-2024"
    role_arn = customer.create_role(customer.trust_policy(pinned))
    das.create("reader", {"roleArn": role_arn, "externalId": pinned})
    das.wait_condition("reader", "Ready", status="True")

    das.delete("reader")
    wait_for(
        lambda: True if das.secret("reader") is None else None,
        what="the Secret to go with its owner",
    )
    das.create("reader", {"roleArn": role_arn, "externalId": pinned})

    das.wait_condition("reader", "Ready", status="True")
    assert das.status("reader")["externalId"] == pinned


# --- F06: IAM propagation ----------------------------------------------------------


def test_f06_denial_right_after_the_change_waits_then_succeeds(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """Injected: AssumeRole answers AWS's ``AccessDenied`` twice, as while a new
    trust policy propagates; the emulator layer then allows it."""
    run_operator(iam_propagation_grace="20s")
    das.create("reader")
    role_arn = customer.create_role_from_status(
        das.wait_status("reader", "instructions")
    )
    customer.aws.client.add_fault(
        "AssumeRole", preset="AccessDenied", role_arn=role_arn, count=2
    )

    das.patch_spec("reader", {"roleArn": role_arn})

    das.wait_condition(
        "reader", "RoleValidated", status="False", reason="WaitingForIamPropagation"
    )
    das.wait_condition("reader", "Ready", status="True", timeout=30)
    reasons = [e["reason"] for e in das.events("reader")]
    assert "AssumeRoleDenied" not in reasons
    assert ("Normal", "WaitingForIamPropagation") in {
        (e["type"], e["reason"]) for e in das.events("reader")
    }


def test_f06_denial_past_the_grace_is_assume_role_denied(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """Emulator layer: a trust policy requiring another External ID is denied
    with AWS's ``AccessDenied``, every time."""
    run_operator(iam_propagation_grace="3s")
    das.create("reader")
    status = das.wait_status("reader", "externalId")
    role_arn = customer.create_role(customer.trust_policy("someone-elses-id"))

    das.patch_spec("reader", {"roleArn": role_arn})

    das.wait_condition(
        "reader", "RoleValidated", status="False", reason="WaitingForIamPropagation"
    )
    found = das.wait_condition(
        "reader", "RoleValidated", status="False", reason="AssumeRoleDenied"
    )
    assert f"requires sts:ExternalId {status['externalId']}" in found["message"]
    principal = (
        status.get("trustedPrincipal") or das.status("reader")["trustedPrincipal"]
    )
    assert f"allows the principal {principal['trustPrincipal']}" in found["message"]
    assert das.condition("reader", "Ready")["status"] == "False"  # type: ignore[index]


# --- F07: regions ------------------------------------------------------------------


def test_f07_regional_endpoint_and_region_disabled(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """Emulated: the call log records the SigV4 region of each call.
    Injected: AWS's ``RegionDisabledException`` for the second role."""
    run_operator()
    role_arn = _ready_role(das, customer, "hk", region="ap-east-1")
    regions = {c["region"] for c in _assume_calls(customer, role_arn)}
    assert regions == {"ap-east-1"}

    das.create("disabled", {"region": "ap-east-1"})
    other = customer.create_role_from_status(
        das.wait_status("disabled", "instructions")
    )
    customer.aws.client.add_fault(
        "AssumeRole", preset="RegionDisabledException", role_arn=other
    )
    das.patch_spec("disabled", {"roleArn": other})

    found = das.wait_condition(
        "disabled", "RoleValidated", status="False", reason="RegionDisabled"
    )
    assert found["message"] == (
        "STS is not activated in ap-east-1 for the role's account: activate it in "
        "the IAM console (Account settings, Security Token Service endpoints) or "
        "choose another spec.region."
    )


# --- F11: the operator's own identity ------------------------------------------------


def test_f11_operator_credentials_rejected_blames_the_operator_once(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """Injected: every AWS call answers AWS's ``InvalidClientTokenId`` after the
    operator started; moto: everything before."""
    operator = run_operator()
    names = ("one", "two")
    for name in names:
        _ready_role(das, customer, name)
    customer.aws.client.add_fault("*", preset="InvalidClientTokenId")
    # A request stamped in the second of the last refresh counts as served.
    time.sleep(1.1)

    for name in names:
        _request_refresh(das, name)

    for name in names:
        found = das.wait_condition(
            name, "Ready", status="True", reason="OperatorCredentialsInvalid"
        )
        assert (
            "operator's own credentials as invalid, not your role" in (found["message"])
        )
        assert das.secret(name) is not None
    time.sleep(2)
    log = operator.log_path.read_text()
    assert log.count("The operator's own AWS identity is failing") == 1
