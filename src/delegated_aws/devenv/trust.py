"""Pure evaluation of an IAM role trust policy for ``sts:AssumeRole``.

This module owns the AWS semantics that moto 5.2 does not apply faithfully
when one principal assumes a role: which principals a trust policy names,
how ``Allow`` and ``Deny`` statements combine, and how the string condition
operators treat ``sts:ExternalId`` -- including the case that matters most to
the operator: a request *without* an ExternalId never satisfies
``StringEquals``/``StringLike``, while the negated operators do match a
missing key.

Semantics implemented (per the IAM policy evaluation documentation):

* an explicit ``Deny`` wins over any ``Allow``; no matching ``Allow`` is an
  implicit deny;
* ``Action``/``NotAction`` match case-insensitively with ``*``/``?`` wildcards;
* ``Principal: {"AWS": ...}``: a bare 12-digit account id or
  ``arn:PARTITION:iam::ACCOUNT:root`` trusts every IAM principal of that
  account; a user or role ARN trusts that user or sessions of that role; an
  ``assumed-role`` session ARN trusts exactly that session; ``"*"`` trusts
  anyone. ``NotPrincipal`` is rejected as unsupported;
* condition keys are case-insensitive; values of one operator/key are ORed,
  operators and keys are ANDed; ``...IfExists`` matches a missing key;
  ``ForAnyValue:``/``ForAllValues:`` treat a single-valued key as a set.

Nothing here performs I/O; the emulator feeds it the role's policy document
and the request context.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

ASSUME_ROLE_ACTION: Final = "sts:AssumeRole"

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):(?P<service>iam|sts)::(?P<account>\d{12}):"
    r"(?P<resource>.+)$"
)


class UnsupportedPolicyError(ValueError):
    """The policy uses a construct this evaluator deliberately does not model."""


class PrincipalMatch(enum.Enum):
    """How a statement's principal matched the caller."""

    ACCOUNT = "account"
    EXACT = "exact"
    ANYONE = "anyone"


class Outcome(enum.Enum):
    """Final result of evaluating a whole trust policy."""

    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"


@dataclass(frozen=True)
class TrustDecision:
    """The evaluation result; ``principal_match`` is set when allowed."""

    outcome: Outcome
    principal_match: PrincipalMatch | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED


@dataclass(frozen=True)
class Caller:
    """A parsed IAM principal ARN (user, role, assumed-role session or root)."""

    arn: str
    partition: str
    account_id: str
    kind: str
    name: str
    session: str | None = None

    @classmethod
    def parse(cls, arn: str) -> Caller:
        match = _ARN.match(arn)
        if match is None:
            raise ValueError(f"not an IAM principal ARN: {arn!r}")
        resource = match["resource"]
        kind, _, rest = resource.partition("/")
        if kind == "assumed-role":
            name, _, session = rest.partition("/")
            return cls(arn, match["partition"], match["account"], kind, name, session)
        return cls(arn, match["partition"], match["account"], kind, rest)


@dataclass(frozen=True)
class RequestContext:
    """The request facts a trust policy can test."""

    caller_arn: str
    external_id: str | None = None
    role_session_name: str | None = None
    action: str = ASSUME_ROLE_ACTION
    extra_keys: Mapping[str, str] = field(default_factory=dict)

    def condition_values(self) -> dict[str, str]:
        """Condition context keys (lower-cased) present in this request."""
        caller = Caller.parse(self.caller_arn)
        values = {k.lower(): v for k, v in self.extra_keys.items()}
        values["aws:principalarn"] = _principal_arn(caller)
        values["aws:principalaccount"] = caller.account_id
        if self.external_id is not None:
            values["sts:externalid"] = self.external_id
        if self.role_session_name is not None:
            values["sts:rolesessionname"] = self.role_session_name
        return values


def evaluate_trust_policy(
    policy: str | Mapping[str, Any], context: RequestContext
) -> TrustDecision:
    """Decide whether ``context`` may assume a role with trust ``policy``."""
    statements = _statements(_load(policy))
    allow: PrincipalMatch | None = None
    for statement in statements:
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise UnsupportedPolicyError(f"invalid Effect: {effect!r}")
        match = _statement_applies(statement, context)
        if match is None:
            continue
        if effect == "Deny":
            return TrustDecision(Outcome.EXPLICIT_DENY)
        allow = _stronger(allow, match)
    if allow is None:
        return TrustDecision(Outcome.IMPLICIT_DENY)
    return TrustDecision(Outcome.ALLOWED, allow)


