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
    PLURAL,
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
        pytest.param({"roleArn": f"arn:aws:iam::{ACCOUNT}:user/bob"}, "spec.roleArn", id="user-arn"),
        pytest.param({"roleArn": "arn:aws:iam::123:role/x"}, "spec.roleArn", id="short-account"),
        pytest.param({"roleArn": "role/x"}, "spec.roleArn", id="not-an-arn"),
        pytest.param({"roleArn": f"arn:aws:s3::{ACCOUNT}:role/x"}, "spec.roleArn", id="wrong-service"),
        pytest.param({"roleArn": f"arn:aws:iam::{ACCOUNT}:role/" + "r" * 65}, "spec.roleArn", id="role-name-65"),
        pytest.param({"roleSessionName": "a/b"}, "spec.roleSessionName", id="session-slash"),
        pytest.param({"roleSessionName": "a:b"}, "spec.roleSessionName", id="session-colon"),
        pytest.param({"roleSessionName": "a[0]"}, "spec.roleSessionName", id="session-bracket"),
        pytest.param({"roleSessionName": "a b"}, "spec.roleSessionName", id="session-space"),
        pytest.param({"roleSessionName": "s" * 65}, "spec.roleSessionName", id="session-65"),
        pytest.param({"roleSessionName": "x"}, "spec.roleSessionName", id="session-1"),
        pytest.param({"roleSessionName": "sé"}, "spec.roleSessionName", id="session-unicode"),
        pytest.param({"externalId": "a"}, "spec.externalId", id="extid-1"),
        pytest.param({"externalId": "a" * 1225}, "spec.externalId", id="extid-1225"),
        pytest.param({"externalId": 'ab"cd'}, "spec.externalId", id="extid-quote"),
        pytest.param({"externalId": "abécd"}, "spec.externalId", id="extid-unicode"),
        pytest.param({"externalId": "ab cd"}, "spec.externalId", id="extid-space"),
        pytest.param({"sessionDuration": "10m"}, "spec.sessionDuration", id="duration-10m"),
        pytest.param({"sessionDuration": "13h"}, "spec.sessionDuration", id="duration-13h"),
        pytest.param({"sessionDuration": "12h1s"}, "spec.sessionDuration", id="duration-12h1s"),
        pytest.param({"sessionDuration": "1d"}, "spec.sessionDuration", id="duration-1d"),
        pytest.param({"sessionDuration": ""}, "spec.sessionDuration", id="duration-empty"),
        pytest.param({"sessionDuration": "-1h"}, "spec.sessionDuration", id="duration-negative"),
        pytest.param({"region": "EU-WEST-1"}, "spec.region", id="region-upper"),
        pytest.param({"region": "eu-west"}, "spec.region", id="region-no-number"),
        pytest.param({"resources": {"s3Buckets": ["My_Bucket"]}}, "spec.resources.s3Buckets[0]", id="bucket-upper"),
        pytest.param({"resources": {"s3Buckets": ["s3://"]}}, "spec.resources.s3Buckets[0]", id="bucket-scheme-only"),
        pytest.param({"resources": {"s3Buckets": ["ok-bucket", "x"]}}, "spec.resources.s3Buckets[1]", id="bucket-1-char"),
        pytest.param({"resources": {"s3Buckets": [f"b{i:03d}" for i in range(101)]}}, "spec.resources.s3Buckets", id="buckets-101"),
        pytest.param({"resources": {"kmsKeyArns": ["alias/foo"]}}, "spec.resources.kmsKeyArns[0]", id="kms-alias"),
        pytest.param({"resources": {"ecrRepositories": ["Repo"]}}, "spec.resources.ecrRepositories[0]", id="ecr-upper"),
        pytest.param({"secret": {"name": "MySecret"}}, "spec.secret.name", id="secret-upper"),
        pytest.param({"secret": {"name": "s" * 254}}, "spec.secret.name", id="secret-254"),
        pytest.param({"secret": {"name": "a_b"}}, "spec.secret.name", id="secret-underscore"),
        pytest.param({"secret": {"mountPath": "relative/path"}}, "spec.secret.mountPath", id="mount-relative"),
        pytest.param({"secret": {"mountPath": '/with"quote'}}, "spec.secret.mountPath", id="mount-dquote"),
        pytest.param({"secret": {"mountPath": "/with'quote"}}, "spec.secret.mountPath", id="mount-squote"),
        pytest.param({"secret": {"mountPath": "/with space"}}, "spec.secret.mountPath", id="mount-space"),
        pytest.param({"secret": {"mountPath": "/a\nb"}}, "spec.secret.mountPath", id="mount-newline"),
        pytest.param({"secret": {"deletionPolicy": "Orphan"}}, "spec.secret.deletionPolicy", id="policy-unknown"),
        pytest.param({"refresh": {"before": "0s"}}, "spec.refresh.before", id="before-zero"),
        pytest.param({"refresh": {"before": ""}}, "spec.refresh.before", id="before-empty"),
        pytest.param({"accessChecks": {"enabled": "yes"}}, "spec.accessChecks.enabled", id="checks-string"),
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
        pytest.param({"roleArn": f"arn:aws:iam::{ACCOUNT}:role/team/a/reader"}, id="role-path"),
        pytest.param({"roleArn": f"arn:aws-cn:iam::{ACCOUNT}:role/reader"}, id="aws-cn"),
        pytest.param({"roleArn": f"arn:aws-us-gov:iam::{ACCOUNT}:role/reader"}, id="aws-us-gov"),
        pytest.param({"resources": {"s3Buckets": ["s3://my-bucket/some/prefix"]}}, id="s3-url"),
        pytest.param({"roleSessionName": "s" * 64}, id="session-64"),
        pytest.param({"externalId": "ab"}, id="extid-2"),
        pytest.param({"externalId": "a" * 1224}, id="extid-1224"),
        pytest.param({"externalId": "x+=,.@:/-_Z9"}, id="extid-all-chars"),
        pytest.param({"sessionDuration": "15m"}, id="duration-15m"),
        pytest.param({"sessionDuration": "12h"}, id="duration-12h"),
        pytest.param({"sessionDuration": "1h30m"}, id="duration-1h30m"),
        pytest.param({"sessionDuration": "900s"}, id="duration-900s"),
        pytest.param({"region": "us-gov-west-1"}, id="region-gov"),
        pytest.param({"resources": {"s3Buckets": [f"b{i:03d}" for i in range(100)]}}, id="buckets-100"),
        pytest.param({"secret": {"name": "s" * 253}}, id="secret-253"),
    ],
)
def test_admission_accepts_odd_but_valid(das: Resources, spec: dict[str, Any]) -> None:
    das.create("probe", spec)
