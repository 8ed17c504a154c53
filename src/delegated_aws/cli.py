"""The ``delegated-aws`` command (also ``kubectl delegated-aws``).

``run`` starts the operator; ``instructions``, ``status`` and ``refresh`` read
and nudge resources through the current kubeconfig; ``sandbox`` runs the whole
flow on a local control plane against an emulated AWS account.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from delegated_aws.models import GROUP, PLURAL, REFRESH_ANNOTATION, VERSION

if TYPE_CHECKING:
    from delegated_aws.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        result: int = args.command(args)
    except _api_errors() as error:
        # A person typed a name or namespace: say what was not found, briefly.
        print(f"delegated-aws: {describe(error, args)}", file=sys.stderr)
        return 1
    return result


def _api_errors() -> tuple[type[Exception], ...]:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    return ApiException, ConfigException


def describe(error: Exception, args: argparse.Namespace) -> str:
    """One line for a person: what failed, and where to look."""
    from kubernetes.config.config_exception import ConfigException

    if isinstance(error, ConfigException):
        return f"no usable kubeconfig ({error}); set KUBECONFIG"
    status = getattr(error, "status", None)
    namespace = getattr(args, "namespace", None)
    where = f"namespace {namespace!r}" if namespace else "the current namespace"
    if getattr(args, "all_namespaces", False):
        where = "any namespace"
    if status == 404:
        name = getattr(args, "name", None)
        if name:
            return (
                f"DelegatedAWSSecret {name!r} not found in {where}; check the "
                "name, or pass -n NAMESPACE"
            )
        return f"no DelegatedAWSSecrets API in {where}; apply crds/ first"
    if status == 403:
        return f"forbidden in {where} by RBAC for the current kubeconfig user"
    reason = getattr(error, "reason", None) or str(error)
    return f"the API server said: {reason}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delegated-aws",
        description="Delegated cross-account AWS roles as Kubernetes Secrets.",
    )
    verbs = parser.add_subparsers(title="commands")
    run = verbs.add_parser("run", help="run the operator")
    _run_flags(run)
    run.set_defaults(command=_run)
    sandbox = verbs.add_parser("sandbox", help="the whole flow on this machine")
    sandbox.add_argument(
        "--keep", action="store_true", help="leave everything running until Ctrl-C"
    )
    sandbox.add_argument("--env-file", help="with --keep: write shell exports here")
    sandbox.set_defaults(command=_sandbox)
    for verb, helptext, handler in (
        ("instructions", "print what the customer must do", _instructions),
        ("refresh", "ask for new credentials now", _refresh),
    ):
        sub = verbs.add_parser(verb, help=helptext)
        sub.add_argument("name")
        sub.add_argument("-n", "--namespace", default=None)
        sub.set_defaults(command=handler)
    status = verbs.add_parser("status", help="list resources and their state")
    status.add_argument("-n", "--namespace", default=None)
    status.add_argument("-A", "--all-namespaces", action="store_true")
    status.set_defaults(command=_status)
    return parser


def _run_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        help="watch only this namespace (repeatable)",
    )
    run.add_argument(
        "--selector",
        dest="label_selector",
        help="serve only resources with these labels (sharding)",
    )
    run.add_argument("--default-region")
    run.add_argument("--trust-principal", choices=["account", "principal"])
    run.add_argument(
        "--forbid-external-id-override",
        action="store_const",
        const=False,
        dest="allow_external_id_override",
    )
    run.add_argument(
        "--allow-unenforced-external-id",
        action="store_const",
        const=False,
        dest="require_external_id_enforcement",
    )
    run.add_argument("--min-refresh-margin", help="a duration such as 17m")
    run.add_argument("--iam-propagation-grace", help="a duration such as 2m")
    run.add_argument("--sts-concurrency", type=int)
    run.add_argument("--log-format", choices=["text", "json"])
    run.add_argument("--metrics-port", type=int, help="/metrics and /readyz")
    run.add_argument("--health-port", type=int, help="kopf's liveness /healthz")
    run.add_argument("--watch-timeout", help="server-side watch timeout, e.g. 5m")
    run.add_argument("--deaf-after", help="liveness fails after this much silence")
    run.add_argument("--peering", help="kopf peering name for HA replicas")
    run.add_argument("--peering-priority", type=int)


# Every Settings field has a flag of the same name; unit tests hold this true.
RUN_FLAGS = (
    "namespaces",
    "label_selector",
    "default_region",
    "trust_principal",
    "allow_external_id_override",
    "require_external_id_enforcement",
    "min_refresh_margin",
    "iam_propagation_grace",
    "sts_concurrency",
    "log_format",
    "metrics_port",
    "health_port",
    "watch_timeout",
    "deaf_after",
    "peering",
    "peering_priority",
)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The environment, overridden by whichever flags were given."""
    from delegated_aws.settings import Settings

    given = {k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k) is not None}
    return Settings(**given)


