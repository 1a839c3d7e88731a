"""Generate the Customer CustomResourceDefinition: its schema from the pydantic models in `customer.py`, plus
what only the CRD says (CEL rules from the tiers table, defaults the API server applies, printer columns).

`python -m clawhost_api.crd > crds/customer.crd.yaml` writes the committed file; a test fails when the two differ.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel

from clawhost_api import heartbeat
from clawhost_api.customer import (
    CATEGORIES,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    BillingSpec,
    CustomerSpec,
    CustomerStatus,
    HeartbeatSpec,
    SecretKeyRef,
)
from clawhost_api.tiers import THINKING_ORDER, load_tiers

Schema = dict[str, Any]

_LOW, _HIGH = f"{heartbeat.MIN_MINUTES}m", f"{heartbeat.MAX_MINUTES // 60}h"  # heartbeat cadences, as CEL durations
MAX_NAME_LENGTH = 54  # "customer-" + name must fit a 63-character namespace name

# What pydantic's JSON Schema says that a structural CRD schema must not (or need not) say.
_DROPPED_KEYS = frozenset({"$defs", "title", "additionalProperties", "default"})
# The order keys are written in, so the YAML reads a field's type and meaning first.
_KEY_ORDER = ("type", "format", "description", "default", "properties")


def _cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def _structural(schema: Schema, defs: dict[str, Schema]) -> Schema:
    """One node of pydantic's JSON Schema as a structural CRD schema: references inlined, `X | None` as X
    (absent, never null, in a Customer), no titles; a field's own description wins over its model's docstring."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        schema = {**target, **{key: value for key, value in schema.items() if key != "$ref"}}
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option != {"type": "null"}]
        if len(options) != 1:
            raise ValueError(f"a CRD field has one type, not {schema['anyOf']}")
        schema = {**_structural(options[0], defs), **{k: v for k, v in schema.items() if k != "anyOf"}}
    out: Schema = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            value = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key == "items":
            value = _structural(value, defs)
        elif key == "description":
            value = " ".join(value.split())
        out[key] = value
    return _ordered(out)


def _ordered(schema: Schema) -> Schema:
    first = {key: schema[key] for key in _KEY_ORDER if key in schema}
    return {**first, **{key: value for key, value in schema.items() if key not in first}}


