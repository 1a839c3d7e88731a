"""Generate the Customer CustomResourceDefinition (schema, CEL rules, printer columns) from the tiers table.

`python -m clawhost_api.crd > crds/customer.crd.yaml` writes the committed file; a test fails when
the two differ or when the schema and the pydantic models in `customer.py` disagree on a field.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import yaml

from clawhost_api.customer import CATEGORIES, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from clawhost_api.tiers import THINKING_ORDER, TIER_ORDER, load_tiers

Schema = dict[str, Any]

MAX_NAME_LENGTH = 54  # "customer-" + name must fit a 63-character namespace name


def _str(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _obj(
    description: str,
    properties: dict[str, Schema],
    required: list[str] | None = None,
    validations: list[Schema] | None = None,
) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = required
    if validations:
        schema["x-kubernetes-validations"] = validations
    return schema


def _cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


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
    max_users = max(tier.telegram_users_max for tier in load_tiers().values())
    secret_ref = _obj(
        "The Secret (in namespace clawhost-secrets) that holds the Telegram bot token; the token itself never "
        "appears in a Customer.",
        {
            "name": _str("Name of the Secret in the clawhost-secrets namespace.", minLength=1, maxLength=253),
            "key": _str(
                "Key within the Secret whose value is the bot token.", default="token", minLength=1, maxLength=253
            ),
        },
        required=["name"],
    )
    telegram = _obj(
        "Telegram channel of the agent.",
        {
            "botTokenSecretRef": secret_ref,
            "allowedUserIds": {
                "type": "array",
                "description": "Numeric Telegram user ids allowed to message the agent (DM allowlist); how many "
                "depends on the tier.",
                "minItems": 1,
                "maxItems": max_users,
                "x-kubernetes-list-type": "set",
                "items": {
                    "type": "integer",
                    "format": "int64",
                    "minimum": 1,
                    "description": "A Telegram user id (a positive integer).",
                },
            },
        },
        required=["botTokenSecretRef", "allowedUserIds"],
    )
    all_models = sorted({model for tier in load_tiers().values() for model in tier.models})
    agent = _obj(
        "How the agent thinks.",
        {
            "model": _str(
                f"Model id, one of the tier's models ({', '.join(all_models)}); empty means the tier's default.",
                enum=all_models,
            ),
            "thinking": _str(
                "Thinking level, at most the tier's own; empty means the tier's level.", enum=list(THINKING_ORDER)
            ),
        },
    )
    billing = _obj(
        "How the customer pays. Immutable: to comp a paying customer, create a new Customer.",
        {
            "mode": _str(
                "stripe: the gateway runs while the Stripe subscription is in good standing (see "
                "status.billing); none: comped, internal or GitOps-only, runs without Stripe.",
                enum=["stripe", "none"],
                default="stripe",
            )
        },
        validations=[{"rule": "self.mode == oldSelf.mode", "message": "spec.billing.mode is immutable"}],
    )
    billing["default"] = {"mode": "stripe"}
    return _obj(
        "Desired state of a customer's agent. Owned by git or the dashboard; billing never writes it.",
        {
            "tier": _str("Plan: " + ", ".join(TIER_ORDER) + ".", enum=list(TIER_ORDER)),
            "telegram": telegram,
            "agent": agent,
            "suspend": {
                "type": "boolean",
                "default": False,
                "description": "Manual switch: true scales the gateway to zero replicas; namespace and data are kept.",
            },
            "billing": billing,
        },
        required=["tier", "telegram"],
        validations=_spec_rules(),
    )


def _status_schema() -> Schema:
    timestamp = {"type": "string", "format": "date-time"}
    condition = _obj(
        "A standard Kubernetes condition.",
        {
            "type": _str("Ready, Reconciling or Stalled."),
            "status": _str("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _str("One CamelCase word saying why."),
            "message": _str("Human-readable details."),
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The metadata.generation this condition was computed from.",
            },
            "lastTransitionTime": {**timestamp, "description": "When status last changed."},
        },
        required=["type", "status", "reason", "lastTransitionTime"],
    )
    tiers = list(TIER_ORDER)
    billing = _obj(
        "Stripe facts, written only by the billing webhooks; the operator reads them to decide what runs.",
        {
            "customerId": _str("Stripe customer id (cus_...)."),
            "subscriptionId": _str("Stripe subscription id (sub_...)."),
            "state": _str(
                "Stripe subscription status.",
                enum=[
                    "incomplete",
                    "incomplete_expired",
                    "trialing",
                    "active",
                    "past_due",
                    "canceled",
                    "unpaid",
                    "paused",
                ],
            ),
            "currentPeriodStart": {**timestamp, "description": "Start of the current billing period."},
            "currentPeriodEnd": {**timestamp, "description": "End of the current billing period."},
            "paidTier": _str("The tier the subscription pays for.", enum=tiers),
            "lastEventAt": {
                **timestamp,
                "description": "Creation time of the newest Stripe event applied (order safety).",
            },
            "lastEventId": _str("Id of the newest Stripe event applied."),
        },
    )
    status = _obj(
        "Observed state, written by the operator (and status.billing by billing).",
        {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The metadata.generation the operator last acted on; 0 until it has.",
                # A new Customer reads status.observedGeneration 0 (behind metadata.generation) until the operator
                # writes its first status: kstatus (Flux) sees it in progress from its first moment, not Current.
                "default": 0,
            },
            "phase": _str(
                "Summary: AwaitingPayment, Provisioning, Running, Suspended, Destroyed or Failed.",
                enum=["AwaitingPayment", "Provisioning", "Running", "Suspended", "Destroyed", "Failed"],
            ),
            "namespace": _str("The namespace holding the gateway (customer-<name>)."),
            "conditions": {
                "type": "array",
                "description": "Ready, Reconciling and Stalled (kstatus conventions).",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "applied": _obj(
                "What the operator last applied.",
                {
                    "tier": _str("Effective tier of the running gateway.", enum=tiers),
                    "replicas": {
                        "type": "integer",
                        "description": "Replicas of the gateway Deployment (0 when suspended).",
                    },
                    "configHash": _str("Hash of the rendered gateway inputs; a change restarts the pod."),
                },
            ),
            "proxyToken": _obj(
                "The token proxy's view of this customer's credential (never the token itself).",
                {
                    "hash": _str("sha256:<hex> of the current proxy token; empty once revoked."),
                    "rotatedAt": {**timestamp, "description": "When the token was last issued."},
                },
            ),
            "billing": billing,
        },
    )
    status["default"] = {}  # so that the defaults inside it apply to a Customer nobody has written status for
    return status


def build_crd() -> Schema:
    """The whole CustomResourceDefinition object."""
    root = _obj(
        "A customer of clawhost: one always-on OpenClaw agent on Telegram, run in its own namespace.",
        {
            "apiVersion": _str("APIVersion of this object."),
            "kind": _str("Kind of this object."),
            "metadata": {"type": "object"},
            "spec": _spec_schema(),
            "status": _status_schema(),
        },
        required=["spec"],
        validations=[
            {
                "rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                "message": f"name must be at most {MAX_NAME_LENGTH} characters (it becomes namespace customer-<name>)",
            },
            {
                "rule": "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
                "message": "name must be lowercase letters, digits and '-', starting and ending with a letter or digit",
            },
        ],
    )
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
