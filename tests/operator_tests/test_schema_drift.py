"""One source of truth: the committed CRD is what crd.py generates from the pydantic models, and every field a
person can `kubectl explain` has a description."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clawhost_api.crd import _add_by_hand, build_crd, model_schema, render_crd_yaml
from clawhost_api.customer import CustomerSpec, CustomerStatus

REPO = Path(__file__).resolve().parents[2]


def test_committed_crd_is_generated() -> None:
    committed = (REPO / "crds" / "customer.crd.yaml").read_text()
    assert committed == render_crd_yaml(), "run `make crds` and commit crds/customer.crd.yaml"


def _schema_fields(schema: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        target = prop.get("items", prop) if prop.get("type") == "array" else prop
        fields[name] = _schema_fields(target) if "properties" in target else None
    return fields


def test_schema_fields_are_the_models_fields() -> None:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    assert _schema_fields(root["spec"]) == _schema_fields(model_schema(CustomerSpec))
    assert _schema_fields(root["status"]) == _schema_fields(model_schema(CustomerStatus))
    assert "tier" in root["spec"]["properties"]
    assert "state" in root["status"]["properties"]["billing"]["properties"]


def test_enums_come_from_the_literal_types() -> None:
    status = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == [
        "AwaitingPayment",
        "Provisioning",
        "Running",
        "Suspended",
        "Destroyed",
        "Failed",
    ]
    assert "unpaid" in status["billing"]["properties"]["state"]["enum"]


def test_an_addition_for_a_field_that_is_gone_is_an_error() -> None:
    with pytest.raises(KeyError, match="renamedField"):
        _add_by_hand(model_schema(CustomerSpec), {"telegram.renamedField": {"default": 1}})


def test_every_schema_field_has_a_description() -> None:
    def walk(schema: dict[str, Any], path: str) -> list[str]:
        missing = [] if schema.get("description") or path.endswith(("metadata", "apiVersion", "kind")) else [path]
        for name, prop in schema.get("properties", {}).items():
            missing += walk(prop.get("items", prop) if prop.get("type") == "array" else prop, f"{path}.{name}")
        return missing

    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(root, "") == []
