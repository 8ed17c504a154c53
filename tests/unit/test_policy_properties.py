"""Properties of the generated policies over every spec the models accept.

Any spec ``parse_spec`` accepts yields trust, permissions and KMS documents that
are valid JSON, hold only well-formed ARNs and pass the IAM policy linter
``parliament`` without findings (bar the few filtered below, each with the AWS
documentation that makes it correct). Any spec it refuses raises
``InvalidSpecError`` naming the field.
"""

from __future__ import annotations

import json
import re
import string
import warnings
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from delegated_aws import models
from delegated_aws.arns import partition_of_region
from delegated_aws.instructions import build_instructions
from delegated_aws.models import InvalidSpecError, TrustedPrincipal, parse_spec

with warnings.catch_warnings():
    # parliament 1.6.4 opens its data files without closing them at import.
    warnings.simplefilter("ignore", ResourceWarning)
    from parliament import analyze_policy_string

PROPERTY = settings(max_examples=150, deadline=None)

# Regions the models accept, by partition. NB: eusc-de-east-1 (aws-eusc) is
# absent because models.REGION_PATTERN wants two letters before the first dash.
REGIONS = {
    "aws": ("us-east-1", "eu-west-1", "ap-east-1", "il-central-1", "sa-east-1"),
    "aws-cn": ("cn-north-1", "cn-northwest-1"),
    "aws-us-gov": ("us-gov-west-1", "us-gov-east-1"),
    "aws-iso": ("us-iso-east-1", "us-iso-west-1"),
    "aws-iso-b": ("us-isob-east-1",),
    "aws-iso-e": ("eu-isoe-west-1",),
    "aws-iso-f": ("us-isof-south-1", "us-isof-east-1"),
}
# AWS documents these partitions, but parliament 1.6.4 knows only aws, aws-cn,
# aws-us-gov and aws-iso and reports every ARN in them as "Unexpected partition".
PARTITIONS_PARLIAMENT_LACKS = {"aws-iso-b", "aws-iso-e", "aws-iso-f"}
# parliament 1.6.4 checks regions against ([a-z]{2}|us-gov)-[a-z]+-[0-9], which
# misses the documented four-part regions of the ISO partitions (us-iso-east-1).
PARTITIONS_WITH_REGIONS_PARLIAMENT_LACKS = {"aws-iso", *PARTITIONS_PARLIAMENT_LACKS}
UNEXPECTED_PARTITION = ("INVALID_ARN", "Unexpected partition")
UNEXPECTED_REGION = ("INVALID_ARN", "Region expected to be of form like us-east-1")

IAM_NAME_CHARS = string.ascii_letters + string.digits + "_+=,.@-"
EXTERNAL_ID_CHARS = IAM_NAME_CHARS + ":/"
ECR_NAME = r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"

ARN = re.compile(
    r"arn:(?P<partition>aws(-[a-z]+)*):(?P<service>iam|s3|kms|ecr):"
    r"(?P<region>[a-z0-9-]*):(?P<account>[0-9]{12}|\*)?:(?P<resource>.+)"
)
RESOURCE_SHAPES = {
    "s3": re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\*)?"),
    "kms": re.compile(r"key/[a-zA-Z0-9-]{1,64}"),
    "ecr": re.compile(rf"repository/{ECR_NAME}"),
    "iam": re.compile(r"root|role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII),
}


# --- strategies ------------------------------------------------------------------

accounts = st.from_regex(r"[0-9]{12}", fullmatch=True)
iam_names = st.text(IAM_NAME_CHARS, min_size=1, max_size=64)
role_paths = st.lists(st.text(IAM_NAME_CHARS, min_size=1, max_size=12), max_size=3)


@st.composite
def role_arns(draw: st.DrawFn, partition: str) -> str:
    path = "".join(f"{part}/" for part in draw(role_paths))
    return f"arn:{partition}:iam::{draw(accounts)}:role/{path}{draw(iam_names)}"


@st.composite
def kms_key_arns(draw: st.DrawFn, partition: str) -> str:
    region = draw(st.sampled_from(REGIONS[partition]))
    key = draw(st.from_regex(r"[a-zA-Z0-9-]{1,64}", fullmatch=True))
    return f"arn:{partition}:kms:{region}:{draw(accounts)}:key/{key}"


# Built by hand: from_regex on the nested ECR pattern is slow to generate.
_ecr_words = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
ecr_components = st.builds(
    lambda first, rest: first + "".join(sep + word for sep, word in rest),
    _ecr_words,
    st.lists(st.tuples(st.sampled_from("._-"), _ecr_words), max_size=2),
)


