"""`GET /dashboard`: the page a customer comes back to, rendered complete from the Customer cache (so it reads
right before its script runs, and without one), then kept live by `static/js/dashboard.js` over `/agent/events`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from clawhost_api.customer import Customer
from clawhost_api.tiers import TIER_ORDER
from clawhost_control_api.api.deps import State
from clawhost_control_api.api.routes.usage import UsageUnavailableError, usage_of
from clawhost_control_api.api.state import AppState
from clawhost_control_api.dashboard.live import CLUSTER_DOWN, USAGE_DOWN, agent_payload, usage_payload
from clawhost_control_api.web.browser_session import browser_session
from clawhost_control_api.web.pages import cookie_policy, same_site_reload
from clawhost_control_api.web.pricing import plans
from clawhost_control_api.web.templating import render

router = APIRouter(include_in_schema=False)

# The one word above the headline, per state (also what the page's script writes).
STATE_WORDS = {
    "running": "Running",
    "starting": "Starting",
    "suspended": "Suspended",
    "payment_needed": "Payment needed",
    "cancelled": "Cancelled",
    "failed": "Needs attention",
    "no_agent": "No agent yet",
}


@router.get("/dashboard")
async def dashboard(request: Request, state: State, checkout: str | None = None) -> Response:
    reload = same_site_reload(request, state)
    if reload is not None:
        return reload
    policy = cookie_policy(state)
    session = await browser_session(request, state, policy)
    if session is None:
        return RedirectResponse("/login?next=/dashboard", status_code=303)
    agent = agent_payload(session.user, state.cache)
    usage, usage_ok = await _usage(state, agent)
    context = {
        **_context(agent),
        "usage": usage,
        "health_messages": [
            m
            for ok, m in ((state.cache is not None and state.cache.reachable, CLUSTER_DOWN), (usage_ok, USAGE_DOWN))
            if not ok
        ],
        "checkout_result": checkout if checkout in ("success", "cancelled") else None,
    }
    return render(request, "dashboard.html", policy, session, context)


async def _usage(state: AppState, agent: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    if agent["agent"] is None or state.cache is None:
        return None, True
    raw = state.cache.get(agent["agent"]["name"])
    if raw is None:
        return None, True
    try:
        return usage_payload(await usage_of(state, Customer.model_validate(raw))), True
    except UsageUnavailableError:
        return None, False


def _context(agent: dict[str, Any]) -> dict[str, Any]:
    view = agent["agent"]
    status = agent["status"]
    context: dict[str, Any] = {"status": status, "state_words": STATE_WORDS, "has_agent": view is not None}
    if view is None:
        return context
    plan, choices = agent["plan"], agent["choices"]
    directions = plan["directions"]
    context.update(
        current_plan=plan["current"],
        renewal=plan["renewal"],
        pending_change=plan["pending"],
        plan_choices=[{**vars(p), "direction": directions[p.name]} for p in plans() if p.name in TIER_ORDER],
        suspended=view["suspended"],
        settings={
            "allowed_users": ", ".join(str(i) for i in view["allowed_user_ids"]),
            "inactive": ", ".join(str(i) for i in view["inactive_user_ids"]),
            "users_max": choices["users_max"],
            "models": choices["models"],
            "levels": choices["levels"],
            "model": view["model"],
            "thinking": view["thinking"],
        },
    )
    return context
