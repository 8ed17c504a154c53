"""The CRD's admission patterns and the operator's own validation agree.

Both sides must accept and refuse the same values, or a spec admitted by the
API server would be refused by the operator (or the reverse). Each sample is
checked against the CRD's pattern and length bounds and against parse_spec.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from delegated_aws.durations import DURATION_PATTERN
from delegated_aws.models import InvalidSpecError, parse_spec

CRD = Path(__file__).resolve().parents[2] / "crds" / "delegatedawssecrets.yaml"
SPEC = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"][
    "openAPIV3Schema"
]["properties"]["spec"]

SAMPLES: dict[str, list[str]] = {
    "roleArn": [
        "", "arn:aws:iam::123456789012:role/reader",
        "arn:aws-cn:iam::123456789012:role/team/a/reader",
        "arn:aws:iam::123456789012:user/bob", "arn:aws:iam::1234:role/x",
        "arn:aws:iam::123456789012:role/" + "r" * 65,
        "arn:aws:iam::123456789012:role/café",
    ],
    "externalId": ["ab", "a", "x" * 1224, "x" * 1225, "id:with/slash@x", "a b", "éé"],
    "region": ["eu-west-1", "us-gov-west-1", "eusc-de-east-1", "EU-WEST-1", "eu-west"],
    "roleSessionName": ["ok-name", "a", "x" * 64, "x" * 65, "ns/name", "a:b", "café"],
    "secret.mountPath": [
        "/var/run/secrets/delegated-aws", "relative", "/with space", "/a;b", "/$(x)",
        "/", "//", "/a/../b", "/a/./b", "/..", "/a/..b", "/a/b.", "/.hidden",
    ],
    "secret.name": ["acme-aws", "Acme", "a" * 253, "a" * 254, "a_b"],
    "resources.s3Buckets[]": [
        "acme-raw", "s3://acme-raw/data/2026", "acme.raw.events", "a..b",
        "s3://a.-b/x", "a-.b", "192.168.1.1", "s3://10.0.0.1/p", "1.2.3.4.5",
        "xn--abc", "sthree-x", "amzn-s3-demo-bucket", "data-s3alias",
        "s3://logs--ol-s3/x", "x.mrap", "tbl--table-s3", "ok/path/a..b", "Upper",
    ],
}  # fmt: skip


def _schema(path: str) -> dict[str, Any]:
    """The schema of ``path``; a trailing ``[]`` means an item of that array."""
    node = SPEC
    for part in path.removesuffix("[]").split("."):
        node = node["properties"][part]
    return dict(node["items"] if path.endswith("[]") else node)


def _pattern(schema: dict[str, Any]) -> str:
    """The field's pattern, or the regex of a CEL ``self.matches('...')`` rule."""
    if "pattern" in schema:
        return str(schema["pattern"])
    for rule in schema.get("x-kubernetes-validations", []):
        found = re.fullmatch(r"self\.matches\('(.*)'\)", rule["rule"])
        if found:
            return found[1].replace("\\\\", "\\")
    return ".*"


def _refusals(schema: dict[str, Any]) -> list[str]:
    """The regexes of the field's CEL ``!self.matches('...')`` rules."""
    found = (
        re.fullmatch(r"!self\.matches\('(.*)'\)", rule["rule"])
        for rule in schema.get("x-kubernetes-validations", [])
    )
    return [match[1].replace("\\\\", "\\") for match in found if match]


def _admitted(schema: dict[str, Any], value: str) -> bool:
    # Go's RE2 and Python agree on these patterns; \w is ASCII in both.
    pattern = re.compile(_pattern(schema), re.ASCII)
    return (
        schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 10**9)
        and pattern.search(value) is not None
        and not any(re.search(r, value, re.ASCII) for r in _refusals(schema))
    )


def _spec(path: str, value: str) -> dict[str, Any]:
    leaf: Any = [value] if path.endswith("[]") else value
    head, _, tail = path.removesuffix("[]").partition(".")
    return {head: {tail: leaf}} if tail else {head: leaf}


def _accepted(path: str, value: str) -> bool:
    try:
        parse_spec(_spec(path, value))
    except InvalidSpecError:
        return False
    return True


@pytest.mark.parametrize(
    ("path", "value"),
    [(path, value) for path, values in SAMPLES.items() for value in values],
    ids=[
        f"{path}={value[:24]!r}" for path, values in SAMPLES.items() for value in values
    ],
)
def test_admission_and_operator_agree(path: str, value: str) -> None:
    assert _admitted(_schema(path), value) == _accepted(path, value)


@pytest.mark.parametrize("path", ["sessionDuration", "refresh.before"])
def test_durations_reach_cel_only_in_the_operators_form(path: str) -> None:
    schema = _schema(path)
    assert schema["pattern"] == DURATION_PATTERN
    # The CEL rule gives way to the pattern, so duration() never sees junk.
    guard = f"!self.matches('{DURATION_PATTERN}') || ("
    assert all(
        rule["rule"].startswith(guard) for rule in schema["x-kubernetes-validations"]
    )
