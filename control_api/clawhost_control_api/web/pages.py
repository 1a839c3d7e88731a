"""The site's pages: landing, pricing, sign up, log in, log out, the onboarding chat, and the route that gives a
page's script its access token."""

from __future__ import annotations

import math
import re
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel

from clawhost_control_api.api.client_ip import client_ip
from clawhost_control_api.api.deps import State
from clawhost_control_api.api.routes.auth import EMAIL_PATTERN, create_account, log_in, open_session
from clawhost_control_api.api.state import AppState
from clawhost_control_api.core.errors import BusyError, RateLimitedError
from clawhost_control_api.db import accounts
from clawhost_control_api.web.browser_session import (
    CSRF_FIELD,
    CSRF_HEADER,
    BrowserSession,
    CookiePolicy,
    CsrfRefusedError,
    browser_session,
    check_csrf,
    needs_same_site_reload,
    safe_next,
)
from clawhost_control_api.web.pricing import plans
from clawhost_control_api.web.templating import render

router = APIRouter(include_in_schema=False)
token_router = APIRouter(tags=["site"])

MIN_PASSWORD = 10
MAX_PASSWORD = 256
_EMAIL_SHAPE = re.compile(EMAIL_PATTERN)


def cookie_policy(state: AppState) -> CookiePolicy:
    return CookiePolicy.from_settings(state.settings)


async def _page(request: Request, state: AppState, template: str, **context: object) -> Response:
    policy = cookie_policy(state)
    session = await browser_session(request, state, policy)
    return render(request, template, policy, session, context)


@router.get("/")
async def landing(request: Request, state: State) -> Response:
    return await _page(request, state, "landing.html", plans=plans())


@router.get("/pricing")
async def pricing(request: Request, state: State) -> Response:
    return await _page(request, state, "pricing.html", plans=plans())


def same_site_reload(request: Request, state: AppState) -> Response | None:
    """For a page that needs the user: the same-site reload a cross-site arrival without the session cookie gets
    (back from Stripe Checkout the browser withholds the SameSite=Strict cookie), else None."""
    policy = cookie_policy(state)
    if needs_same_site_reload(request, policy):
        return render(request, "reload.html", policy, None)
    return None


@router.get("/chat")
async def chat(request: Request, state: State) -> Response:
    # Anonymous chat may start before sign-up: the page is the same, its script says who is signed in.
    return same_site_reload(request, state) or await _page(request, state, "chat.html")


# Sign up and log in: plain forms (they work without script), answered with the page again and a sentence for
# every refusal. The sentences name what the person can do, never which half of the credentials was wrong.
def _refusal(error: Exception) -> tuple[str, int, dict[str, str]]:
    if isinstance(error, RateLimitedError):
        minutes = max(1, math.ceil(error.retry_after / 60))
        when = "a minute" if minutes == 1 else f"{minutes} minutes"
        return (
            f"Too many attempts. For your account's safety, wait {when} and try again.",
            429,
            error.headers,
        )
    if isinstance(error, BusyError):
        return "We are busy right now. Please try again in a few seconds.", 503, error.headers
    raise error


