"""Partitions, role ARNs, resource ARNs, session names and role names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delegated_aws.arns import (
    RoleArnParts,
    account_root_arn,
    ecr_repository_arn,
    iam_principal_of,
    parse_role_arn,
    partition_of_region,
    role_name_suggestion,
    s3_bucket_arn,
    s3_objects_arn,
    session_name,
)

SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        pytest.param("us-east-1", "aws", id="commercial-us"),
        pytest.param("eu-west-1", "aws", id="commercial-eu"),
        pytest.param("ap-east-1", "aws", id="opt-in-region"),
        pytest.param("il-central-1", "aws", id="commercial-il"),
        pytest.param("cn-north-1", "aws-cn", id="china-north"),
        pytest.param("cn-northwest-1", "aws-cn", id="china-northwest"),
        pytest.param("us-gov-west-1", "aws-us-gov", id="govcloud-west"),
        pytest.param("us-gov-east-1", "aws-us-gov", id="govcloud-east"),
        pytest.param("us-iso-east-1", "aws-iso", id="iso"),
        pytest.param("us-isob-east-1", "aws-iso-b", id="iso-b"),
        pytest.param("eu-isoe-west-1", "aws-iso-e", id="iso-e"),
        pytest.param("us-isof-south-1", "aws-iso-f", id="iso-f"),
        pytest.param("eusc-de-east-1", "aws-eusc", id="european-sovereign"),
    ],
)
def test_partition_of_region(region: str, partition: str) -> None:
    assert partition_of_region(region) == partition


@pytest.mark.parametrize(
    ("arn", "parts"),
    [
        pytest.param(
            "arn:aws:iam::123456789012:role/reader",
            RoleArnParts("aws", "123456789012", "/", "reader"),
            id="aws-no-path",
        ),
        pytest.param(
            "arn:aws:iam::123456789012:role/service-role/team/reader",
            RoleArnParts("aws", "123456789012", "/service-role/team/", "reader"),
            id="aws-nested-path",
        ),
        pytest.param(
            "arn:aws-cn:iam::123456789012:role/app/reader",
            RoleArnParts("aws-cn", "123456789012", "/app/", "reader"),
            id="china-path",
        ),
        pytest.param(
            "arn:aws-us-gov:iam::123456789012:role/Reader+=,.@-_1",
            RoleArnParts("aws-us-gov", "123456789012", "/", "Reader+=,.@-_1"),
            id="govcloud-every-name-char",
        ),
        pytest.param(
            "arn:aws-iso-b:iam::123456789012:role/r",
            RoleArnParts("aws-iso-b", "123456789012", "/", "r"),
            id="iso-b-one-char-name",
        ),
        pytest.param(
            "arn:aws-iso-f:iam::123456789012:role/a/b/c/" + "n" * 64,
            RoleArnParts("aws-iso-f", "123456789012", "/a/b/c/", "n" * 64),
            id="iso-f-64-char-name",
        ),
        pytest.param(
            "arn:aws-eusc:iam::000000000000:role/r1",
            RoleArnParts("aws-eusc", "000000000000", "/", "r1"),
            id="eusc",
        ),
    ],
)
def test_parse_role_arn(arn: str, parts: RoleArnParts) -> None:
    assert parse_role_arn(arn) == parts


@pytest.mark.parametrize(
    "arn",
    [
        pytest.param("arn:aws:iam::123456789012:user/bob", id="user"),
        pytest.param("arn:aws:iam::123456789012:root", id="account-root"),
        pytest.param("arn:aws:iam::12345678901:role/r", id="11-digit-account"),
        pytest.param("arn:aws:iam::123456789012:role/", id="empty-name"),
        pytest.param("arn:aws:iam::123456789012:role/" + "n" * 65, id="name-65"),
        pytest.param("arn:aws:iam::123456789012:role//r", id="empty-path-part"),
        pytest.param("arn:aws:sts::123456789012:assumed-role/r/s", id="session"),
        pytest.param("arn:aws:iam::123456789012:role/caf\u00e9", id="unicode-name"),
        pytest.param("arn:gcp:iam::123456789012:role/r", id="not-aws"),
        pytest.param("arn:aws:iam::123456789012:role/r\n", id="trailing-newline"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_role_arn_refuses(arn: str) -> None:
    with pytest.raises(ValueError, match="not an IAM role ARN"):
        parse_role_arn(arn)


@pytest.mark.parametrize(
    ("caller", "principal"),
    [
        pytest.param(
            "arn:aws:sts::123456789012:assumed-role/operator/botocore-session-1",
            "arn:aws:iam::123456789012:role/operator",
            id="irsa-session",
        ),
        pytest.param(
            "arn:aws-cn:sts::123456789012:assumed-role/op/i-0abc",
            "arn:aws-cn:iam::123456789012:role/op",
            id="china-instance-role",
        ),
        pytest.param(
            "arn:aws-us-gov:sts::123456789012:assumed-role/op/eks-pod@x.y",
            "arn:aws-us-gov:iam::123456789012:role/op",
            id="govcloud-pod-identity",
        ),
        pytest.param(
            "arn:aws:iam::123456789012:user/ci",
            "arn:aws:iam::123456789012:user/ci",
            id="user-unchanged",
        ),
        pytest.param(
            "arn:aws:iam::123456789012:role/path/op",
            "arn:aws:iam::123456789012:role/path/op",
            id="role-unchanged",
        ),
        pytest.param(
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:root",
            id="root-unchanged",
        ),
    ],
)
def test_iam_principal_of(caller: str, principal: str) -> None:
    assert iam_principal_of(caller) == principal


@pytest.mark.parametrize(
    ("partition", "arn"),
    [
        pytest.param("aws", "arn:aws:iam::123456789012:root", id="aws"),
        pytest.param("aws-cn", "arn:aws-cn:iam::123456789012:root", id="china"),
        pytest.param("aws-us-gov", "arn:aws-us-gov:iam::123456789012:root", id="gov"),
    ],
)
def test_account_root_arn(partition: str, arn: str) -> None:
    assert account_root_arn(partition, "123456789012") == arn


@pytest.mark.parametrize(
    ("bucket", "partition", "bucket_arn", "objects_arn"),
    [
        pytest.param(
            "my-bucket",
            "aws",
            "arn:aws:s3:::my-bucket",
            "arn:aws:s3:::my-bucket/*",
            id="plain-name",
        ),
        pytest.param(
            "s3://my-bucket/data",
            "aws",
            "arn:aws:s3:::my-bucket",
            "arn:aws:s3:::my-bucket/*",
            id="s3-url-with-prefix",
        ),
        pytest.param(
            "s3://my-bucket",
            "aws",
            "arn:aws:s3:::my-bucket",
            "arn:aws:s3:::my-bucket/*",
            id="s3-url-without-prefix",
        ),
        pytest.param(
            "s3://logs.example.com/a/b/",
            "aws-cn",
            "arn:aws-cn:s3:::logs.example.com",
            "arn:aws-cn:s3:::logs.example.com/*",
            id="china-dotted-name",
        ),
        pytest.param(
            "data-1",
            "aws-us-gov",
            "arn:aws-us-gov:s3:::data-1",
            "arn:aws-us-gov:s3:::data-1/*",
            id="govcloud",
        ),
    ],
)
def test_s3_arns(
    bucket: str, partition: str, bucket_arn: str, objects_arn: str
) -> None:
    assert s3_bucket_arn(bucket, partition=partition) == bucket_arn
    assert s3_objects_arn(bucket, partition=partition) == objects_arn
    assert "s3://" not in bucket_arn + objects_arn


@pytest.mark.parametrize(
    ("repository", "account", "arn"),
    [
        pytest.param(
            "team/app",
            "123456789012",
            "arn:aws:ecr:eu-west-1:123456789012:repository/team/app",
            id="name-known-account",
        ),
        pytest.param(
            "app",
            None,
            "arn:aws:ecr:eu-west-1:*:repository/app",
            id="name-account-not-known-yet",
        ),
        pytest.param(
            "arn:aws:ecr:us-west-2:210987654321:repository/base",
            "123456789012",
            "arn:aws:ecr:us-west-2:210987654321:repository/base",
            id="full-arn-passes-through",
        ),
    ],
)
def test_ecr_repository_arn(repository: str, account: str | None, arn: str) -> None:
    built = ecr_repository_arn(
        repository, partition="aws", region="eu-west-1", account=account
    )
    assert built == arn


# --- names ---------------------------------------------------------------------

NAME_INPUTS = [
    pytest.param("prod", "ingest", id="plain"),
    pytest.param("team-a", "reader.v2", id="dotted-name"),
    pytest.param("ns", "a/b", id="slash"),
    pytest.param("ns", "a:b", id="colon"),
    pytest.param("ns", "a[0]", id="brackets"),
    pytest.param("n\u00e4mespace", "caf\u00e9", id="unicode"),
    pytest.param("ns", "\U0001f600", id="emoji"),
    pytest.param("ns", "a b\tc", id="whitespace"),
    pytest.param("a" * 63, "b" * 253, id="longest-kubernetes-names"),
    pytest.param("ns", "x" * 253, id="253-char-name"),
    pytest.param("", "", id="empty"),
    pytest.param("", "a", id="empty-namespace"),
    pytest.param("a.b", "c", id="dot-in-namespace"),
]


@pytest.mark.parametrize(("ns", "name"), NAME_INPUTS)
def test_session_name_is_valid_and_stable(ns: str, name: str) -> None:
    derived = session_name(ns, name)
    assert SESSION_NAME.fullmatch(derived)
    assert session_name(ns, name) == derived


@pytest.mark.parametrize(("ns", "name"), NAME_INPUTS)
def test_role_name_suggestion_is_valid_and_stable(ns: str, name: str) -> None:
    suggested = role_name_suggestion(ns, name)
    assert ROLE_NAME.fullmatch(suggested)
    assert role_name_suggestion(ns, name) == suggested


@pytest.mark.parametrize(
    ("ns", "name", "expected"),
    [
        pytest.param("prod", "ingest", "prod.ingest", id="plain-kept"),
        pytest.param("team-a", "reader.v2", "team-a.reader.v2", id="dots-kept"),
        pytest.param("a", "b" * 62, "a." + "b" * 62, id="exactly-64"),
    ],
)
def test_session_name_readable_when_possible(ns: str, name: str, expected: str) -> None:
    assert session_name(ns, name) == expected


@pytest.mark.parametrize(
    ("ns", "name", "readable_prefix"),
    [
        pytest.param("ns", "a/b", "ns.a-b-", id="slash-replaced"),
        pytest.param("ns", "a:b", "ns.a-b-", id="colon-replaced"),
        pytest.param("ns", "a[0]", "ns.a-0--", id="brackets-replaced"),
        pytest.param("ns", "x" * 253, "ns." + "x" * 50 + "-", id="truncated"),
    ],
)
def test_session_name_marks_changes_with_hash(
    ns: str, name: str, readable_prefix: str
) -> None:
    derived = session_name(ns, name)
    assert derived.startswith(readable_prefix)
    assert re.fullmatch(r"[0-9a-f]{10}", derived[-10:])


@pytest.mark.parametrize(
    ("ns", "name", "expected"),
    [
        pytest.param("ns", "a/b", "ns.a-b-af8169d9cb", id="slash"),
        pytest.param(
            "team-a", "reader:prod", "team-a.reader-prod-273f7c19ba", id="colon"
        ),
    ],
)
def test_hashed_session_name_is_pinned_across_releases(
    ns: str, name: str, expected: str
) -> None:
    # An upgrade that changed these would change every such resource's
    # session name, which customers may match in their CloudTrail alerts.
    assert session_name(ns, name) == expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(("ns", "a/b"), ("ns", "a:b"), id="different-bad-chars"),
        pytest.param(("ns", "a/b"), ("ns", "a-b"), id="replaced-vs-literal-dash"),
        pytest.param(("ns", "x" * 253), ("ns", "x" * 252), id="same-truncation"),
        pytest.param(("a.b", "c"), ("a", "b.c"), id="dot-moved-across-separator"),
        pytest.param(("ns", "\u00e9"), ("ns", "\u00e8"), id="different-unicode"),
        pytest.param(("ab", "c"), ("a", "bc"), id="separator-position"),
    ],
)
def test_distinct_inputs_give_distinct_names(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    assert session_name(*first) != session_name(*second)
    assert role_name_suggestion(*first) != role_name_suggestion(*second)


def test_distinct_over_many_long_names() -> None:
    names = {session_name("ns", f"{'x' * 200}-{index}") for index in range(2000)}
    assert len(names) == 2000


@pytest.mark.parametrize(
    "override",
    [
        pytest.param("ci-run@example.com", id="email-like"),
        pytest.param("a" * 64, id="64-chars"),
        pytest.param("x+y=z,w", id="symbols"),
    ],
)
def test_session_name_override_used_verbatim(override: str) -> None:
    assert session_name("ns", "a/b", override) == override


def test_role_name_suggestion_reads_as_the_resource() -> None:
    assert role_name_suggestion("prod", "ingest") == "delegated-aws-prod.ingest"


@settings(max_examples=200, deadline=None)
@given(
    first=st.tuples(st.text(max_size=80), st.text(max_size=300)),
    second=st.tuples(st.text(max_size=80), st.text(max_size=300)),
)
def test_derived_names_are_valid_stable_and_distinct(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    for pair in (first, second):
        assert SESSION_NAME.fullmatch(session_name(*pair))
        assert ROLE_NAME.fullmatch(role_name_suggestion(*pair))
        assert session_name(*pair) == session_name(*pair)
    if first != second:
        assert session_name(*first) != session_name(*second)
        assert role_name_suggestion(*first) != role_name_suggestion(*second)
