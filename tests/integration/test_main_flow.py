"""The product's main job on the real control plane and the emulated AWS.

Emulated by moto: IAM roles and policies, credentials, GetCallerIdentity.
Supplied by the emulator layer: the trust-policy evaluation across accounts
(account-root principal, External ID) and the short session lifetimes.
"""

from __future__ import annotations

import base64
import configparser
import json
import time

from tests.fixtures.operator import Customer, OperatorRunner, Resources, wait_for

ENV_KEYS = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_CREDENTIAL_EXPIRATION",
}


def _decoded(secret: dict[str, object]) -> dict[str, str]:
    data = secret["data"]
    assert isinstance(data, dict)
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _assume_calls(customer: Customer, role_arn: str) -> list[dict[str, object]]:
    calls = customer.aws.client.calls(action="AssumeRole")
    return [c for c in calls if c.get("role_arn") == role_arn]


def test_create_fills_status_with_instructions(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    das.create("reader", {"resources": {"s3Buckets": ["s3://acme-data/raw"]}})

    status = das.wait_status("reader", "instructions")

    trust = json.loads(status["instructions"]["trustPolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert condition["sts:ExternalId"] == status["externalId"]
    assert status["trustedPrincipal"]["accountId"] == customer.aws.operator.account_id
    permissions = json.loads(status["instructions"]["permissionsPolicy"])
    resources = {r for s in permissions["Statement"] for r in s["Resource"]}
    assert resources == {"arn:aws:s3:::acme-data", "arn:aws:s3:::acme-data/*"}
    assert status["instructions"]["maxSessionDuration"] == 43200
    assert status["instructions"]["steps"] and status["instructions"]["awsCli"]
    das.wait_condition("reader", "Ready", status="False", reason="AwaitingRoleArn")


def test_role_arn_gives_a_secret_with_every_key(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    das.create("reader", {"region": "eu-west-1"})
    role_arn = customer.create_role_from_status(
        das.wait_status("reader", "instructions")
    )

    das.patch_spec("reader", {"roleArn": role_arn})

    ready = das.wait_condition("reader", "Ready", status="True")
    for kind in ("RoleValidated", "ExternalIdEnforced", "SecretSynced"):
        assert das.condition("reader", kind)["status"] == "True"  # type: ignore[index]
    secret = das.secret("reader")
    assert secret is not None
    values = _decoded(secret)
    assert ENV_KEYS | {"credentials", "config", "credential-process.json"} <= set(
        values
    )
    assert values["AWS_REGION"] == "eu-west-1"
    document = json.loads(values["credential-process.json"])
    assert document["Version"] == 1
    assert document["Expiration"] == values["AWS_CREDENTIAL_EXPIRATION"]
    shared = configparser.ConfigParser()
    shared.read_string(values["credentials"])
    assert shared["default"]["aws_access_key_id"] == values["AWS_ACCESS_KEY_ID"]
    config = configparser.ConfigParser()
    config.read_string(values["config"])
    assert "credential-process.json" in config["default"]["credential_process"]
    owner = secret["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "DelegatedAWSSecret" and owner["controller"] is True
    assert "Credentials valid until" in ready["message"]
    # The right id was presented, and the probe's wrong one was refused.
    outcomes = {
        (c["external_id_given"], c["outcome"])
        for c in _assume_calls(customer, role_arn)
    }
    assert (True, "ok") in outcomes and (True, "AccessDenied") in outcomes


def test_trust_policy_with_another_external_id_is_denied(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    das.create("reader")
    das.wait_status("reader", "externalId")
    role_arn = customer.create_role(customer.trust_policy("someone-elses-id"))

    das.patch_spec("reader", {"roleArn": role_arn})

    found = das.wait_condition(
        "reader", "RoleValidated", status="False", reason="AssumeRoleDenied"
    )
    assert "status.externalId" in found["message"]
    assert das.condition("reader", "Ready")["status"] == "False"  # type: ignore[index]
    assert das.secret("reader") is None
    warnings = [e for e in das.events("reader") if e["reason"] == "AssumeRoleDenied"]
    assert warnings and warnings[0]["type"] == "Warning"


def test_trust_policy_without_external_id_condition_issues_nothing(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    das.create("reader")
    das.wait_status("reader", "externalId")
    role_arn = customer.create_role(customer.trust_policy(None))

    das.patch_spec("reader", {"roleArn": role_arn})

    das.wait_condition(
        "reader", "ExternalIdEnforced", status="False", reason="ExternalIdNotEnforced"
    )
    assert das.condition("reader", "Ready")["status"] == "False"  # type: ignore[index]
    assert das.secret("reader") is None


def test_short_lifetime_is_refreshed_before_expiry(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    # Injected: the emulator grants 20-second sessions (AWS grants 15 min+).
    customer.aws.client.set_session_lifetime(20)
    run_operator(min_refresh_margin="8s")
    das.create("reader")
    role_arn = customer.create_role_from_status(
        das.wait_status("reader", "instructions")
    )
    das.patch_spec("reader", {"roleArn": role_arn})
    das.wait_condition("reader", "Ready", status="True")
    first = _decoded(das.secret("reader"))  # type: ignore[arg-type]

    def rotated() -> dict[str, str] | None:
        now = das.secret("reader")
        values = _decoded(now) if now else None
        changed = values and values["AWS_ACCESS_KEY_ID"] != first["AWS_ACCESS_KEY_ID"]
        return values if changed else None

    second = wait_for(rotated, timeout=30, what="a rotated Secret")
    # New credentials landed while the old ones were still valid.
    assert second["AWS_CREDENTIAL_EXPIRATION"] > first["AWS_CREDENTIAL_EXPIRATION"]
    rotations = [c for c in _assume_calls(customer, role_arn) if c["outcome"] == "ok"]
    first_rotation = rotations[-1]["timestamp"]
    assert str(first_rotation) < first["AWS_CREDENTIAL_EXPIRATION"].replace("Z", "")


def test_restart_keeps_external_id_and_makes_no_sts_call(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    first = run_operator()
    das.create("reader")
    role_arn = customer.create_role_from_status(
        das.wait_status("reader", "instructions")
    )
    das.patch_spec("reader", {"roleArn": role_arn})
    das.wait_condition("reader", "Ready", status="True")
    before = das.get("reader")
    secret_version = das.secret("reader")["metadata"]["resourceVersion"]  # type: ignore[index]
    first.stop()
    customer.aws.client.reset_calls()

    run_operator()
    # The new instance has listed the resource and reconciled it by now; give
    # any (wrong) STS call or write time to show.
    time.sleep(5)

    after = das.get("reader")
    assert after["status"]["externalId"] == before["status"]["externalId"]
    assert _assume_calls(customer, role_arn) == []
    assert das.secret("reader")["metadata"]["resourceVersion"] == secret_version  # type: ignore[index]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