@st.composite
def ecr_repositories(draw: st.DrawFn, partition: str) -> str:
    name = "/".join(draw(st.lists(ecr_components, min_size=1, max_size=3)))
    if draw(st.booleans()):
        return name
    region = draw(st.sampled_from(REGIONS[partition]))
    return f"arn:{partition}:ecr:{region}:{draw(accounts)}:repository/{name}"


# A letter first, so that no name has the form of an IP address.
_bucket_labels = st.from_regex(r"[a-z][a-z0-9]{0,11}", fullmatch=True)


@st.composite
def buckets(draw: st.DrawFn) -> str:
    """Bucket names S3 accepts, bare or as an ``s3://`` URL with a prefix."""
    labels = draw(st.lists(_bucket_labels, min_size=1, max_size=5))
    gaps = len(labels) - 1
    seps = draw(st.lists(st.sampled_from(".-"), min_size=gaps, max_size=gaps))
    pairs = zip(seps, labels[1:], strict=True)
    name = labels[0] + "".join(sep + label for sep, label in pairs)
    assume(3 <= len(name) <= 63)
    assume(not any(re.search(p, name) for p, _ in models.BUCKET_FORBIDDEN))
    if draw(st.booleans()):
        return name
    return f"s3://{name}/{draw(st.from_regex(r'[a-z0-9/._-]{0,20}', fullmatch=True))}"


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], TrustedPrincipal, str]:
    """A raw spec the models accept, the operator's identity and the region."""
    partition = draw(st.sampled_from(sorted(REGIONS)))
    region = draw(st.sampled_from(REGIONS[partition]))
    raw: dict[str, Any] = {
        "resources": {
            "s3Buckets": draw(st.lists(buckets(), max_size=3)),
            "kmsKeyArns": draw(st.lists(kms_key_arns(partition), max_size=3)),
            "ecrRepositories": draw(st.lists(ecr_repositories(partition), max_size=3)),
        }
    }
    if draw(st.booleans()):
        raw["roleArn"] = draw(role_arns(partition))
    if draw(st.booleans()):
        raw["region"] = region
    return raw, draw(trusted_principals(partition)), region


@st.composite
def trusted_principals(draw: st.DrawFn, partition: str) -> TrustedPrincipal:
    account = draw(accounts)
    arn = f"arn:{partition}:iam::{account}:role/{draw(iam_names)}"
    root = f"arn:{partition}:iam::{account}:root"
    return TrustedPrincipal(
        account_id=account,
        arn=arn,
        partition=partition,
        trust_principal=draw(st.sampled_from([root, arn])),
    )


external_ids = st.uuids().map(str) | st.text(EXTERNAL_ID_CHARS, min_size=2)
kube_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


# --- helpers ---------------------------------------------------------------------


def lint(document: dict[str, Any], *, partition: str) -> list[tuple[str, Any]]:
    result = analyze_policy_string(json.dumps(document, indent=2))
    found = [(finding.issue, finding.detail) for finding in result.findings]
    if partition in PARTITIONS_PARLIAMENT_LACKS:
        found = [f for f in found if f != UNEXPECTED_PARTITION]
    if partition in PARTITIONS_WITH_REGIONS_PARLIAMENT_LACKS:
        found = [f for f in found if f != UNEXPECTED_REGION]
    return found


def assert_well_formed(arn: str) -> None:
    match = ARN.fullmatch(arn)
    assert match, arn
    assert "s3://" not in arn
    assert RESOURCE_SHAPES[match["service"]].fullmatch(match["resource"]), arn
    assert match["partition"] in REGIONS or match["partition"] == "aws-eusc"


