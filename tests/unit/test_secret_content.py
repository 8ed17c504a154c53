"""The managed Secret's content: keys, files, metadata and the content hash."""

from __future__ import annotations

import base64
import configparser
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from delegated_aws.models import Spec
from delegated_aws.secret_content import (
    CONTENT_HASH_ANNOTATION,
    USER_KEYS_ANNOTATION,
    DesiredSecret,
    Owner,
    build_secret,
    content_hash,
    decoded_data,
    format_expiration,
    is_current,
    label_value,
    new_body,
    updated_body,
)

ROLE = "arn:aws:iam::111122223333:role/customer/reader"
OWNER = Owner(name="reader", uid="0d4c7a6e-1111-4a5b-9c1d-2e3f4a5b6c7d")
EXPIRY = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FakeCredentials:
    access_key_id: str = "ASIAEXAMPLEKEYID0001"
    secret_access_key: str = "sEcReT+value/with%percent=="
    session_token: str = "TOKEN-VALUE-ONLY-IN-DATA"
    expiration: datetime = EXPIRY
    assumed_role_arn: str = (
        "arn:aws:sts::111122223333:assumed-role/reader/delegated-aws.ns.reader"
    )
    issued_at: datetime = EXPIRY - timedelta(hours=1)


SECRET_VALUES = (
    FakeCredentials.access_key_id,
    FakeCredentials.secret_access_key,
    FakeCredentials.session_token,
)


def spec(**secret: Any) -> Spec:
    return Spec.model_validate({"roleArn": ROLE, "secret": secret})


def build(credentials: FakeCredentials | None = None, **secret: Any) -> DesiredSecret:
    return build_secret(
        spec(**secret),
        credentials or FakeCredentials(),
        owner=OWNER,
        region="eu-west-1",
    )


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


# --- data ----------------------------------------------------------------------


