"""The two emulated AWS accounts the emulator creates at start-up.

This module owns the initial IAM state, written straight into moto's backends
before the server accepts requests (so no request ever runs without IAM
auth): the OPERATOR account with the operator's IAM user and the pod role that
emulates IRSA/Pod Identity sessions, and the CUSTOMER account with an
administrator user that creates the delegated role, policies and buckets.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Final

from moto.iam.models import iam_backends

OPERATOR_ACCOUNT_ID: Final = "111111111111"
CUSTOMER_ACCOUNT_ID: Final = "222222222222"
OPERATOR_USER: Final = "delegated-aws-operator"
POD_ROLE: Final = "delegated-aws-operator-pod"
CUSTOMER_ADMIN: Final = "customer-admin"
PARTITION: Final = "aws"


@dataclass(frozen=True)
class OperatorAccount:
    account_id: str
    user_arn: str
    access_key_id: str
    secret_access_key: str
    pod_role_arn: str


@dataclass(frozen=True)
class CustomerAccount:
    account_id: str
    admin_arn: str
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class Accounts:
    operator: OperatorAccount
    customer: CustomerAccount

    def to_json(self) -> dict[str, Any]:
        return {"operator": asdict(self.operator), "customer": asdict(self.customer)}


def _document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(actions: list[str] | str, resource: str = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


def _user_with_key(account_id: str, name: str, *, policy: str) -> tuple[str, str, str]:
    iam = iam_backends[account_id][PARTITION]
    user = iam.create_user(region_name="us-east-1", user_name=name)
    iam.put_user_policy(name, f"{name}-policy", policy)
    key = iam.create_access_key(name)
    return user.arn, key.access_key_id, key.secret_access_key


def _operator() -> OperatorAccount:
    user_arn, key_id, secret = _user_with_key(
        OPERATOR_ACCOUNT_ID,
        OPERATOR_USER,
        policy=_document(_allow(["sts:AssumeRole", "sts:GetCallerIdentity"])),
    )
    iam = iam_backends[OPERATOR_ACCOUNT_ID][PARTITION]
    trust = _document(
        {
            "Effect": "Allow",
            "Principal": {"AWS": user_arn},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    )
    role = iam.create_role(
        role_name=POD_ROLE,
        assume_role_policy_document=trust,
        path="/",
        permissions_boundary=None,
        description="Emulates the operator pod's IRSA/Pod Identity role",
        tags=[],
        max_session_duration="43200",
    )
    iam.put_role_policy(
        POD_ROLE,
        f"{POD_ROLE}-policy",
        _document(_allow(["sts:AssumeRole", "sts:GetCallerIdentity"])),
    )
    return OperatorAccount(OPERATOR_ACCOUNT_ID, user_arn, key_id, secret, role.arn)


def _customer() -> CustomerAccount:
    admin_arn, key_id, secret = _user_with_key(
        CUSTOMER_ACCOUNT_ID, CUSTOMER_ADMIN, policy=_document(_allow("*"))
    )
    return CustomerAccount(CUSTOMER_ACCOUNT_ID, admin_arn, key_id, secret)


def bootstrap_accounts() -> Accounts:
    """Create both accounts in moto's (already reset) backends."""
    return Accounts(_operator(), _customer())
