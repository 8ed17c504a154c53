"""The CRD schema and the pydantic models describe the same API.

Status fields the schema lacks are pruned by the API server (field case F12);
spec fields the models lack are silently ignored. Both directions are checked
by name, recursively, in the API's camelCase.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from delegated_aws.models import Spec, Status

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "delegatedawssecrets.yaml"
# kubectl apply keeps the whole object in an annotation of at most this size.
ANNOTATION_LIMIT = 262144


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through Optional, tuple and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, typing.Annotated):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None


def model_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        names.add(path)
        nested = _model_in(field.annotation)
        if nested is not None:
            names |= model_fields(nested, f"{path}.")
    return names


def schema_fields(schema: dict[str, Any], prefix: str = "") -> set[str]:
    names = set()
    node = schema.get("items", schema)
    for name, child in (node.get("properties") or {}).items():
        path = f"{prefix}{name}"
        names.add(path)
        names |= schema_fields(child, f"{path}.")
    return names


def _without_descriptions(schema: dict[str, Any], path: str = "<root>") -> list[str]:
    missing = [] if "description" in schema else [path]
    node = schema.get("items", schema)
    for name, child in (node.get("properties") or {}).items():
        if name != "metadata":  # The API server documents metadata itself.
            missing += _without_descriptions(child, f"{path}.{name}")
    return missing


@pytest.mark.parametrize(
    ("part", "model"), [("spec", Spec), ("status", Status)], ids=["spec", "status"]
)
def test_schema_and_model_have_the_same_fields(
    part: str, model: type[BaseModel]
) -> None:
    schema = _schema()["properties"][part]

    assert schema_fields(schema) == model_fields(model)


def test_status_fields_include_nested_lists_and_objects() -> None:
    # Guards the walker itself: a flat comparison would miss pruned children.
    fields = model_fields(Status)

    assert {
        "credentials.specFingerprint",
        "accessChecks.reason",
        "conditions.lastTransitionTime",
        "trustedPrincipal.trustPrincipal",
        "instructions.kmsKeyPolicyStatement",
    } <= fields


def test_every_field_has_a_description() -> None:
    assert _without_descriptions(_schema()) == []


def test_crd_is_well_under_the_annotation_limit() -> None:
    size = len(CRD_FILE.read_bytes())

    assert size < ANNOTATION_LIMIT // 4