def _run(args: argparse.Namespace) -> int:
    from delegated_aws.operator import run

    run(settings_from_args(args))
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from delegated_aws.devenv.sandbox import main as sandbox_main

    return sandbox_main(keep=args.keep, env_file=args.env_file)


def _api(args: argparse.Namespace) -> tuple[Any, str]:
    """The API and the namespace to use: ``-n``, else the context's own."""
    from kubernetes import client, config

    config.load_kube_config()
    if not args.namespace:
        _, active = config.list_kube_config_contexts()
        args.namespace = (active or {}).get("context", {}).get("namespace", "default")
    return client.CustomObjectsApi(), args.namespace


def _instructions(args: argparse.Namespace) -> int:
    api, namespace = _api(args)
    body = api.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, args.name
    )
    status = body.get("status") or {}
    sys.stdout.write(render_instructions(status))
    return 0 if status.get("instructions") else 1


def render_instructions(status: dict[str, Any]) -> str:
    """Status instructions as a person reads them, JSON ready to paste."""
    found = status.get("instructions")
    if not found:
        return "No instructions yet: is the operator running?\n"
    principal = status.get("trustedPrincipal", {})
    lines = [
        f"External ID:        {status.get('externalId', '')}",
        f"Trusted principal:  {principal.get('trustPrincipal', '')}",
        f"Role name:          {found.get('roleName', '')}",
        f"Max session:        {found.get('maxSessionDuration', '')} seconds",
        "",
        "Steps:",
        *(f"  {step}" for step in found.get("steps", [])),
        "",
        "Trust policy:",
        found.get("trustPolicy", ""),
    ]
    for title, key in (
        ("Permissions policy:", "permissionsPolicy"),
        ("KMS key policy statement:", "kmsKeyPolicyStatement"),
    ):
        if found.get(key):
            lines += ["", title, found[key]]
    lines += ["", "AWS CLI:", found.get("awsCli", ""), ""]
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    api, namespace = _api(args)
    if args.all_namespaces:
        items = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
    else:
        items = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
            "items"
        ]
    rows = [("NAMESPACE", "NAME", "READY", "REASON", "EXPIRES")]
    rows += [_status_row(item) for item in items]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


def _status_row(item: dict[str, Any]) -> tuple[str, str, str, str, str]:
    status = item.get("status") or {}
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions", []) if c["type"] == "Ready"), {}
    )
    return (
        item["metadata"]["namespace"],
        item["metadata"]["name"],
        ready.get("status", "Unknown"),
        ready.get("reason", ""),
        (status.get("credentials") or {}).get("expiration", ""),
    )


def _refresh(args: argparse.Namespace) -> int:
    api, namespace = _api(args)
    # Microseconds: the operator compares this with status lastRefreshTime.
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"metadata": {"annotations": {REFRESH_ANNOTATION: stamp}}}
    api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, args.name, patch
    )
    print(json.dumps({"refreshRequested": stamp, "name": args.name}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
