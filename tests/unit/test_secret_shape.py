"""What the spec decides about a managed Secret, and the kubelet-style mount.

A live Secret that no longer conforms to the spec's shape (labels, user
annotations, deletion policy, region, mount path) reads as edited, so the
reconciler rewrites it at once instead of at the next refresh.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from delegated_aws.devenv.mount import project
from delegated_aws.models import Spec
from delegated_aws.secret_content import (
    MANAGED_BY_LABEL,
    Owner,
    build_secret,
    conforms,
    new_body,
    secret_shape,
)
from delegated_aws.secret_ownership import view as _view

ROLE = "arn:aws:iam::111122223333:role/reader"
OWNER = Owner(name="reader", uid="5b0c6a1e-2222-4c5d-8e9f-0a1b2c3d4e5f")
EXPIRY = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


class Creds:
    access_key_id = "ASIAEXAMPLEKEYID0001"
    secret_access_key = "secret"
    session_token = "token"
    expiration = EXPIRY
    assumed_role_arn = "arn:aws:sts::111122223333:assumed-role/reader/s"
    issued_at = EXPIRY - timedelta(hours=1)


def spec(region: str = "eu-west-1", **secret: Any) -> Spec:
    return Spec.model_validate({"roleArn": ROLE, "region": region, "secret": secret})


def live(written: Spec) -> dict[str, Any]:
    desired = build_secret(written, Creds(), owner=OWNER, region=written.region or "")
    return new_body(desired, namespace="ns")


def test_shape_of_what_was_written_conforms() -> None:
    written = spec(labels={"team": "a"}, annotations={"note": "x"})
    shape = secret_shape(written, owner=OWNER, region="eu-west-1")

    assert conforms(live(written), shape, owner=OWNER)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(spec(labels={"team": "b"}), id="label value changed"),
        pytest.param(spec(labels={"team": "a", "tier": "x"}), id="label added"),
        pytest.param(spec(annotations={"note": "x"}), id="annotation added"),
        pytest.param(spec(deletionPolicy="Retain"), id="Delete to Retain"),
        pytest.param(spec(mountPath="/etc/aws"), id="mount path moved"),
        pytest.param(spec(region="us-west-2"), id="region changed"),
    ],
)
def test_spec_change_breaks_conformity(changed: Spec) -> None:
    written = live(spec(labels={"team": "a"}))
    shape = secret_shape(changed, owner=OWNER, region=changed.region or "")

    assert not conforms(written, shape, owner=OWNER)


def _drop_managed_label(body: dict[str, Any]) -> None:
    del body["metadata"]["labels"][MANAGED_BY_LABEL]


def _drop_owner_reference(body: dict[str, Any]) -> None:
    body["metadata"]["ownerReferences"] = []


def _edit_config(body: dict[str, Any]) -> None:
    body["data"]["config"] = base64.b64encode(b"[default]\n").decode()


@pytest.mark.parametrize(
    "edit",
    [_drop_managed_label, _drop_owner_reference, _edit_config],
    ids=["managed-by label removed", "owner reference removed", "config edited"],
)
def test_hand_edit_of_metadata_reads_as_edited(
    edit: Callable[[dict[str, Any]], None],
) -> None:
    written = spec()
    body = live(written)
    shape = secret_shape(written, owner=OWNER, region="eu-west-1")
    assert not _view(body, owner=OWNER, shape=shape).edited

    edit(body)

    assert _view(body, owner=OWNER, shape=shape).edited


def test_foreign_additions_keep_it_conforming() -> None:
    written = spec()
    body = live(written)
    body["metadata"]["labels"]["argocd.argoproj.io/instance"] = "app"
    body["metadata"]["annotations"]["reloader.stakater.com/match"] = "true"

    shape = secret_shape(written, owner=OWNER, region="eu-west-1")

    assert not _view(body, owner=OWNER, shape=shape).edited


# --- the kubelet-style mount ---------------------------------------------------


def _encoded(**values: str) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


def test_project_swaps_data_in_one_step(tmp_path: Path) -> None:
    project(_encoded(a="1", b="2"), tmp_path)
    first = os.readlink(tmp_path / "..data")

    project(_encoded(a="3", c="4"), tmp_path)

    assert (tmp_path / "a").read_text() == "3"
    assert (tmp_path / "c").read_text() == "4"
    assert not (tmp_path / "b").exists() and not (tmp_path / "b").is_symlink()
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "..data") != first
    assert not (tmp_path / first).exists()
    versions = [p.name for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()]
    assert versions == [os.readlink(tmp_path / "..data")]
