"""The instructions written to status for the customer's AWS administrator."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from delegated_aws.instructions import build_instructions
from delegated_aws.models import Instructions, TrustedPrincipal, parse_spec

OPERATOR = "111122223333"
CUSTOMER = "444455556666"
KEY = f"arn:aws:kms:eu-west-1:{CUSTOMER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_2 = f"arn:aws:kms:us-east-1:{CUSTOMER}:key/mrk-0123456789abcdef"
ROLE = f"arn:aws:iam::{CUSTOMER}:role/reader"
ROLE_WITH_PATH = f"arn:aws:iam::{CUSTOMER}:role/service-role/team/reader"
EXTERNAL_ID = "5f0c1a6e-9d1b-4c2a-8e3f-0a1b2c3d4e5f"


def trusted(partition: str = "aws", *, exact: bool = False) -> TrustedPrincipal:
    arn = f"arn:{partition}:iam::{OPERATOR}:role/operator"
    root = f"arn:{partition}:iam::{OPERATOR}:root"
    return TrustedPrincipal(
        account_id=OPERATOR,
        arn=arn,
        partition=partition,
        trust_principal=arn if exact else root,
    )


def build(
    spec: dict[str, Any],
    *,
    principal: TrustedPrincipal | None = None,
    region: str = "eu-west-1",
    ns: str = "prod",
    name: str = "ingest",
) -> Instructions:
    return build_instructions(
        spec=parse_spec(spec),
        namespace=ns,
        name=name,
        external_id=EXTERNAL_ID,
        trusted=principal or trusted(),
        region=region,
    )


def statements(document: str | None) -> dict[str, dict[str, Any]]:
    assert document is not None
    parsed = json.loads(document)
    assert parsed["Version"] == "2012-10-17"
    return {statement["Sid"]: statement for statement in parsed["Statement"]}


# --- trust policy --------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        pytest.param(trusted(), f"arn:aws:iam::{OPERATOR}:root", id="account-root"),
        pytest.param(
            trusted(exact=True),
            f"arn:aws:iam::{OPERATOR}:role/operator",
            id="exact-principal",
        ),
        pytest.param(
            trusted("aws-cn"), f"arn:aws-cn:iam::{OPERATOR}:root", id="china-root"
        ),
    ],
)
def test_trust_policy(principal: TrustedPrincipal, expected: str) -> None:
    instructions = build({}, principal=principal)
    (statement,) = statements(instructions.trust_policy).values()
    assert statement == {
        "Sid": "AllowDelegatedAwsOperator",
        "Effect": "Allow",
        "Principal": {"AWS": expected},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
    }


def test_documents_are_pretty_printed() -> None:
    instructions = build({"resources": {"kmsKeyArns": [KEY]}})
    for document in (
        instructions.trust_policy,
        instructions.permissions_policy,
        instructions.kms_key_policy_statement,
    ):
        assert document is not None
        assert document == json.dumps(json.loads(document), indent=2)


# --- permissions policy --------------------------------------------------------

# spec, partition of the operator, region -> {Sid: Resource}
PERMISSIONS = [
    pytest.param(
        {"resources": {"s3Buckets": ["s3://my-bucket/data"]}},
        "aws",
        {
            "ListS3Buckets": ["arn:aws:s3:::my-bucket"],
            "ReadS3Objects": ["arn:aws:s3:::my-bucket/*"],
        },
        id="s3-url-form-F20",
    ),
    pytest.param(
        {"resources": {"s3Buckets": ["s3://bk1/x", "s3://bk1/y", "bk2"]}},
        "aws",
        {
            "ListS3Buckets": ["arn:aws:s3:::bk1", "arn:aws:s3:::bk2"],
            "ReadS3Objects": ["arn:aws:s3:::bk1/*", "arn:aws:s3:::bk2/*"],
        },
        id="s3-two-prefixes-one-bucket",
    ),
    pytest.param(
        {"resources": {"s3Buckets": ["data"]}},
        "aws-cn",
        {
            "ListS3Buckets": ["arn:aws-cn:s3:::data"],
            "ReadS3Objects": ["arn:aws-cn:s3:::data/*"],
        },
        id="s3-china-partition-from-operator",
    ),
    pytest.param(
        {
            "roleArn": f"arn:aws-us-gov:iam::{CUSTOMER}:role/r",
            "resources": {"s3Buckets": ["data"]},
        },
        "aws-us-gov",
        {
            "ListS3Buckets": ["arn:aws-us-gov:s3:::data"],
            "ReadS3Objects": ["arn:aws-us-gov:s3:::data/*"],
        },
        id="s3-govcloud-partition-from-role",
    ),
    pytest.param(
        {"resources": {"kmsKeyArns": [KEY, KEY_2, KEY]}},
        "aws",
        {"DecryptWithKmsKeys": [KEY, KEY_2]},
        id="kms-keys-deduplicated",
    ),
    pytest.param(
        {"resources": {"ecrRepositories": ["team/app"]}},
        "aws",
        {
            "GetEcrAuthorizationToken": ["*"],
            "PullEcrImages": ["arn:aws:ecr:eu-west-1:*:repository/team/app"],
        },
        id="ecr-name-account-unknown",
    ),
    pytest.param(
        {"roleArn": ROLE, "resources": {"ecrRepositories": ["team/app"]}},
        "aws",
        {
            "GetEcrAuthorizationToken": ["*"],
            "PullEcrImages": [f"arn:aws:ecr:eu-west-1:{CUSTOMER}:repository/team/app"],
        },
        id="ecr-name-account-from-role",
    ),
    pytest.param(
        {
            "roleArn": ROLE,
            "resources": {
                "ecrRepositories": [
                    "arn:aws:ecr:us-west-2:210987654321:repository/base"
                ]
            },
        },
        "aws",
        {
            "GetEcrAuthorizationToken": ["*"],
            "PullEcrImages": ["arn:aws:ecr:us-west-2:210987654321:repository/base"],
        },
        id="ecr-full-arn-keeps-its-region-and-account",
    ),
]


@pytest.mark.parametrize(("spec", "partition", "resources"), PERMISSIONS)
def test_permissions_policy(
    spec: dict[str, Any], partition: str, resources: dict[str, list[str]]
) -> None:
    instructions = build(spec, principal=trusted(partition))
    found = statements(instructions.permissions_policy)
    assert {sid: s["Resource"] for sid, s in found.items()} == resources
    assert "s3://" not in (instructions.permissions_policy or "")


def test_permissions_policy_actions_are_least_privilege() -> None:
    spec = {
        "roleArn": ROLE,
        "resources": {
            "s3Buckets": ["bkt"],
            "kmsKeyArns": [KEY],
            "ecrRepositories": ["app"],
        },
    }
    found = statements(build(spec).permissions_policy)
    assert {sid: s["Action"] for sid, s in found.items()} == {
        "ListS3Buckets": ["s3:GetBucketLocation", "s3:ListBucket"],
        "ReadS3Objects": ["s3:GetObject"],
        "DecryptWithKmsKeys": ["kms:Decrypt", "kms:DescribeKey"],
        "GetEcrAuthorizationToken": ["ecr:GetAuthorizationToken"],
        "PullEcrImages": [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ],
    }
    assert all(s["Effect"] == "Allow" for s in found.values())


def test_no_resources_no_permissions_policy() -> None:
    instructions = build({"roleArn": ROLE})
    assert instructions.permissions_policy is None
    assert instructions.kms_key_policy_statement is None
    assert "put-role-policy" not in instructions.aws_cli
    assert any("permissions your service needs" in step for step in instructions.steps)


@pytest.mark.parametrize(
    ("buckets", "too_large"),
    [
        pytest.param(60, False, id="60 long bucket names fit"),
        pytest.param(100, True, id="100 long bucket names do not"),
    ],
)
def test_permissions_step_warns_above_the_inline_policy_quota(
    buckets: int, too_large: bool
) -> None:
    names = [f"{i:03d}-" + "b" * 59 for i in range(buckets)]
    instructions = build({"roleArn": ROLE, "resources": {"s3Buckets": names}})
    assert instructions.permissions_policy is not None
    size = len(
        json.dumps(json.loads(instructions.permissions_policy), separators=(",", ":"))
    )
    assert (size > 10_240) is too_large
    step = instructions.steps[3]
    if too_large:
        assert f"{size:,} characters without whitespace" in step
        assert "10,240" in step and "6,144" in step
    else:
        assert step.startswith("4. Attach the policy in")


# --- KMS key-policy statement (F21) --------------------------------------------


@pytest.mark.parametrize(
    ("spec", "principal"),
    [
        pytest.param(
            {"resources": {"kmsKeyArns": [KEY]}},
            f"arn:aws:iam::{CUSTOMER}:role/delegated-aws-prod.ingest",
            id="suggested-role-in-key-account",
        ),
        pytest.param(
            {"roleArn": ROLE, "resources": {"kmsKeyArns": [KEY]}},
            ROLE,
            id="role-arn",
        ),
        pytest.param(
            {"roleArn": ROLE_WITH_PATH, "resources": {"kmsKeyArns": [KEY]}},
            ROLE_WITH_PATH,
            id="role-arn-with-path",
        ),
    ],
)
def test_kms_key_policy_statement(spec: dict[str, Any], principal: str) -> None:
    document = build(spec).kms_key_policy_statement
    assert document is not None
    assert json.loads(document) == {
        "Sid": "AllowDelegatedRoleToDecrypt",
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": ["kms:Decrypt", "kms:DescribeKey"],
        "Resource": "*",
    }


def test_kms_step_names_every_key() -> None:
    steps = build({"resources": {"kmsKeyArns": [KEY, KEY_2]}}).steps
    (kms_step,) = [step for step in steps if "kmsKeyPolicyStatement" in step]
    assert KEY in kms_step
    assert KEY_2 in kms_step


# --- role name, steps, CLI -----------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "role_name"),
    [
        pytest.param({}, "delegated-aws-prod.ingest", id="suggested"),
        pytest.param({"roleArn": ROLE}, "reader", id="from-role-arn"),
        pytest.param({"roleArn": ROLE_WITH_PATH}, "reader", id="from-arn-with-path"),
    ],
)
def test_role_name(spec: dict[str, Any], role_name: str) -> None:
    instructions = build(spec)
    assert instructions.role_name == role_name
    assert instructions.max_session_duration == 43200


@pytest.mark.parametrize(
    ("spec", "count"),
    [
        pytest.param({}, 5, id="no-resources"),
        pytest.param({"resources": {"s3Buckets": ["bkt"]}}, 5, id="s3"),
        pytest.param({"resources": {"kmsKeyArns": [KEY]}}, 6, id="kms-adds-a-step"),
    ],
)
def test_steps_are_numbered_and_complete(spec: dict[str, Any], count: int) -> None:
    steps = build(spec).steps
    assert [step.split(".", 1)[0] for step in steps] == [
        str(n) for n in range(1, count + 1)
    ]
    text = "\n".join(steps)
    assert "trustPolicy" in text
    assert EXTERNAL_ID in text
    assert "12 hours" in text
    assert "kubectl patch delegatedawssecret ingest -n prod" in steps[-1]


def test_steps_when_role_arn_is_unknown_use_a_placeholder() -> None:
    last = build({}).steps[-1]
    assert "ACCOUNT_ID" in last
    assert "arn:aws:iam::ACCOUNT_ID:role/delegated-aws-prod.ingest" in last


def words(cli: str) -> list[list[str]]:
    return [
        shlex.split(line)
        for line in cli.splitlines()
        if line and not line.startswith("#")
    ]


def test_aws_cli_round_trips_through_the_shell() -> None:
    spec = {"roleArn": ROLE_WITH_PATH, "resources": {"s3Buckets": ["bkt"]}}
    instructions = build(spec)
    create, put, patch = words(instructions.aws_cli)

    assert create[:5] == ["aws", "iam", "create-role", "--role-name", "reader"]
    trust = create[create.index("--assume-role-policy-document") + 1]
    assert json.loads(trust) == json.loads(instructions.trust_policy)
    assert create[create.index("--max-session-duration") + 1] == "43200"
    assert create[create.index("--path") + 1] == "/service-role/team/"

    assert put[:3] == ["aws", "iam", "put-role-policy"]
    policy = put[put.index("--policy-document") + 1]
    assert json.loads(policy) == json.loads(instructions.permissions_policy or "")

    assert patch[:6] == [
        "kubectl",
        "patch",
        "delegatedawssecret",
        "ingest",
        "-n",
        "prod",
    ]
    assert json.loads(patch[-1]) == {"spec": {"roleArn": ROLE_WITH_PATH}}


@pytest.mark.parametrize(
    ("ns", "name"),
    [
        pytest.param("prod", "it's", id="single-quote"),
        pytest.param("a b", "$(rm -rf /)", id="shell-metacharacters"),
    ],
)
def test_aws_cli_is_quote_safe(ns: str, name: str) -> None:
    cli = build({"resources": {"s3Buckets": ["bkt"]}}, ns=ns, name=name).aws_cli
    patch = words(cli)[-1]
    assert patch[3] == name
    assert patch[5] == ns


def test_aws_cli_mentions_kms_only_with_keys() -> None:
    assert "put-key-policy" in build({"resources": {"kmsKeyArns": [KEY]}}).aws_cli
    assert "put-key-policy" not in build({"resources": {"s3Buckets": ["bkt"]}}).aws_cli


def test_instructions_are_stable() -> None:
    spec = {"resources": {"s3Buckets": ["bkt"], "kmsKeyArns": [KEY]}}
    assert build(spec) == build(spec)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param(
            {},
            "In the AWS account that owns the resources, create an IAM role named "
            "delegated-aws-prod.ingest with",
            id="account-unknown",
        ),
        pytest.param(
            {"roleArn": ROLE},
            f"In AWS account {CUSTOMER}, create an IAM role named reader with",
            id="account-from-role-arn",
        ),
        pytest.param(
            {"roleArn": ROLE_WITH_PATH},
            f"In AWS account {CUSTOMER}, create an IAM role named reader under the "
            "path /service-role/team/ with",
            id="path-from-role-arn",
        ),
    ],
)
def test_first_step_names_account_role_and_path(
    spec: dict[str, Any], fragment: str
) -> None:
    assert build(spec).steps[0].startswith(f"1. {fragment}")


def test_no_path_option_for_a_role_at_the_root() -> None:
    create = words(build({"roleArn": ROLE}).aws_cli)[0]
    assert "--path" not in create