def _form_page(
    request: Request,
    state: AppState,
    template: str,
    email: str,
    next_path: str,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    # The password is never sent back; the email is, so the person need not type it again.
    response = render(
        request,
        template,
        cookie_policy(state),
        None,
        {"email": email, "next": next_path, "error": error, "min_password": MIN_PASSWORD},
        status_code,
    )
    response.headers.update(headers or {})
    return response


def _signed_in(state: AppState, target: str, refresh_token: str) -> Response:
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    cookie_policy(state).set_session(response, refresh_token)
    return response


def _csrf_refused(request: Request, state: AppState, template: str, email: str, next_path: str) -> Response:
    return _form_page(
        request,
        state,
        template,
        email,
        next_path,
        "This page had expired, so nothing was sent. Please try again.",
        status.HTTP_403_FORBIDDEN,
    )


@router.get("/signup")
async def signup_page(request: Request, state: State, next: str | None = None) -> Response:
    return _form_page(request, state, "signup.html", "", safe_next(next, "/chat"))


@router.post("/signup")
async def signup_form(
    request: Request,
    state: State,
    email: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    target = safe_next(next, "/chat")
    email = email.strip()
    try:
        check_csrf(request, cookie_policy(state), csrf_token)
    except CsrfRefusedError:
        return _csrf_refused(request, state, "signup.html", email, target)
    if not _EMAIL_SHAPE.match(email) or len(email) > 254:
        return _form_page(
            request, state, "signup.html", email, target, "Enter an email address, like name@example.com.", 422
        )
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return _form_page(
            request,
            state,
            "signup.html",
            email,
            target,
            f"Choose a password of {MIN_PASSWORD} to {MAX_PASSWORD} characters.",
            422,
        )
    try:
        user = await create_account(state, email, password, client_ip(request, state.settings.trusted_proxies))
    except HTTPException as error:
        if error.status_code != status.HTTP_409_CONFLICT:
            raise
        return _form_page(
            request,
            state,
            "signup.html",
            email,
            target,
            "This email cannot be used for a new account. If it is yours, log in instead.",
            409,
        )
    except (RateLimitedError, BusyError) as error:
        message, code, headers = _refusal(error)
        return _form_page(request, state, "signup.html", email, target, message, code, headers)
    pair = await open_session(state, user)
    return _signed_in(state, target, pair.refresh_token)


@router.get("/login")
async def login_page(request: Request, state: State, next: str | None = None) -> Response:
    return _form_page(request, state, "login.html", "", safe_next(next, ""))


@router.post("/login")
async def login_form(
    request: Request,
    state: State,
    email: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    email = email.strip()
    try:
        check_csrf(request, cookie_policy(state), csrf_token)
    except CsrfRefusedError:
        return _csrf_refused(request, state, "login.html", email, safe_next(next, ""))
    wrong = "Wrong email or password."
    if not _EMAIL_SHAPE.match(email) or len(email) > 254 or len(password) > MAX_PASSWORD:
        return _form_page(request, state, "login.html", email, safe_next(next, ""), wrong, 401)
    try:
        user, pair = await log_in(state, email, password, client_ip(request, state.settings.trusted_proxies))
    except HTTPException as error:
        if error.status_code != status.HTTP_401_UNAUTHORIZED:
            raise
        return _form_page(request, state, "login.html", email, safe_next(next, ""), wrong, 401)
    except (RateLimitedError, BusyError) as error:
        message, code, headers = _refusal(error)
        return _form_page(request, state, "login.html", email, safe_next(next, ""), message, code, headers)
    default = "/dashboard" if user.customer_name else "/chat"
    return _signed_in(state, safe_next(next, default), pair.refresh_token)


@router.post("/logout")
async def logout_form(
    request: Request,
    state: State,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = "",
) -> Response:
    policy = cookie_policy(state)
    try:
        check_csrf(request, policy, csrf_token)
    except CsrfRefusedError:
        session = await browser_session(request, state, policy)
        context = {"title": "Not logged out", "message": "This page had expired, so you are still logged in."}
        return render(request, "message.html", policy, session, context, status.HTTP_403_FORBIDDEN)
    session = await browser_session(request, state, policy)
    if session is not None:
        await accounts.revoke_session(state.pool, session.session_id)
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    policy.clear_session(response)
    return response


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


@token_router.post(
    "/session/token",
    responses={401: {"description": "Not signed in (no live session cookie)"}, 403: {"description": "CSRF"}},
)
async def session_token(request: Request, state: State) -> Response:
    """An access token for the page's script, from the browser's session cookie (never from the request body).

    Needs the `X-CSRF-Token` header (the page's `<meta name="csrf-token">`). The session cookie is read, not
    rotated: two tabs, or a page and the next one, asking at once must not look like a stolen token's reuse."""
    policy = cookie_policy(state)
    check_csrf(request, policy, request.headers.get(CSRF_HEADER))
    session: BrowserSession | None = await browser_session(request, state, policy)
    if session is None:
        response = JSONResponse({"detail": "not signed in: log in again"}, status_code=status.HTTP_401_UNAUTHORIZED)
        policy.clear_session(response)
        return response
    access = state.issuer.issue(str(session.user.id), str(session.session_id), "access")
    body = AccessToken(
        access_token=state.issuer.encode(access), expires_in=int(state.issuer.access_ttl.total_seconds())
    )
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store"})