def test_environment_keys() -> None:
    data = build().data

    assert data["AWS_ACCESS_KEY_ID"] == "ASIAEXAMPLEKEYID0001"
    assert data["AWS_SECRET_ACCESS_KEY"] == "sEcReT+value/with%percent=="
    assert data["AWS_SESSION_TOKEN"] == "TOKEN-VALUE-ONLY-IN-DATA"
    assert data["AWS_REGION"] == data["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert data["AWS_CREDENTIAL_EXPIRATION"] == "2026-12-03T17:00:00Z"


def test_every_key() -> None:
    assert sorted(build().data) == [
        "AWS_ACCESS_KEY_ID",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "config",
        "credential-process.json",
        "credentials",
    ]


def test_credentials_file_reads_back() -> None:
    profile = ini(build().data["credentials"])["default"]

    assert dict(profile) == {
        "aws_access_key_id": "ASIAEXAMPLEKEYID0001",
        "aws_secret_access_key": "sEcReT+value/with%percent==",
        "aws_session_token": "TOKEN-VALUE-ONLY-IN-DATA",
    }


def test_credential_process_document() -> None:
    document = json.loads(build().data["credential-process.json"])

    assert document == {
        "Version": 1,
        "AccessKeyId": "ASIAEXAMPLEKEYID0001",
        "SecretAccessKey": "sEcReT+value/with%percent==",
        "SessionToken": "TOKEN-VALUE-ONLY-IN-DATA",
        "Expiration": "2026-12-03T17:00:00Z",
    }


@pytest.mark.parametrize(
    ("mount_path", "command"),
    [
        (None, "cat /var/run/secrets/delegated-aws/credential-process.json"),
        ("/aws", "cat /aws/credential-process.json"),
        ("/aws/", "cat /aws/credential-process.json"),
        ("/mnt/aws.creds-1", "cat /mnt/aws.creds-1/credential-process.json"),
    ],
    ids=["default", "custom", "trailing-slash", "dots-and-dashes"],
)
def test_config_file(mount_path: str | None, command: str) -> None:
    secret = build(mountPath=mount_path) if mount_path else build()

    profile = ini(secret.data["config"])["default"]

    assert dict(profile) == {"region": "eu-west-1", "credential_process": command}


@pytest.mark.parametrize(
    "moment",
    [
        EXPIRY,
        EXPIRY.astimezone(timezone(timedelta(hours=-5))),
        EXPIRY + timedelta(microseconds=999),
    ],
    ids=["utc", "offset", "microseconds"],
)
def test_expiration_is_utc_with_z(moment: datetime) -> None:
    assert format_expiration(moment) == "2026-12-03T17:00:00Z"


def test_naive_expiration_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_expiration(datetime(2026, 12, 3, 17, 0))


def test_no_role_arn_refused() -> None:
    with pytest.raises(ValueError, match=r"spec\.roleArn"):
        build_secret(Spec(), FakeCredentials(), owner=OWNER, region="eu-west-1")


def test_secret_name_defaults_to_resource_name() -> None:
    assert build().name == "reader"
    assert build(name="aws-creds").name == "aws-creds"


# --- the files through a real SDK ----------------------------------------------


def _sdk_session(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return botocore.session.Session()


def _mount(tmp_path: Path, secret: DesiredSecret) -> None:
    # What kubelet does with a whole-Secret volume: one file per key.
    for key, value in secret.data.items():
        (tmp_path / key).write_text(value)


def test_sdk_refreshes_through_credential_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    secret = build(FakeCredentials(expiration=expiry), mountPath=str(tmp_path))
    _mount(tmp_path, secret)
    session = _sdk_session(
        monkeypatch,
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "absent"),
    )

    credentials = session.get_credentials()

    assert credentials.method == "custom-process"
    assert credentials.get_frozen_credentials()[:3] == (
        "ASIAEXAMPLEKEYID0001",
        "sEcReT+value/with%percent==",
        "TOKEN-VALUE-ONLY-IN-DATA",
    )
    assert credentials._expiry_time == expiry
    assert session.get_config_variable("region") == "eu-west-1"


def test_sdk_picks_up_a_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # Inside the SDK's 15-minute advisory window: the next use refreshes.
    old = FakeCredentials(expiration=now + timedelta(minutes=14))
    _mount(tmp_path, build(old, mountPath=str(tmp_path)))
    session = _sdk_session(monkeypatch, AWS_CONFIG_FILE=str(tmp_path / "config"))
    credentials = session.get_credentials()
    assert credentials.get_frozen_credentials().token == old.session_token
    new = FakeCredentials(session_token="ROTATED", expiration=now + timedelta(hours=1))

    _mount(tmp_path, build(new, mountPath=str(tmp_path)))

    assert credentials.get_frozen_credentials().token == "ROTATED"
    assert credentials._expiry_time == now + timedelta(hours=1)


def test_sdk_reads_credentials_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mount(tmp_path, build(mountPath=str(tmp_path)))
    session = _sdk_session(
        monkeypatch,
        AWS_CONFIG_FILE=str(tmp_path / "absent"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
    )

    credentials = session.get_credentials()

    assert credentials.method == "shared-credentials-file"
    assert credentials.secret_key == "sEcReT+value/with%percent=="


# --- metadata ------------------------------------------------------------------


def test_labels_merge_operator_wins() -> None:
    secret = build(
        labels={"team": "data", "app.kubernetes.io/managed-by": "helm"},
    )

    assert secret.labels == {
        "team": "data",
        "app.kubernetes.io/managed-by": "delegated-aws-operator",
        "delegatedaws.io/owner-name": "reader",
    }


def test_annotations_merge_operator_wins() -> None:
    secret = build(
        annotations={"note": "x", "delegatedaws.io/role-arn": "forged"},
    )

    assert secret.annotations == {
        "note": "x",
        "delegatedaws.io/expiration": "2026-12-03T17:00:00Z",
        "delegatedaws.io/role-arn": ROLE,
        "delegatedaws.io/owner-uid": OWNER.uid,
        "delegatedaws.io/content-hash": secret.content_hash,
        "delegatedaws.io/user-metadata-keys": (
            '{"labels":[],"annotations":["delegatedaws.io/role-arn","note"]}'
        ),
    }


def test_long_owner_name_fits_a_label() -> None:
    name = "a" * 70 + ".b" * 20
    value = label_value(name)

    assert len(value) == 63
    assert value == label_value(name)
    assert value != label_value(name + "c")
    assert label_value("short.name") == "short.name"


def test_delete_policy_sets_controller_reference() -> None:
    for secret in (build(), build(deletionPolicy="Delete")):
        assert secret.owner_references == (
            {
                "apiVersion": "delegatedaws.io/v1alpha1",
                "kind": "DelegatedAWSSecret",
                "name": "reader",
                "uid": OWNER.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            },
        )


def test_retain_policy_has_no_owner_reference() -> None:
    secret = build(deletionPolicy="Retain")

    assert secret.owner_references == ()
    assert secret.labels["app.kubernetes.io/managed-by"] == "delegated-aws-operator"
    assert secret.annotations["delegatedaws.io/owner-uid"] == OWNER.uid


def test_create_body() -> None:
    secret = build(deletionPolicy="Retain")
    body = new_body(secret, namespace="team-a")

    assert body["type"] == "Opaque"
    assert body["metadata"]["namespace"] == "team-a"
    assert body["metadata"]["ownerReferences"] == []
    decoded = {k: base64.b64decode(v).decode() for k, v in body["data"].items()}
    assert decoded == dict(secret.data)


# --- content hash --------------------------------------------------------------


def test_content_hash_is_stable() -> None:
    assert build().content_hash == build().content_hash
    assert build().content_hash.startswith("sha256:")


def test_content_hash_follows_data() -> None:
    other = FakeCredentials(session_token="ANOTHER-TOKEN")

    assert build(other).content_hash != build().content_hash
    assert build(mountPath="/x").content_hash != build().content_hash


def test_content_hash_ignores_metadata() -> None:
    assert build(labels={"a": "b"}).content_hash == build().content_hash


def test_content_hash_separates_keys_from_values() -> None:
    assert content_hash({"ab": b"c"}) != content_hash({"a": b"bc"})


def test_content_hash_matches_what_the_api_returns() -> None:
    secret = build()
    data = decoded_data(new_body(secret, namespace="ns"))

    assert data is not None
    assert content_hash(data) == secret.annotations[CONTENT_HASH_ANNOTATION]


def test_undecodable_data() -> None:
    assert decoded_data({"data": {"k": "not base64!"}}) is None


# --- merging into a live Secret ------------------------------------------------


def live_from(secret: DesiredSecret, **metadata: Any) -> dict[str, Any]:
    body = new_body(secret, namespace="ns")
    body["metadata"] |= {"resourceVersion": "7", "uid": "secret-uid", **metadata}
    return body


def test_fresh_body_is_current() -> None:
    assert is_current(live_from(build()), build())


def test_foreign_metadata_does_not_make_it_stale() -> None:
    live = live_from(build())
    live["metadata"]["labels"]["added-by-kyverno"] = "yes"
    live["metadata"]["annotations"]["reloader"] = "x"
    live["metadata"]["ownerReferences"].append({"uid": "other", "kind": "Thing"})

    assert is_current(live, build())


@pytest.mark.parametrize(
    "change",
    [
        lambda live: live["data"].update(AWS_SESSION_TOKEN="ZWRpdGVk"),
        lambda live: live["data"].pop("config"),
        lambda live: live["data"].update(extra="eA=="),
        lambda live: live["metadata"]["labels"].pop("delegatedaws.io/owner-name"),
        lambda live: live["metadata"]["annotations"].update(note="changed"),
        lambda live: live["metadata"].update(ownerReferences=[]),
    ],
    ids=["value", "missing-key", "extra-key", "label", "annotation", "owner-ref"],
)
def test_edits_make_it_stale(change: Any) -> None:
    desired = build(annotations={"note": "x"})
    live = live_from(desired)
    change(live)

    assert not is_current(live, desired)


def test_update_keeps_foreign_and_drops_removed_user_keys() -> None:
    before = build(labels={"old": "1", "kept": "1"}, annotations={"gone": "1"})
    live = live_from(before)
    live["metadata"]["labels"]["foreign"] = "f"
    live["metadata"]["ownerReferences"].append({"uid": "other", "kind": "Thing"})
    after = build(labels={"kept": "2"}, deletionPolicy="Retain")

    body = updated_body(live, after)

    assert body["metadata"]["labels"] == {"foreign": "f", **after.labels}
    assert "gone" not in body["metadata"]["annotations"]
    assert body["metadata"]["annotations"][USER_KEYS_ANNOTATION] == (
        '{"labels":["kept"],"annotations":[]}'
    )
    assert body["metadata"]["ownerReferences"] == [{"uid": "other", "kind": "Thing"}]
    assert body["metadata"]["resourceVersion"] == "7"
    assert is_current(body, after)


def test_update_switches_retain_to_delete() -> None:
    live = live_from(build(deletionPolicy="Retain"))

    body = updated_body(live, build())

    assert body["metadata"]["ownerReferences"] == list(build().owner_references)


# --- no values in text ---------------------------------------------------------


def test_no_secret_value_in_repr_or_str() -> None:
    secret = build()
    texts = [repr(secret), str(secret), repr(replace(secret, name="other"))]

    for text in texts:
        for value in SECRET_VALUES:
            assert value not in text
