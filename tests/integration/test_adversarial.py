"""Adversarial probes: hostile input and conditions against the real thing.

Admission probes need only the API server; the rest run the operator against
the emulated AWS. Each asserts what the design contract says should happen.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from delegated_aws.devenv.controlplane import ControlPlane
from tests.fixtures.operator import (
    GROUP,
    VERSION,
    Customer,
    OperatorRunner,
    Resources,
    wait_for,
)

ACCOUNT = "222222222222"


def _refused(das: Resources, spec: dict[str, Any], name: str = "probe") -> str:
    with pytest.raises(ApiException) as raised:
        das.create(name, spec)
    assert raised.value.status == 422, raised.value.body
    return str(raised.value.body)


# --- admission: what the schema must refuse, naming the field ---------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param(
            {"roleArn": f"arn:aws:iam::{ACCOUNT}:user/bob"},
            "spec.roleArn",
            id="user-arn",
        ),
        pytest.param(
            {"roleArn": "arn:aws:iam::123:role/x"}, "spec.roleArn", id="short-account"
        ),
        pytest.param({"roleArn": "role/x"}, "spec.roleArn", id="not-an-arn"),
        pytest.param(
            {"roleArn": f"arn:aws:s3::{ACCOUNT}:role/x"},
            "spec.roleArn",
            id="wrong-service",
        ),
        pytest.param(
            {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/" + "r" * 65},
            "spec.roleArn",
            id="role-name-65",
        ),
        pytest.param(
            {"roleSessionName": "a/b"}, "spec.roleSessionName", id="session-slash"
        ),
        pytest.param(
            {"roleSessionName": "a:b"}, "spec.roleSessionName", id="session-colon"
        ),
        pytest.param(
            {"roleSessionName": "a[0]"}, "spec.roleSessionName", id="session-bracket"
        ),
        pytest.param(
            {"roleSessionName": "a b"}, "spec.roleSessionName", id="session-space"
        ),
        pytest.param(
            {"roleSessionName": "s" * 65}, "spec.roleSessionName", id="session-65"
        ),
        pytest.param({"roleSessionName": "x"}, "spec.roleSessionName", id="session-1"),
        pytest.param(
            {"roleSessionName": "sé"}, "spec.roleSessionName", id="session-unicode"
        ),
        pytest.param({"externalId": "a"}, "spec.externalId", id="extid-1"),
        pytest.param({"externalId": "a" * 1225}, "spec.externalId", id="extid-1225"),
        pytest.param({"externalId": 'ab"cd'}, "spec.externalId", id="extid-quote"),
        pytest.param({"externalId": "abécd"}, "spec.externalId", id="extid-unicode"),
        pytest.param({"externalId": "ab cd"}, "spec.externalId", id="extid-space"),
        pytest.param(
            {"sessionDuration": "10m"}, "spec.sessionDuration", id="duration-10m"
        ),
        pytest.param(
            {"sessionDuration": "13h"}, "spec.sessionDuration", id="duration-13h"
        ),
        pytest.param(
            {"sessionDuration": "12h1s"}, "spec.sessionDuration", id="duration-12h1s"
        ),
        pytest.param(
            {"sessionDuration": "1d"}, "spec.sessionDuration", id="duration-1d"
        ),
        pytest.param(
            {"sessionDuration": ""}, "spec.sessionDuration", id="duration-empty"
        ),
        pytest.param(
            {"sessionDuration": "-1h"}, "spec.sessionDuration", id="duration-negative"
        ),
        pytest.param({"region": "EU-WEST-1"}, "spec.region", id="region-upper"),
        pytest.param({"region": "eu-west"}, "spec.region", id="region-no-number"),
        pytest.param(
            {"resources": {"s3Buckets": ["My_Bucket"]}},
            "spec.resources.s3Buckets[0]",
            id="bucket-upper",
        ),
        pytest.param(
            {"resources": {"s3Buckets": ["s3://"]}},
            "spec.resources.s3Buckets[0]",
            id="bucket-scheme-only",
        ),
        pytest.param(
            {"resources": {"s3Buckets": ["ok-bucket", "x"]}},
            "spec.resources.s3Buckets[1]",
            id="bucket-1-char",
        ),
        pytest.param(
            {"resources": {"s3Buckets": [f"b{i:03d}" for i in range(101)]}},
            "spec.resources.s3Buckets",
            id="buckets-101",
        ),
        pytest.param(
            {"resources": {"kmsKeyArns": ["alias/foo"]}},
            "spec.resources.kmsKeyArns[0]",
            id="kms-alias",
        ),
        pytest.param(
            {"resources": {"ecrRepositories": ["Repo"]}},
            "spec.resources.ecrRepositories[0]",
            id="ecr-upper",
        ),
        pytest.param(
            {"secret": {"name": "MySecret"}}, "spec.secret.name", id="secret-upper"
        ),
        pytest.param(
            {"secret": {"name": "s" * 254}}, "spec.secret.name", id="secret-254"
        ),
        pytest.param(
            {"secret": {"name": "a_b"}}, "spec.secret.name", id="secret-underscore"
        ),
        pytest.param(
            {"secret": {"mountPath": "relative/path"}},
            "spec.secret.mountPath",
            id="mount-relative",
        ),
        pytest.param(
            {"secret": {"mountPath": '/with"quote'}},
            "spec.secret.mountPath",
            id="mount-dquote",
        ),
        pytest.param(
            {"secret": {"mountPath": "/with'quote"}},
            "spec.secret.mountPath",
            id="mount-squote",
        ),
        pytest.param(
            {"secret": {"mountPath": "/with space"}},
            "spec.secret.mountPath",
            id="mount-space",
        ),
        pytest.param(
            {"secret": {"mountPath": "/a\nb"}},
            "spec.secret.mountPath",
            id="mount-newline",
        ),
        pytest.param(
            {"secret": {"deletionPolicy": "Orphan"}},
            "spec.secret.deletionPolicy",
            id="policy-unknown",
        ),
        pytest.param(
            {"refresh": {"before": "0s"}}, "spec.refresh.before", id="before-zero"
        ),
        pytest.param(
            {"refresh": {"before": ""}}, "spec.refresh.before", id="before-empty"
        ),
        pytest.param(
            {"accessChecks": {"enabled": "yes"}},
            "spec.accessChecks.enabled",
            id="checks-string",
        ),
    ],
)
def test_admission_refuses_with_the_field_named(
    das: Resources, spec: dict[str, Any], field: str
) -> None:
    body = _refused(das, spec)
    assert field in body


def test_admission_refuses_absurd_duration_as_422_not_500(das: Resources) -> None:
    """A duration that overflows CEL's duration type must still be a clean 422."""
    body = _refused(das, {"sessionDuration": "99999999999h"})
    assert "spec.sessionDuration" in body