def _load(policy: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(policy, str):
        loaded = json.loads(policy)
        if not isinstance(loaded, dict):
            raise UnsupportedPolicyError("policy document must be a JSON object")
        return loaded
    return policy


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = document.get("Statement", [])
    items = [raw] if isinstance(raw, dict) else list(raw)
    if not all(isinstance(item, dict) for item in items):
        raise UnsupportedPolicyError("every Statement must be an object")
    return items


def _stronger(current: PrincipalMatch | None, new: PrincipalMatch) -> PrincipalMatch:
    """Prefer an exact principal match (it waives the identity-policy check)."""
    if current is PrincipalMatch.EXACT or new is PrincipalMatch.EXACT:
        return PrincipalMatch.EXACT
    return current or new


def _statement_applies(
    statement: Mapping[str, Any], context: RequestContext
) -> PrincipalMatch | None:
    """The principal match if the statement covers this request, else None."""
    if "NotPrincipal" in statement:
        raise UnsupportedPolicyError("NotPrincipal is not supported")
    if not _action_matches(statement, context.action):
        return None
    match = _principal_matches(statement.get("Principal"), context.caller_arn)
    if match is None:
        return None
    conditions = statement.get("Condition", {})
    if not conditions_match(conditions, context.condition_values()):
        return None
    return match


# -- actions -----------------------------------------------------------------


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not _any_glob(_as_list(statement["NotAction"]), action, fold=True)
    if "Action" not in statement:
        raise UnsupportedPolicyError("statement has neither Action nor NotAction")
    return _any_glob(_as_list(statement["Action"]), action, fold=True)


# -- principals --------------------------------------------------------------


def _principal_matches(principal: Any, caller_arn: str) -> PrincipalMatch | None:
    if principal == "*":
        return PrincipalMatch.ANYONE
    if not isinstance(principal, dict):
        raise UnsupportedPolicyError(f"unsupported Principal: {principal!r}")
    caller = Caller.parse(caller_arn)
    best: PrincipalMatch | None = None
    for entry in _as_list(principal.get("AWS", [])):
        match = _aws_principal_match(str(entry), caller)
        if match is not None:
            best = _stronger(best, match)
    return best


def _aws_principal_match(entry: str, caller: Caller) -> PrincipalMatch | None:
    if entry == "*":
        return PrincipalMatch.ANYONE
    if _ACCOUNT_ID.match(entry):
        return PrincipalMatch.ACCOUNT if entry == caller.account_id else None
    try:
        named = Caller.parse(entry)
    except ValueError:
        return None
    if named.partition != caller.partition or named.account_id != caller.account_id:
        return None
    if named.kind == "root" and named.name == "":
        return PrincipalMatch.ACCOUNT
    return PrincipalMatch.EXACT if _same_principal(named, caller) else None


def _same_principal(named: Caller, caller: Caller) -> bool:
    if named.kind == "assumed-role":
        return caller.kind == "assumed-role" and named.arn == caller.arn
    if named.kind == "role" and caller.kind == "assumed-role":
        return named.name.rsplit("/", 1)[-1] == caller.name
    if named.kind != caller.kind:
        return False
    return named.name.rsplit("/", 1)[-1] == caller.name.rsplit("/", 1)[-1]


def _principal_arn(caller: Caller) -> str:
    """``aws:PrincipalArn``: for a session, the ARN of the role it belongs to."""
    if caller.kind == "assumed-role":
        return f"arn:{caller.partition}:iam::{caller.account_id}:role/{caller.name}"
    return caller.arn


# -- conditions --------------------------------------------------------------

_Matcher = Callable[[str, Sequence[str]], bool]


def _equals(value: str, expected: Sequence[str]) -> bool:
    return value in expected


def _equals_ignore_case(value: str, expected: Sequence[str]) -> bool:
    return value.casefold() in {item.casefold() for item in expected}


def _like(value: str, expected: Sequence[str]) -> bool:
    return _any_glob(expected, value, fold=False)


# operator name (lower-case) -> (matcher, negated)
_OPERATORS: Final[dict[str, tuple[_Matcher, bool]]] = {
    "stringequals": (_equals, False),
    "stringnotequals": (_equals, True),
    "stringequalsignorecase": (_equals_ignore_case, False),
    "stringnotequalsignorecase": (_equals_ignore_case, True),
    "stringlike": (_like, False),
    "stringnotlike": (_like, True),
}


def conditions_match(
    conditions: Mapping[str, Any], request_values: Mapping[str, str]
) -> bool:
    """AND over operators and keys; each key ORs over its listed values."""
    if not isinstance(conditions, dict):
        raise UnsupportedPolicyError("Condition must be an object")
    lowered = {k.lower(): v for k, v in request_values.items()}
    for operator, keys in conditions.items():
        if not isinstance(keys, dict):
            raise UnsupportedPolicyError(f"operator {operator} needs a key map")
        for key, expected in keys.items():
            value = lowered.get(key.lower())
            if not _condition_matches(operator, value, expected=_as_strings(expected)):
                return False
    return True


def _condition_matches(
    operator: str, value: str | None, expected: Sequence[str]
) -> bool:
    qualifier, _, name = operator.rpartition(":")
    name = name.lower()
    if name == "null":
        return _null_matches(value, expected)
    if_exists = name.endswith("ifexists")
    base = name.removesuffix("ifexists")
    if base not in _OPERATORS:
        raise UnsupportedPolicyError(f"unsupported condition operator: {operator}")
    if value is None and if_exists:
        return True
    matcher, negated = _OPERATORS[base]
    if qualifier:
        return _set_matches(
            qualifier.lower(),
            value,
            expected=expected,
            matcher=matcher,
            negated=negated,
        )
    if value is None:
        return negated
    return matcher(value, expected) != negated


def _set_matches(
    qualifier: str,
    value: str | None,
    expected: Sequence[str],
    matcher: _Matcher,
    negated: bool,
) -> bool:
    values = [] if value is None else [value]
    results = [matcher(item, expected) != negated for item in values]
    if qualifier == "foranyvalue":
        return any(results)
    if qualifier == "forallvalues":
        return all(results)
    raise UnsupportedPolicyError(f"unsupported set qualifier: {qualifier}")


def _null_matches(value: str | None, expected: Sequence[str]) -> bool:
    wants_missing = [item.lower() == "true" for item in expected]
    return (value is None) in wants_missing


# -- helpers -----------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _as_strings(value: Any) -> list[str]:
    return [_scalar_text(item) for item in _as_list(value)]


def _scalar_text(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item)


def _any_glob(patterns: Sequence[Any], value: str, *, fold: bool) -> bool:
    return any(_glob(str(pattern), value, fold=fold) for pattern in patterns)


def _glob(pattern: str, value: str, *, fold: bool) -> bool:
    """IAM wildcard match: ``*`` is any run of characters, ``?`` exactly one."""
    regex = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern
    )
    flags = re.IGNORECASE | re.DOTALL if fold else re.DOTALL
    return re.fullmatch(regex, value, flags) is not None
