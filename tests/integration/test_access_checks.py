"""Access checks with the new credentials (F20), on the real control plane.

Emulated by moto: S3 buckets and the identity-policy evaluation of the assumed
role's permissions. Supplied by the emulator layer: the cross-account trust.
"""

from __future__ import annotations

from tests.fixtures.operator import Customer, OperatorRunner, Resources


def _buckets(customer: Customer, *names: str) -> None:
    s3 = customer.session.client("s3", endpoint_url=customer.aws.endpoint_url)
    for name in names:
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="data/part-0.csv", Body=b"a,b\n")


def test_access_checks_name_the_action_and_resource_that_failed(
    run_operator: OperatorRunner, das: Resources, customer: Customer
) -> None:
    _buckets(customer, "acme-open", "acme-closed")
    run_operator()
    das.create("reader", {
        "resources": {"s3Buckets": ["s3://acme-open/data", "acme-closed"]},
        "accessChecks": {"enabled": True},
    })  # fmt: skip
    status = das.wait_status("reader", "instructions")
    # The customer grants only the first bucket, whatever the instructions say.
    only_open = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": "arn:aws:s3:::acme-open"},
            {"Effect": "Allow", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::acme-open/*"},
        ],
    }  # fmt: skip
    role_arn = customer.create_role(
        status["instructions"]["trustPolicy"], permissions=only_open
    )

    das.patch_spec("reader", {"roleArn": role_arn})

    found = das.wait_condition("reader", "AccessVerified", status="False",
                               reason="AccessCheckFailed")  # fmt: skip
    assert "s3:ListBucket on arn:aws:s3:::acme-closed" in found["message"]
    checks = {
        (c["action"], c["resource"]): c["result"]
        for c in das.status("reader")["accessChecks"]
    }
    assert checks[("s3:ListBucket", "arn:aws:s3:::acme-open")] == "Passed"
    assert checks[("s3:ListBucket", "arn:aws:s3:::acme-closed")] == "Failed"
    assert not any("s3://" in resource for _, resource in checks)
    # The credentials work for what was granted: the Secret is there and Ready.
    assert das.condition("reader", "Ready")["status"] == "True"  # type: ignore[index]
    assert das.secret("reader") is not None