def test_unknown_fields_are_pruned(das: Resources) -> None:
    das.create("pruned", {"roleArnn": "typo", "secret": {"nmae": "x"}})
    stored = das.get("pruned")["spec"]
    assert "roleArnn" not in stored
    assert "nmae" not in stored.get("secret", {})
    # Defaults were still applied.
    assert stored["sessionDuration"] == "1h"


def test_unknown_fields_refused_with_strict_validation(
    control_plane: ControlPlane, das: Resources, tmp_path: Path
) -> None:
    """kubectl's default (strict) validation names the typo instead of dropping it."""
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DelegatedAWSSecret",
                "metadata": {"name": "typo", "namespace": das.namespace},
                "spec": {"roleArnn": "typo"},
            }
        )
    )
    result = control_plane.kubectl("apply", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert "roleArnn" in result.stderr


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(
            {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/team/a/reader"}, id="role-path"
        ),
        pytest.param(
            {"roleArn": f"arn:aws-cn:iam::{ACCOUNT}:role/reader"}, id="aws-cn"
        ),
        pytest.param(
            {"roleArn": f"arn:aws-us-gov:iam::{ACCOUNT}:role/reader"}, id="aws-us-gov"
        ),
        pytest.param(
            {"resources": {"s3Buckets": ["s3://my-bucket/some/prefix"]}}, id="s3-url"
        ),
        pytest.param({"roleSessionName": "s" * 64}, id="session-64"),
        pytest.param({"externalId": "ab"}, id="extid-2"),
        pytest.param({"externalId": "a" * 1224}, id="extid-1224"),
        pytest.param({"externalId": "x+=,.@:/-_Z9"}, id="extid-all-chars"),
        pytest.param({"sessionDuration": "15m"}, id="duration-15m"),
        pytest.param({"sessionDuration": "12h"}, id="duration-12h"),
        pytest.param({"sessionDuration": "1h30m"}, id="duration-1h30m"),
        pytest.param({"sessionDuration": "900s"}, id="duration-900s"),
        pytest.param({"region": "us-gov-west-1"}, id="region-gov"),
        pytest.param(
            {"resources": {"s3Buckets": [f"b{i:03d}" for i in range(100)]}},
            id="buckets-100",
        ),
        pytest.param({"secret": {"name": "s" * 253}}, id="secret-253"),
    ],
)
def test_admission_accepts_odd_but_valid(das: Resources, spec: dict[str, Any]) -> None:
    das.create("probe", spec)


