"""The pages' Jinja2 environment, the static files' versioned URLs, and `render`, which every page answers with."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from clawhost_control_api.web.browser_session import BrowserSession, CookiePolicy, csrf_token_for

WEB = Path(__file__).resolve().parent
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"
STATIC_PREFIX = "/static"


@cache
def static_versions() -> dict[str, str]:
    """Each static file's content hash: its URL carries it, so a browser may cache it for good (a changed file is
    a new URL)."""
    return {
        path.relative_to(STATIC).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted(STATIC.rglob("*"))
        if path.is_file()
    }


def static_url(path: str) -> str:
    version = static_versions().get(path)
    if version is None:
        raise KeyError(f"no static file {path!r} under {STATIC}")
    return f"{STATIC_PREFIX}/{path}?v={version}"


@cache
def templates() -> Jinja2Templates:
    engine = Jinja2Templates(directory=str(TEMPLATES))  # autoescapes .html
    engine.env.globals["static_url"] = static_url
    engine.env.trim_blocks = True
    engine.env.lstrip_blocks = True
    return engine


def render(
    request: Request,
    template: str,
    policy: CookiePolicy,
    session: BrowserSession | None,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page: the template with the signed-in user (or None) and the CSRF token its forms and script send back.
    Pages are never cached (they carry the CSRF token and the user's email)."""
    csrf, new_csrf = csrf_token_for(request, policy)
    values = {"user": session.user if session else None, "csrf_token": csrf, **(context or {})}
    response = templates().TemplateResponse(request, template, values, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    if new_csrf:
        policy.set_csrf(response, csrf)
    return response