def resources_of(document: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for statement in document["Statement"]:
        value = statement["Resource"]
        found += [value] if isinstance(value, str) else value
    return [arn for arn in found if arn != "*"]


# --- accepted specs ------------------------------------------------------------


@PROPERTY
@given(case=cases(), external_id=external_ids, ns=kube_names, name=kube_names)
def test_accepted_specs_give_lint_clean_documents(
    case: tuple[dict[str, Any], TrustedPrincipal, str],
    external_id: str,
    ns: str,
    name: str,
) -> None:
    raw, trusted, region = case
    instructions = build_instructions(
        spec=parse_spec(raw),
        namespace=ns,
        name=name,
        external_id=external_id,
        trusted=trusted,
        region=region,
    )
    partition = trusted.partition

    trust = json.loads(instructions.trust_policy)
    assert_well_formed(trust["Statement"][0]["Principal"]["AWS"])
    # A role trust policy is attached to the role itself, so AWS forbids a
    # Resource element in it; parliament lints identity policies and wants one.
    assert lint(trust, partition=partition) == [
        ("MALFORMED", "Statement contains neither Resource nor NotResource")
    ]

    if instructions.permissions_policy is not None:
        permissions = json.loads(instructions.permissions_policy)
        for arn in resources_of(permissions):
            assert_well_formed(arn)
        assert lint(permissions, partition=partition) == []

    if instructions.kms_key_policy_statement is not None:
        statement = json.loads(instructions.kms_key_policy_statement)
        assert_well_formed(statement["Principal"]["AWS"])
        # In a KMS key policy "*" means the key the policy is attached to
        # (AWS KMS developer guide, "Key policies"), not every resource.
        document = {"Version": "2012-10-17", "Statement": [statement]}
        assert lint(document, partition=partition) == [
            ("RESOURCE_STAR", ["kms:Decrypt", "kms:DescribeKey"])
        ]


@PROPERTY
@given(case=cases())
def test_resource_arns_follow_the_partition_of_the_role(
    case: tuple[dict[str, Any], TrustedPrincipal, str],
) -> None:
    raw, trusted, region = case
    spec = parse_spec(raw)
    instructions = build_instructions(
        spec=spec,
        namespace="ns",
        name="name",
        external_id="id-1",
        trusted=trusted,
        region=region,
    )
    if instructions.permissions_policy is None:
        assert not any(raw["resources"].values())
        return
    for arn in resources_of(json.loads(instructions.permissions_policy)):
        assert arn.split(":")[1] == trusted.partition
    for bucket in spec.resources.s3_buckets:
        assert (
            f"arn:{trusted.partition}:s3:::{bucket}" in instructions.permissions_policy
        )


@pytest.mark.parametrize("partition", sorted(REGIONS))
def test_regions_of_the_table_belong_to_their_partition(partition: str) -> None:
    assert {partition_of_region(r) for r in REGIONS[partition]} == {partition}


# --- refused specs -------------------------------------------------------------


def not_matching(pattern: str) -> st.SearchStrategy[str]:
    compiled = re.compile(pattern)
    return st.text(max_size=80).filter(lambda text: not compiled.fullmatch(text))


BAD_DURATIONS = st.sampled_from(["14m", "12h1s", "0s", "1d", "abc", "-1h", ""])

# dotted path below spec -> strategy for a value the models must refuse
REFUSED = {
    # The empty string is not refused: it means "no role yet", like absence.
    "roleArn": not_matching(models.ROLE_ARN_PATTERN).filter(bool)
    | st.just("arn:aws:iam::123456789012:user/bob"),
    "externalId": not_matching(models.EXTERNAL_ID_PATTERN),
    "region": not_matching(models.REGION_PATTERN),
    "sessionDuration": BAD_DURATIONS,
    "roleSessionName": not_matching(models.SESSION_NAME_PATTERN)
    | st.sampled_from(["a/b", "ns:name", "x[0]", "a" * 65]),
    "resources.s3Buckets": st.lists(not_matching(models.BUCKET_PATTERN), min_size=1)
    | st.lists(
        st.sampled_from(["a..b", "10.0.0.1", "xn--ab", "b-s3alias"]), min_size=1
    ),
    "resources.kmsKeyArns": st.lists(
        not_matching(models.KMS_KEY_ARN_PATTERN), min_size=1
    ),
    "resources.ecrRepositories": st.lists(
        not_matching(models.ECR_REPOSITORY_PATTERN), min_size=1
    ),
    "secret.name": not_matching(models.SECRET_NAME_PATTERN) | st.just("a" * 254),
    "secret.deletionPolicy": st.text().filter(lambda t: t not in {"Delete", "Retain"}),
    "refresh.before": st.sampled_from(["0s", "soon", "-5m"]),
}


def with_value(raw: dict[str, Any], path: str, *, value: Any) -> dict[str, Any]:
    raw = json.loads(json.dumps(raw))
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return raw


@pytest.mark.parametrize("path", sorted(REFUSED))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_refused_specs_name_the_field(path: str, data: st.DataObject) -> None:
    raw, _, _ = data.draw(cases())
    value = data.draw(REFUSED[path])
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(with_value(raw, path, value=value))
    assert caught.value.field.startswith(f"spec.{path}")
    assert str(caught.value).startswith(f"spec.{path}")


# --- IAM's \w is ASCII-only; so is the models' -------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("roleArn", "arn:aws:iam::123456789012:role/caf\u00e9", id="arn"),
        pytest.param("roleSessionName", "caf\u00e9", id="session-name"),
        pytest.param("externalId", "\u00e9\u00e9", id="external-id"),
    ],
)
def test_models_refuse_non_ascii_iam_names(path: str, value: str) -> None:
    with pytest.raises(InvalidSpecError):
        parse_spec({path: value})


def test_models_accept_the_european_sovereign_cloud_region() -> None:
    assert parse_spec({"region": "eusc-de-east-1"}).region == "eusc-de-east-1"
