"""Trust-policy evaluation for sts:AssumeRole, case by documented case.

Every behaviour here is supplied by ``delegated_aws.devenv.trust`` (pure
Python); moto 5.2 gets several of these cases wrong, which is why it exists.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delegated_aws.devenv.trust import (
    Outcome,
    PrincipalMatch,
    RequestContext,
    UnsupportedPolicyError,
    evaluate_trust_policy,
)

OP = "111111111111"
CUST = "222222222222"
USER = f"arn:aws:iam::{OP}:user/delegated-aws-operator"
OTHER_USER = f"arn:aws:iam::{OP}:user/someone-else"
POD_ROLE = f"arn:aws:iam::{OP}:role/delegated-aws-operator-pod"
POD_SESSION = f"arn:aws:sts::{OP}:assumed-role/delegated-aws-operator-pod/pod-1"
STRANGER = f"arn:aws:iam::{CUST}:user/stranger"
EXT = "a1b2c3-external"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(
    principal: Any, condition: dict[str, Any] | None = None, action: Any = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": action or "sts:AssumeRole",
    }
    if condition is not None:
        statement["Condition"] = condition
    return statement


def deny(principal: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**allow(principal, condition), "Effect": "Deny"}


def ext_cond(operator: str, value: Any = EXT) -> dict[str, Any]:
    return {operator: {"sts:ExternalId": value}}


A, E, N = Outcome.ALLOWED, Outcome.EXPLICIT_DENY, Outcome.IMPLICIT_DENY

# (id, policy, caller ARN, external id, expected outcome)
CASES: list[tuple[str, dict[str, Any], str, str | None, Outcome]] = [
    # -- principals --------------------------------------------------------------
    ("account-id-principal-trusts-any-user-of-account",
     policy(allow({"AWS": OP})), USER, None, A),
    ("account-id-principal-trusts-role-session-of-account",
     policy(allow({"AWS": OP})), POD_SESSION, None, A),
    ("account-id-principal-rejects-other-account",
     policy(allow({"AWS": OP})), STRANGER, None, N),
    ("root-arn-principal-trusts-any-user-of-account",
     policy(allow({"AWS": f"arn:aws:iam::{OP}:root"})), USER, None, A),
    ("root-arn-principal-rejects-other-account",
     policy(allow({"AWS": f"arn:aws:iam::{OP}:root"})), STRANGER, None, N),
    ("root-arn-principal-other-partition-does-not-match",
     policy(allow({"AWS": f"arn:aws-cn:iam::{OP}:root"})), USER, None, N),
    ("user-arn-principal-trusts-that-user",
     policy(allow({"AWS": USER})), USER, None, A),
    ("user-arn-principal-rejects-other-user-same-account",
     policy(allow({"AWS": USER})), OTHER_USER, None, N),
    ("user-arn-with-path-principal-trusts-user",
     policy(allow({"AWS": f"arn:aws:iam::{OP}:user/ops/delegated-aws-operator"})),
     USER, None, A),
    ("role-arn-principal-trusts-sessions-of-that-role",
     policy(allow({"AWS": POD_ROLE})), POD_SESSION, None, A),
    ("role-arn-with-path-principal-trusts-sessions-of-that-role",
     policy(allow({"AWS": f"arn:aws:iam::{OP}:role/eks/delegated-aws-operator-pod"})),
     POD_SESSION, None, A),
    ("role-arn-principal-rejects-user-of-same-account",
     policy(allow({"AWS": POD_ROLE})), USER, None, N),
    ("role-arn-principal-rejects-session-of-other-role",
     policy(allow({"AWS": POD_ROLE})),
     f"arn:aws:sts::{OP}:assumed-role/other-role/pod-1", None, N),
    ("assumed-role-session-principal-trusts-exactly-that-session",
     policy(allow({"AWS": POD_SESSION})), POD_SESSION, None, A),
    ("assumed-role-session-principal-rejects-other-session",
     policy(allow({"AWS": POD_SESSION})),
     f"arn:aws:sts::{OP}:assumed-role/delegated-aws-operator-pod/pod-2", None, N),
    ("principal-list-any-entry-matches",
     policy(allow({"AWS": [f"arn:aws:iam::{CUST}:root", USER]})), USER, None, A),
    ("principal-list-no-entry-matches",
     policy(allow({"AWS": [CUST, f"arn:aws:iam::{CUST}:user/x"]})), USER, None, N),
    ("principal-star-string-trusts-anyone",
     policy(allow("*")), STRANGER, None, A),
    ("principal-aws-star-trusts-anyone",
     policy(allow({"AWS": "*"})), STRANGER, None, A),
    ("service-principal-does-not-trust-iam-users",
     policy(allow({"Service": "ec2.amazonaws.com"})), USER, None, N),
    ("federated-principal-does-not-trust-iam-users",
     policy(allow({"Federated": f"arn:aws:iam::{OP}:oidc-provider/x"})),
     USER, None, N),
    ("wildcard-inside-principal-arn-is-literal",
     policy(allow({"AWS": "arn:aws:iam::*:root"})), USER, None, N),
    # -- actions -----------------------------------------------------------------
    ("action-list-containing-assume-role",
     policy(allow({"AWS": OP}, action=["sts:TagSession", "sts:AssumeRole"])),
     USER, None, A),
    ("action-sts-star-wildcard",
     policy(allow({"AWS": OP}, action="sts:*")), USER, None, A),
    ("action-star-wildcard", policy(allow({"AWS": OP}, action="*")), USER, None, A),
    ("action-is-case-insensitive",
     policy(allow({"AWS": OP}, action="STS:assumerole")), USER, None, A),
    ("action-question-mark-wildcard",
     policy(allow({"AWS": OP}, action="sts:AssumeRol?")), USER, None, A),
    ("action-web-identity-only-does-not-cover-assume-role",
     policy(allow({"AWS": OP}, action="sts:AssumeRoleWithWebIdentity")),
     USER, None, N),
    ("action-tag-session-only-does-not-cover-assume-role",
     policy(allow({"AWS": OP}, action="sts:TagSession")), USER, None, N),
    ("not-action-excluding-other-action-covers-assume-role",
     policy({"Effect": "Allow", "Principal": {"AWS": OP},
             "NotAction": "sts:TagSession"}), USER, None, A),
    ("not-action-excluding-assume-role-does-not-cover-it",
     policy({"Effect": "Allow", "Principal": {"AWS": OP},
             "NotAction": "sts:Assume*"}), USER, None, N),
    # -- StringEquals on sts:ExternalId ------------------------------------------
    ("string-equals-external-id-matches",
     policy(allow({"AWS": OP}, ext_cond("StringEquals"))), USER, EXT, A),
    ("string-equals-external-id-wrong-value-denied",
     policy(allow({"AWS": OP}, ext_cond("StringEquals"))), USER, "wrong-id", N),
    ("string-equals-external-id-missing-denied",
     policy(allow({"AWS": OP}, ext_cond("StringEquals"))), USER, None, N),
    ("string-equals-external-id-is-case-sensitive",
     policy(allow({"AWS": OP}, ext_cond("StringEquals"))), USER, EXT.upper(), N),
    ("string-equals-condition-key-name-is-case-insensitive",
     policy(allow({"AWS": OP}, {"StringEquals": {"STS:externalid": EXT}})),
     USER, EXT, A),
    ("string-equals-operator-name-is-case-insensitive",
     policy(allow({"AWS": OP}, {"stringequals": {"sts:ExternalId": EXT}})),
     USER, EXT, A),
    ("string-equals-multiple-values-are-ored",
     policy(allow({"AWS": OP}, ext_cond("StringEquals", ["old-id", EXT]))),
     USER, EXT, A),
    ("string-equals-multiple-values-none-matches",
     policy(allow({"AWS": OP}, ext_cond("StringEquals", ["old-id", "new-id"]))),
     USER, EXT, N),
    ("string-equals-ignore-case-matches-other-case",
     policy(allow({"AWS": OP}, ext_cond("StringEqualsIgnoreCase"))),
     USER, EXT.upper(), A),
    ("string-equals-right-id-but-wrong-account-denied",
     policy(allow({"AWS": OP}, ext_cond("StringEquals"))), STRANGER, EXT, N),
    # -- StringLike ----------------------------------------------------------------
    ("string-like-star-matches-prefix",
     policy(allow({"AWS": OP}, ext_cond("StringLike", "a1b2*"))), USER, EXT, A),
    ("string-like-star-matches-empty-rest",
     policy(allow({"AWS": OP}, ext_cond("StringLike", f"{EXT}*"))), USER, EXT, A),
    ("string-like-question-mark-matches-one-char",
     policy(allow({"AWS": OP}, ext_cond("StringLike", "a1b2c?-external"))),
     USER, EXT, A),
    ("string-like-question-mark-needs-exactly-one-char",
     policy(allow({"AWS": OP}, ext_cond("StringLike", "a1b2c??-external"))),
     USER, EXT, N),
    ("string-like-no-match-denied",
     policy(allow({"AWS": OP}, ext_cond("StringLike", "zz*"))), USER, EXT, N),
    ("string-like-missing-key-denied",
     policy(allow({"AWS": OP}, ext_cond("StringLike", "*"))), USER, None, N),
    ("string-like-dot-is-literal-not-regex",
     policy(allow({"AWS": OP}, ext_cond("StringLike", "a.b"))), USER, "axb", N),
    # -- negated operators -------------------------------------------------------
    ("string-not-equals-different-value-matches",
     policy(allow({"AWS": OP}, ext_cond("StringNotEquals", "banned"))),
     USER, EXT, A),
    ("string-not-equals-same-value-does-not-match",
     policy(allow({"AWS": OP}, ext_cond("StringNotEquals"))), USER, EXT, N),
    ("string-not-equals-missing-key-matches",
     policy(allow({"AWS": OP}, ext_cond("StringNotEquals"))), USER, None, A),
    ("string-not-equals-multiple-values-must-match-none",
     policy(allow({"AWS": OP}, ext_cond("StringNotEquals", ["x-1", EXT]))),
     USER, EXT, N),
    ("string-not-like-different-value-matches",
     policy(allow({"AWS": OP}, ext_cond("StringNotLike", "zz*"))), USER, EXT, A),
    ("string-not-like-matching-value-does-not-match",
     policy(allow({"AWS": OP}, ext_cond("StringNotLike", "a1*"))), USER, EXT, N),
    ("string-not-like-missing-key-matches",
     policy(allow({"AWS": OP}, ext_cond("StringNotLike", "a1*"))), USER, None, A),
    # -- IfExists ----------------------------------------------------------------
    ("string-equals-if-exists-missing-key-matches",
     policy(allow({"AWS": OP}, ext_cond("StringEqualsIfExists"))), USER, None, A),
    ("string-equals-if-exists-right-value-matches",
     policy(allow({"AWS": OP}, ext_cond("StringEqualsIfExists"))), USER, EXT, A),
    ("string-equals-if-exists-wrong-value-denied",
     policy(allow({"AWS": OP}, ext_cond("StringEqualsIfExists"))), USER, "no", N),
    ("string-like-if-exists-missing-key-matches",
     policy(allow({"AWS": OP}, ext_cond("StringLikeIfExists", "a*"))),
     USER, None, A),
    ("string-not-equals-if-exists-same-value-does-not-match",
     policy(allow({"AWS": OP}, ext_cond("StringNotEqualsIfExists"))),
     USER, EXT, N),
    ("string-not-like-if-exists-missing-key-matches",
     policy(allow({"AWS": OP}, ext_cond("StringNotLikeIfExists", "a*"))),
     USER, None, A),
    # -- Null and set operators ----------------------------------------------------
    ("null-true-matches-missing-external-id",
     policy(allow({"AWS": OP}, ext_cond("Null", "true"))), USER, None, A),
    ("null-false-requires-external-id-present",
     policy(allow({"AWS": OP}, ext_cond("Null", False))), USER, None, N),
    ("null-false-with-external-id-present-matches",
     policy(allow({"AWS": OP}, ext_cond("Null", "false"))), USER, EXT, A),
    ("for-any-value-string-equals-missing-key-denied",
     policy(allow({"AWS": OP}, ext_cond("ForAnyValue:StringEquals"))),
     USER, None, N),
    ("for-all-values-string-equals-missing-key-matches",
     policy(allow({"AWS": OP}, ext_cond("ForAllValues:StringEquals"))),
     USER, None, A),
    # -- several operators and keys are ANDed --------------------------------------
    ("two-operators-both-satisfied",
     policy(allow({"AWS": OP}, {"StringEquals": {"sts:ExternalId": EXT},
                                "StringLike": {"aws:PrincipalArn": "*:user/*"}})),
     USER, EXT, A),
    ("two-operators-one-unsatisfied-denied",
     policy(allow({"AWS": OP}, {"StringEquals": {"sts:ExternalId": EXT},
                                "StringLike": {"aws:PrincipalArn": "*:role/*"}})),
     USER, EXT, N),
    ("two-keys-one-operator-both-needed",
     policy(allow({"AWS": OP}, {"StringEquals": {
         "sts:ExternalId": EXT, "aws:PrincipalAccount": CUST}})), USER, EXT, N),
    ("principal-arn-of-session-is-the-role-arn",
     policy(allow({"AWS": OP}, {"StringEquals": {"aws:PrincipalArn": POD_ROLE}})),
     POD_SESSION, None, A),
    ("unknown-condition-key-is-absent-from-context",
     policy(allow({"AWS": OP}, {"StringEquals": {"aws:SourceVpc": "vpc-1"}})),
     USER, EXT, N),
    # -- Allow / Deny combination --------------------------------------------------
    ("empty-statement-list-is-implicit-deny", policy(), USER, EXT, N),
    ("explicit-deny-wins-over-allow",
     policy(allow({"AWS": OP}), deny({"AWS": USER})), USER, EXT, E),
    ("explicit-deny-listed-first-still-wins",
     policy(deny({"AWS": "*"}), allow({"AWS": OP})), USER, EXT, E),
    ("deny-for-other-principal-does-not-apply",
     policy(allow({"AWS": OP}), deny({"AWS": OTHER_USER})), USER, None, A),
    ("deny-without-external-id-via-null-condition",
     policy(allow({"AWS": OP}), deny("*", ext_cond("Null", "true"))),
     USER, None, E),
    ("deny-with-unmet-condition-does-not-apply",
     policy(allow({"AWS": OP}), deny("*", ext_cond("StringNotEquals"))),
     USER, EXT, A),
    ("deny-only-policy-without-allow-is-explicit-deny",
     policy(deny({"AWS": OP})), USER, None, E),
    ("second-allow-statement-grants-when-first-conditions-fail",
     policy(allow({"AWS": OP}, ext_cond("StringEquals", "old")),
            allow({"AWS": OP}, ext_cond("StringEquals"))), USER, EXT, A),
    ("single-statement-object-instead-of-list",
     {"Version": "2012-10-17", "Statement": allow({"AWS": OP})}, USER, None, A),
]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "caller", "external_id", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_trust_policy_case(
    document: dict[str, Any], caller: str, external_id: str | None, expected: Outcome
) -> None:
    context = RequestContext(caller_arn=caller, external_id=external_id)
    assert evaluate_trust_policy(document, context).outcome is expected


def test_policy_may_be_a_json_string() -> None:
    document = '{"Statement": {"Effect": "Allow", "Principal": {"AWS": "111111111111"}'
    document += ', "Action": "sts:AssumeRole"}}'
    decision = evaluate_trust_policy(document, RequestContext(caller_arn=USER))
    assert decision.allowed


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ({"AWS": OP}, PrincipalMatch.ACCOUNT),
        ({"AWS": f"arn:aws:iam::{OP}:root"}, PrincipalMatch.ACCOUNT),
        ({"AWS": USER}, PrincipalMatch.EXACT),
        ({"AWS": [OP, USER]}, PrincipalMatch.EXACT),
        ("*", PrincipalMatch.ANYONE),
    ],
    ids=["account-id", "root-arn", "user-arn", "account-and-user", "star"],
)
def test_principal_match_kind_is_reported(
    principal: Any, expected: PrincipalMatch
) -> None:
    decision = evaluate_trust_policy(
        policy(allow(principal)), RequestContext(caller_arn=USER)
    )
    assert decision.principal_match is expected


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "NotPrincipal": {"AWS": OP}, "Action": "sts:AssumeRole"},
        allow({"AWS": OP}, {"NumericLessThan": {"sts:ExternalId": "3"}}),
        {"Effect": "Maybe", "Principal": {"AWS": OP}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": OP}},
    ],
    ids=["not-principal", "numeric-operator", "bad-effect", "no-action"],
)
def test_unsupported_constructs_are_rejected(statement: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedPolicyError):
        evaluate_trust_policy(policy(statement), RequestContext(caller_arn=USER))


@given(external_id=st.one_of(st.none(), st.text(min_size=0, max_size=30)))
def test_string_equals_and_not_equals_partition_every_request(
    external_id: str | None,
) -> None:
    """Exactly one of StringEquals / StringNotEquals holds when the key exists;
    when it is missing only the negated operator holds."""
    context = RequestContext(caller_arn=USER, external_id=external_id)
    equals = evaluate_trust_policy(
        policy(allow({"AWS": OP}, ext_cond("StringEquals"))), context
    ).allowed
    not_equals = evaluate_trust_policy(
        policy(allow({"AWS": OP}, ext_cond("StringNotEquals"))), context
    ).allowed
    assert equals is (external_id == EXT)
    assert not_equals is (external_id != EXT)
