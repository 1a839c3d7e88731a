"""One source of truth: the committed CRD is what crd.py generates, and the pydantic models match its fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from clawhost_api.crd import build_crd, render_crd_yaml
from clawhost_api.customer import CustomerSpec, CustomerStatus

REPO = Path(__file__).resolve().parents[2]


def test_committed_crd_is_generated() -> None:
    committed = (REPO / "crds" / "customer.crd.yaml").read_text()
    assert committed == render_crd_yaml(), "run `make crds` and commit crds/customer.crd.yaml"


def _model_fields(model: type[BaseModel]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        annotation = info.annotation
        nested = None
        for candidate in (*getattr(annotation, "__args__", ()), annotation):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested = candidate
        fields[alias] = _model_fields(nested) if nested else None
    return fields


def _schema_fields(schema: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        target = prop.get("items", prop) if prop.get("type") == "array" else prop
        fields[name] = _schema_fields(target) if "properties" in target else None
    return fields


def test_models_and_schema_have_the_same_fields() -> None:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    assert _model_fields(CustomerSpec) == _schema_fields(root["spec"])
    assert _model_fields(CustomerStatus) == _schema_fields(root["status"])


def test_every_schema_field_has_a_description() -> None:
    def walk(schema: dict[str, Any], path: str) -> list[str]:
        missing = [] if schema.get("description") or path.endswith(("metadata", "apiVersion", "kind")) else [path]
        for name, prop in schema.get("properties", {}).items():
            missing += walk(prop.get("items", prop) if prop.get("type") == "array" else prop, f"{path}.{name}")
        return missing

    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(root["properties"]["spec"], "spec") == []