def model_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of a Customer part, field for field from its pydantic model."""
    generated = model.model_json_schema(by_alias=True)
    return _structural(generated, generated.get("$defs", {}))


def _add_by_hand(schema: Schema, additions: dict[str, Schema]) -> Schema:
    """Merge what the models cannot say (defaults the API server applies, CEL rules, list semantics) into the
    generated schema. Paths are dotted field names, `[]` for a list's items; a path that no longer exists is an
    error, so a renamed field cannot silently lose its rule."""
    for path, extra in additions.items():
        node = schema
        for part in path.split(".") if path else ():
            name, is_items = (part[:-2], True) if part.endswith("[]") else (part, False)
            if name not in node.get("properties", {}):
                raise KeyError(f"{path}: no field {name!r} in the generated schema")
            node = node["properties"][name]
            if is_items:
                node = node["items"]
        node.update(extra)
        node_ordered = _ordered(node)
        node.clear()
        node.update(node_ordered)
    return schema


def _spec_rules() -> list[Schema]:
    """Per-tier limits as CEL, each with a message a person can act on."""
    rules: list[Schema] = []
    for name, tier in load_tiers().items():
        limit = tier.telegram_users_max
        rules.append(
            {
                "rule": f"self.tier != '{name}' || size(self.telegram.allowedUserIds) <= {limit}",
                "message": f"the {tier.display_name} tier allows at most {limit} Telegram user "
                f"id{'s' if limit > 1 else ''}; upgrade the tier or remove ids",
                "fieldPath": ".telegram.allowedUserIds",
            }
        )
        allowed_levels = [level for level in THINKING_ORDER if tier.allows_thinking(level)]
        rules.append(
            {
                "rule": f"!has(self.agent) || !has(self.agent.thinking) || self.tier != '{name}' "
                f"|| self.agent.thinking in {_cel_list(allowed_levels)}",
                "message": f"the {tier.display_name} tier allows thinking levels {', '.join(allowed_levels)}",
                "fieldPath": ".agent.thinking",
            }
        )
        rules.append(
            {
                "rule": f"!has(self.agent) || !has(self.agent.model) || self.tier != '{name}' "
                f"|| self.agent.model in {_cel_list(list(tier.models))}",
                "message": f"the {tier.display_name} tier offers the models {', '.join(tier.models)}",
                "fieldPath": ".agent.model",
            }
        )
    return rules


def _spec_schema() -> Schema:
    tiers = load_tiers().values()
    all_models = sorted({model for tier in tiers for model in tier.models})
    return _add_by_hand(
        model_schema(CustomerSpec),
        {
            "": {"x-kubernetes-validations": _spec_rules()},
            # One value, replaced whole by whoever writes it: as a `set`, each id was owned by the manager that
            # wrote it, so the dashboard could never remove an id the Customer was created with.
            "telegram.allowedUserIds": {
                "maxItems": max(tier.telegram_users_max for tier in tiers),
                "x-kubernetes-list-type": "atomic",
                "x-kubernetes-validations": [
                    {"rule": "self.all(id, self.exists_one(other, other == id))", "message": "ids must be distinct"}
                ],
            },
            "telegram.allowedUserIds[]": {"format": "int64"},
            "telegram.botTokenSecretRef.key": {"default": SecretKeyRef.model_fields["key"].default},
            # The tiers table, not the model's type, lists the models.
            "agent.model": {
                "enum": all_models,
                "description": f"Model id, one of the tier's models ({', '.join(all_models)}); empty means the "
                "tier's default.",
            },
            "suspend": {"default": CustomerSpec.model_fields["suspend"].default},
            "dashboardSuspend": {"default": CustomerSpec.model_fields["dashboard_suspend"].default},
            "billing": {
                "default": BillingSpec().model_dump(by_alias=True),
                "x-kubernetes-validations": [
                    {"rule": "self.mode == oldSelf.mode", "message": "spec.billing.mode is immutable"}
                ],
            },
            "billing.mode": {"default": BillingSpec.model_fields["mode"].default},
            # Off unless chosen; the whole object, because the rules below are checked against the default itself.
            # Atomic: one value, replaced whole by whoever writes it (as a granular map, a window set when the
            # Customer was created stayed owned by its creator, and the dashboard could not remove it).
            "heartbeat": {
                "default": HeartbeatSpec().model_dump(by_alias=True, exclude_none=True),
                "x-kubernetes-map-type": "atomic",
            },
            "heartbeat.every": {
                "default": heartbeat.OFF,
                "x-kubernetes-validations": [
                    {
                        "rule": f"self == '{heartbeat.OFF}' || "
                        f"(duration(self) >= duration('{_LOW}') && duration(self) <= duration('{_HIGH}'))",
                        "message": f"heartbeat cadence must be 0m (off) or from {_LOW} to {_HIGH}",
                    }
                ],
            },
            "heartbeat.lightContext": {"default": HeartbeatSpec.model_fields["light_context"].default},
            "heartbeat.isolatedSession": {"default": HeartbeatSpec.model_fields["isolated_session"].default},
            "heartbeat.activeHours": {
                "x-kubernetes-validations": [
                    {"rule": "self.start != self.end", "message": "active hours start and end must differ"}
                ]
            },
        },
    )


def _status_schema() -> Schema:
    return _add_by_hand(
        model_schema(CustomerStatus),
        {
            # {} so that the defaults inside it apply to a Customer nobody has written status for.
            "": {"default": {}},
            # A new Customer reads status.observedGeneration 0 (behind metadata.generation) until the operator
            # writes its first status: kstatus (Flux) sees it in progress from its first moment, not Current.
            "observedGeneration": {"format": "int64", "default": 0},
            "conditions": {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
            "conditions[].observedGeneration": {"format": "int64"},
            "applied.activeTelegramUserIds[]": {"format": "int64"},
            "applied.inactiveTelegramUserIds[]": {"format": "int64"},
        },
    )


def build_crd() -> Schema:
    """The whole CustomResourceDefinition object."""
    root: Schema = {
        "type": "object",
        "description": "A customer of clawhost: one always-on OpenClaw agent on Telegram, run in its own namespace.",
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": _spec_schema(),
            "status": _status_schema(),
        },
        "required": ["spec"],
        "x-kubernetes-validations": [
            {
                "rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                "message": f"name must be at most {MAX_NAME_LENGTH} characters (it becomes namespace customer-<name>)",
            },
            {
                "rule": "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
                "message": "name must be lowercase letters, digits and '-', starting and ending with a letter or digit",
            },
        ],
    }
    ready = '.status.conditions[?(@.type=="Ready")]'
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "clawhost"},
            "annotations": {
                "argocd.argoproj.io/sync-options": "Prune=false,ServerSideApply=true",
                "kustomize.toolkit.fluxcd.io/prune": "disabled",
                "helm.sh/resource-policy": "keep",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": KIND,
                "plural": PLURAL,
                "singular": SINGULAR,
                "listKind": f"{KIND}List",
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": root},
                    "additionalPrinterColumns": [
                        {"name": "Tier", "type": "string", "jsonPath": ".spec.tier"},
                        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
                        {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason"},
                        {"name": "Namespace", "type": "string", "jsonPath": ".status.namespace"},
                        {"name": "Billing", "type": "string", "jsonPath": ".status.billing.state", "priority": 1},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    header = "# Generated by `python -m clawhost_api.crd` from crds/clawhost_api; do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render_crd_yaml())
