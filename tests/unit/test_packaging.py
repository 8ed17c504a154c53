"""The image and the manifests, checked statically (no container engine here).

The Dockerfile runs the console script as a non-root user; deploy/ names the
image the Dockerfile says it builds; the Deployment probes the endpoints the
operator serves, bounds its resources and drops every privilege.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, argument) pairs of the final stage."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = text.splitlines()
    pairs = [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line.strip() and not line.startswith("#")
    ]
    last_from = max(i for i, (op, _) in enumerate(pairs) if op == "FROM")
    return pairs[last_from:]


def _instruction(name: str) -> str:
    (found,) = [arg for op, arg in _dockerfile() if op == name]
    return found


def _deployment() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "base" / "deployment.yaml").read_text()))


def _container() -> dict[str, Any]:
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_image_runs_as_a_numeric_non_root_user() -> None:
    user = _instruction("USER").split(":")[0]

    assert user.isdigit() and int(user) != 0


def test_image_is_slim() -> None:
    assert _instruction("FROM").endswith("-slim")


def test_entrypoint_is_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

    entrypoint = yaml.safe_load(_instruction("ENTRYPOINT"))

    assert entrypoint == ["delegated-aws"]
    assert scripts["delegated-aws"] == "delegated_aws.cli:main"
    assert yaml.safe_load(_instruction("CMD")) == ["run"]


def test_deploy_names_the_image_the_dockerfile_builds() -> None:
    comment = (ROOT / "Dockerfile").read_text()
    kustomization = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]

    reference = f"{image['newName']}:{image['newTag']}"

    assert image["name"] == _container()["image"]
    assert f"({reference})" in comment
    assert re.search(rf"refers to it as {re.escape(image['name'])}\b", comment)
    assert f'image.title="{image["name"]}"' in _instruction("LABEL")
    assert f'image.version="{image["newTag"]}"' in _instruction("LABEL")


def test_exposed_ports_match_the_deployment() -> None:
    exposed = {int(p) for p in _instruction("EXPOSE").split()}
    declared = {p["containerPort"] for p in _container()["ports"]}

    assert exposed == declared == {8080, 8081}


def test_probes_hit_the_endpoints_the_operator_serves() -> None:
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}

    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    startup = container["startupProbe"]["httpGet"]

    assert (liveness["path"], ports[liveness["port"]]) == ("/healthz", 8081)
    assert startup == liveness
    assert (readiness["path"], ports[readiness["port"]]) == ("/readyz", 8080)
    assert env["DELEGATED_AWS_METRICS_PORT"] == "8080"
    assert env["DELEGATED_AWS_HEALTH_PORT"] == "8081"


def test_resources_are_bounded() -> None:
    resources = _container()["resources"]

    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


def test_security_context_is_restrictive() -> None:
    pod = _deployment()["spec"]["template"]["spec"]["securityContext"]
    container = _container()["securityContext"]

    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == int(_instruction("USER").split(":")[0])
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_only_tmp_is_writable() -> None:
    mounts = _container()["volumeMounts"]

    assert [m["mountPath"] for m in mounts] == ["/tmp"]


def test_every_rbac_rule_is_commented() -> None:
    text = (DEPLOY / "base" / "rbac.yaml").read_text()
    lines = text.splitlines()

    rule_lines = [i for i, line in enumerate(lines) if "- apiGroups:" in line]

    assert rule_lines
    assert all(lines[i - 1].strip().startswith("#") for i in rule_lines)
