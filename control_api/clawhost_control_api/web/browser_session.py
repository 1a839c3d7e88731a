"""Browser sessions: the refresh token in an HttpOnly cookie, the CSRF token, and whose browser this is.

The refresh token lives only in an HttpOnly, SameSite=Strict cookie (Secure and `__Host-` prefixed whenever the
site's public URL is https), so no script ever reads it. A page's script asks `POST /session/token` for an access
token and keeps it in memory. Every cookie-authenticated write carries the CSRF token (a form field or the
`X-CSRF-Token` header) that must equal the CSRF cookie, and must not come from another site (`Sec-Fetch-Site`,
`Origin`).
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from clawhost_control_api.api.state import AppState
from clawhost_control_api.core.config import Settings
from clawhost_control_api.core.errors import ApiError
from clawhost_control_api.core.security import InvalidTokenError
from clawhost_control_api.db import accounts

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


class CsrfRefusedError(ApiError):
    status_code = 403

    def __init__(self) -> None:
        super().__init__("this page has expired or the request did not come from it: reload the page and try again")


@dataclass(frozen=True)
class CookiePolicy:
    """Names and attributes of the site's two cookies. Secure (and `__Host-`: no Domain, Path=/, so no sibling
    subdomain can plant one) unless the site is served over plain HTTP on the local machine."""

    secure: bool
    session_max_age: int

    @property
    def session_cookie(self) -> str:
        return "__Host-clawhost_session" if self.secure else "clawhost_session"

    @property
    def csrf_cookie(self) -> str:
        return "__Host-clawhost_csrf" if self.secure else "clawhost_csrf"

    @classmethod
    def from_settings(cls, settings: Settings) -> CookiePolicy:
        return cls(secure=serves_https(settings), session_max_age=settings.refresh_token_ttl_seconds)

    def set_session(self, response: Response, refresh_token: str) -> None:
        response.set_cookie(
            self.session_cookie,
            refresh_token,
            max_age=self.session_max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(self.session_cookie, path="/", secure=self.secure, httponly=True, samesite="strict")

    def set_csrf(self, response: Response, token: str) -> None:
        # A browser-session cookie; the page hands the same value to its script in a <meta> tag.
        response.set_cookie(self.csrf_cookie, token, path="/", secure=self.secure, httponly=True, samesite="strict")


def serves_https(settings: Settings) -> bool:
    return urlsplit(settings.public_url).scheme == "https"


def csrf_token_for(request: Request, policy: CookiePolicy) -> tuple[str, bool]:
    """The browser's CSRF token and whether it is new (then the response must set the cookie)."""
    existing = request.cookies.get(policy.csrf_cookie, "")
    if _TOKEN_SHAPE.match(existing):
        return existing, False
    return secrets.token_urlsafe(32), True


def check_csrf(request: Request, policy: CookiePolicy, submitted: str | None) -> None:
    """Refuse a cookie-authenticated write that another site could have made; CsrfRefusedError (403) if so."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise CsrfRefusedError
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise CsrfRefusedError  # also "null": a sandboxed or privacy-sensitive context
    expected = request.cookies.get(policy.csrf_cookie, "")
    if not submitted or not _TOKEN_SHAPE.match(expected) or not hmac.compare_digest(submitted, expected):
        raise CsrfRefusedError


@dataclass(frozen=True)
class BrowserSession:
    user: accounts.User
    session_id: uuid.UUID


async def browser_session(request: Request, state: AppState, policy: CookiePolicy) -> BrowserSession | None:
    """The signed-in user of this browser, from its session cookie, or None; reads, never consumes, the token.

    A page reached from another site (back from Stripe Checkout, a link in an email) arrives without the
    SameSite=Strict cookie even when the browser is signed in; see `needs_same_site_reload`."""
    token = request.cookies.get(policy.session_cookie)
    if not token:
        return None
    try:
        claims = state.issuer.decode(token, "refresh")
        user_id, session_id = uuid.UUID(claims.subject), uuid.UUID(claims.session_id)
    except (InvalidTokenError, ValueError):
        return None
    user = await accounts.refresh_token_user(state.pool, session_id, user_id, claims.token_id)
    return BrowserSession(user, session_id) if user is not None else None


def needs_same_site_reload(request: Request, policy: CookiePolicy) -> bool:
    """True for a top-level navigation from another site that brought no session cookie: the browser holds back
    SameSite=Strict cookies on it, so a page that needs the user answers with a same-site reload instead of
    sending a signed-in person to the login page (`templates/reload.html`)."""
    return (
        request.headers.get("sec-fetch-site") == "cross-site"
        and policy.session_cookie not in request.cookies
        and request.method == "GET"
    )


def safe_next(target: str | None, default: str) -> str:
    """A same-site path to go to after signing in: never another host (`//evil`, `/\\evil`, `https://...`)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return default
    if any(ord(c) < 0x20 for c in target):
        return default
    return target