# --- end to end ---------------------------------------------------------------------


def _secret_values(das: Resources, name: str) -> list[str]:
    found = das.secret(name)
    assert found is not None
    data = found.get("data") or {}
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    return [base64.b64decode(data[k]).decode() for k in keys]


def _assert_no_leak(
    das: Resources, name: str, logs: list[Path], values: list[str]
) -> None:
    text = "\n".join(p.read_text(errors="replace") for p in logs if p.exists())
    published = json.dumps(das.status(name)) + json.dumps(das.events(name))
    for value in values:
        assert value not in text
        assert value not in published
        # Not even a recognisable piece of it.
        assert value[:16] not in text


def _ready(
    das: Resources,
    customer: Customer,
    name: str,
    spec: dict[str, Any] | None = None,
    **role: Any,
) -> str:
    das.create(name, dict(spec or {}))
    status = das.wait_status(name, "instructions")
    role_arn = customer.create_role_from_status(status, **role)
    das.patch_spec(name, {"roleArn": role_arn})
    das.wait_condition(name, "Ready", status="True")
    return role_arn


def _owner_ref(secret: dict[str, Any]) -> dict[str, Any] | None:
    refs = secret["metadata"].get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def test_role_with_path_and_s3_url_work_end_to_end_without_leaking(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    operator = run_operator()
    role_arn = _ready(
        das,
        customer,
        "pathy",
        {"resources": {"s3Buckets": ["s3://my-bucket/some/prefix"]}},
        path="/team/a/",
    )
    assert ":role/team/a/" in role_arn
    status = das.status("pathy")
    policy = status["instructions"]["permissionsPolicy"]
    assert "s3://" not in policy
    assert "arn:aws:s3:::my-bucket" in policy
    assert "arn:aws:s3:::my-bucket/*" in policy
    assert status["credentials"]["roleArn"] == role_arn
    secret = das.secret("pathy")
    assert secret is not None
    assert secret["metadata"]["annotations"]["delegatedaws.io/role-arn"] == role_arn
    _assert_no_leak(das, "pathy", [operator.log_path], _secret_values(das, "pathy"))


def test_session_name_of_64_chars_is_used_verbatim(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    session = "S" * 30 + "+=,.@-_" + "9" * 27
    assert len(session) == 64
    _ready(das, customer, "long-session", {"roleSessionName": session})
    assumed = das.status("long-session")["credentials"]["assumedRoleArn"]
    assert assumed.endswith("/" + session)


def test_253_char_resource_name_gets_a_sanitised_session_and_a_secret(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    operator = run_operator()
    name = ("a" * 60 + ".") * 4 + "b" * 8
    assert len(name) == 252
    name = name + "c"
    _ready(das, customer, name)
    status = das.status(name)
    session = status["credentials"]["assumedRoleArn"].rsplit("/", 1)[1]
    assert 2 <= len(session) <= 64
    secret = das.secret(name)
    assert secret is not None
    ref = _owner_ref(secret)
    assert ref is not None and ref["name"] == name
    # Label values stay within 63 characters.
    for value in secret["metadata"]["labels"].values():
        assert len(value) <= 63
    _assert_no_leak(das, name, [operator.log_path], _secret_values(das, name))


def test_cross_partition_role_arn_fails_with_a_clear_condition(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """The operator's identity is in ``aws``; an ``aws-cn`` role cannot be assumed."""
    run_operator()
    das.create("cn", {"roleArn": f"arn:aws-cn:iam::{ACCOUNT}:role/reader"})
    found = wait_for(
        lambda: (
            (
                (c := das.condition("cn", "RoleValidated"))
                and c["status"] == "False"
                and c
            )
            or None
        ),
        timeout=30,
        what="RoleValidated=False",
    )
    assert found["reason"] == "PartitionMismatch"
    assert "cannot cross partitions" in found["message"]
    ready = das.condition("cn", "Ready")
    assert ready is not None and ready["status"] == "False"
    assert das.secret("cn") is None


def test_rapid_role_arn_flips_end_on_the_last_role(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    first = _ready(das, customer, "flip")
    status = das.status("flip")
    second = customer.create_role_from_status(status)
    das.patch_spec("flip", {"roleArn": second})
    das.patch_spec("flip", {"roleArn": first})
    das.patch_spec("flip", {"roleArn": second})
    das.patch_spec("flip", {"roleArn": first})

    def settled() -> dict[str, Any] | None:
        s = das.status("flip")
        ready = [c for c in s.get("conditions", []) if c["type"] == "Ready"]
        gen = das.get("flip")["metadata"]["generation"]
        if (
            ready
            and ready[0]["status"] == "True"
            and s.get("observedGeneration") == gen
            and s.get("credentials", {}).get("roleArn") == first
        ):
            return s
        return None

    wait_for(settled, timeout=40, what="settled on the first role")
    time.sleep(3)
    assert settled() is not None
    secret = das.secret("flip")
    assert secret is not None
    assert secret["metadata"]["annotations"]["delegatedaws.io/role-arn"] == first


def test_delete_mid_validation_leaves_nothing_behind(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    operator = run_operator()
    das.create("gone")
    status = das.wait_status("gone", "instructions")
    role_arn = customer.create_role_from_status(status)
    das.patch_spec("gone", {"roleArn": role_arn})
    time.sleep(0.05)
    das.delete("gone")
    # Whatever got written in the race, the garbage collector removes it.
    time.sleep(5)
    try:
        wait_for(
            lambda: True if das.secret("gone") is None else None,
            timeout=40,
            what="no Secret",
        )
    except AssertionError:
        meta = (das.secret("gone") or {}).get("metadata", {})
        print("STALE", meta.get("ownerReferences"), meta.get("creationTimestamp"))
        print(operator.log_tail(40))
        raise
    assert operator.alive
    # And a new resource of the same name works from scratch.
    _ready(das, customer, "gone")


def test_secret_deleted_while_operator_stopped_is_restored_on_start(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    operator = run_operator()
    _ready(das, customer, "restore")
    external_id = das.status("restore")["externalId"]
    operator.stop()
    das.core.delete_namespaced_secret("restore", das.namespace)
    wait_for(lambda: True if das.secret("restore") is None else None, what="gone")
    operator.start()
    wait_for(lambda: das.secret("restore"), timeout=60, what="Secret restored")
    das.wait_condition("restore", "Ready", status="True")
    assert das.status("restore")["externalId"] == external_id


def test_two_resources_pinning_one_external_id(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    das.create("first", {"externalId": "shared-id-1"})
    das.wait_status("first", "instructions")
    time.sleep(1.1)  # creation timestamps have one-second resolution
    das.create("second", {"externalId": "shared-id-1"})
    found = das.wait_condition(
        "second", "Ready", status="False", reason="ExternalIdConflict"
    )
    assert "first" in found["message"]
    assert das.status("first")["externalId"] == "shared-id-1"
    assert das.status("second").get("externalId") != "shared-id-1"


def test_secret_name_of_another_resources_secret_is_a_conflict(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    _ready(das, customer, "owner")
    before = das.secret("owner")
    das.create("thief", {"secret": {"name": "owner"}})
    status = das.wait_status("thief", "instructions")
    role_arn = customer.create_role_from_status(status)
    das.patch_spec("thief", {"roleArn": role_arn})
    found = das.wait_condition(
        "thief", "SecretSynced", status="False", reason="SecretNameConflict"
    )
    assert "owner" in found["message"]
    after = das.secret("owner")
    assert after is not None and before is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_secret_name_of_a_retained_secret_of_another_resource_is_a_conflict(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    _ready(das, customer, "keeper", {"secret": {"deletionPolicy": "Retain"}})
    before = das.secret("keeper")
    assert before is not None
    das.create("thief", {"secret": {"name": "keeper"}})
    status = das.wait_status("thief", "instructions")
    das.patch_spec("thief", {"roleArn": customer.create_role_from_status(status)})
    das.wait_condition(
        "thief", "SecretSynced", status="False", reason="SecretNameConflict"
    )
    after = das.secret("keeper")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def _forge(
    das: Resources,
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels=labels, annotations=annotations),
        string_data={"precious": "do-not-touch"},
    )
    das.core.create_namespaced_secret(das.namespace, body)
    found = das.secret(name)
    assert found is not None
    return found


def test_secret_with_managed_label_but_no_owner_is_not_adopted(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    run_operator()
    before = _forge(
        das, "forged", {"app.kubernetes.io/managed-by": "delegated-aws-operator"}
    )
    das.create("forged")
    status = das.wait_status("forged", "instructions")
    das.patch_spec("forged", {"roleArn": customer.create_role_from_status(status)})
    das.wait_condition(
        "forged", "SecretSynced", status="False", reason="SecretNameConflict"
    )
    after = das.secret("forged")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_namespace_terminating_while_ready(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    """The namespace controller empties a terminating namespace; the operator
    must neither crash nor loop hot when it cannot recreate the Secret there,
    and must not keep the namespace from going."""
    operator = run_operator()
    _ready(das, customer, "doomed")
    values = _secret_values(das, "doomed")
    das.core.delete_namespace(das.namespace)
    # What the namespace controller does too: delete the contents.
    try:
        das.core.delete_namespaced_secret("doomed", das.namespace)
    except ApiException as error:
        assert error.status == 404  # The namespace controller was first.
    time.sleep(5)
    assert das.secret("doomed") is None  # creation is forbidden while terminating
    writes_before = operator.log_path.read_text().count("doomed")
    time.sleep(5)
    writes_after = operator.log_path.read_text().count("doomed")
    assert writes_after - writes_before < 5, operator.log_tail(30)
    wait_for(
        lambda: True if _namespace_gone(das) else None,
        timeout=60,
        what="the namespace, resource and all, to be deleted",
    )
    assert operator.alive
    log = operator.log_path.read_text()
    assert "Traceback" not in log
    for value in values:
        assert value not in log


def _namespace_gone(das: Resources) -> bool:
    try:
        das.core.read_namespace(das.namespace)
    except ApiException as error:
        return error.status == 404
    return False
