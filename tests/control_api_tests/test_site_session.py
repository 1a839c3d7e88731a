"""The site's browser session over HTTP: cookie attributes, CSRF refusals, the access-token route, logout, and the
security headers on every answer (real PostgreSQL and Redis behind the app)."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

import pytest
from fastapi.testclient import TestClient

from clawhost_control_api.core.config import RateLimit, Settings
from clawhost_control_api.main import create_app
from clawhost_control_api.web.browser_session import safe_next

PASSWORD = "correct horse battery"
PAGES = ["/", "/pricing", "/login", "/signup", "/chat"]


def _csrf(client: TestClient, path: str = "/login") -> str:
    page = client.get(path)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def _sign_up(client: TestClient, email: str | None = None) -> str:
    email = email or f"u{uuid.uuid4().hex[:10]}@example.com"
    answer = client.post(
        "/signup",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(client, "/signup"), "next": "/pricing"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/pricing"
    return email


def _set_cookies(answer_headers: list[str], name: str) -> list[str]:
    return [h for h in answer_headers if h.startswith(f"{name}=")]


def test_pages_carry_the_security_headers_and_no_inline_script(client: TestClient) -> None:
    for path in [*PAGES, "/.well-known/jwks.json", "/no-such-page"]:
        answer = client.get(path)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self';" in csp, path
        assert "unsafe-inline" not in csp, path
        assert "unsafe-eval" not in csp, path
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in answer.headers  # plain HTTP on localhost
        if path in PAGES:
            assert answer.status_code == 200, path
            assert answer.headers["cache-control"] == "no-store"
            # No inline script, event handler or style attribute for the CSP to block.
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", answer.text), path
            assert not re.search(r"\son[a-z]+\s*=", answer.text), path
            assert not re.search(r"\sstyle\s*=", answer.text), path


def test_static_files_are_versioned_and_cached(client: TestClient) -> None:
    page = client.get("/").text
    css = re.search(r'href="(/static/css/site\.css\?v=[0-9a-f]{12})"', page)
    assert css, "the stylesheet's URL carries its content hash"
    answer = client.get(css.group(1))
    assert answer.status_code == 200
    assert "immutable" in answer.headers["cache-control"]
    assert answer.headers["content-security-policy"]  # static answers carry the headers too


def test_https_site_sends_hsts_and_host_prefixed_secure_cookies(settings: Settings) -> None:
    https = settings.model_copy(update={"public_url": "https://clawhost.example"})
    with TestClient(create_app(https), base_url="https://clawhost.example") as client:
        page = client.get("/login")
        assert page.headers["strict-transport-security"].startswith("max-age=")
        [csrf_cookie] = _set_cookies(page.headers.get_list("set-cookie"), "__Host-clawhost_csrf")
        assert "Secure" in csrf_cookie
        assert "HttpOnly" in csrf_cookie
        assert "SameSite=strict" in csrf_cookie
        email = f"u{uuid.uuid4().hex[:10]}@example.com"
        answer = client.post(
            "/signup",
            data={"email": email, "password": PASSWORD, "csrf_token": _csrf(client, "/signup")},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        [session_cookie] = _set_cookies(answer.headers.get_list("set-cookie"), "__Host-clawhost_session")
        for attribute in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
            assert attribute in session_cookie
        assert "Domain" not in session_cookie


def test_signup_sets_an_httponly_strict_session_cookie_on_localhost(client: TestClient) -> None:
    client.get("/signup")
    email = f"u{uuid.uuid4().hex[:10]}@example.com"
    answer = client.post(
        "/signup",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(client, "/signup")},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/chat"
    [cookie] = _set_cookies(answer.headers.get_list("set-cookie"), "clawhost_session")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on the local machine: a Secure cookie would never come back
    assert PASSWORD not in answer.text
    assert email in client.get("/pricing").text  # the header says who is signed in


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ({}, None),  # no token
        ({}, "x" * 43),  # a token that is not the cookie's
        ({"Origin": "https://evil.example"}, "cookie"),
        ({"Origin": "null"}, "cookie"),
        ({"Sec-Fetch-Site": "cross-site"}, "cookie"),
        ({"Sec-Fetch-Site": "same-site"}, "cookie"),
    ],
)
def test_cookie_authenticated_writes_refuse_forged_requests(
    client: TestClient, headers: dict[str, str], token: str | None
) -> None:
    email = _sign_up(client)
    csrf = _csrf(client)
    sent = csrf if token == "cookie" else token
    data = {"email": email, "password": PASSWORD, **({"csrf_token": sent} if sent else {})}
    login = client.post("/login", data=data, headers=headers, follow_redirects=False)
    assert login.status_code == 403
    assert "expired" in login.text
    assert "clawhost_session=" not in login.headers.get("set-cookie", "")
    token_headers = {**headers, **({"X-CSRF-Token": sent} if sent else {})}
    minted = client.post("/session/token", headers=token_headers)
    assert minted.status_code == 403
    assert "access_token" not in minted.text
    logout = client.post("/logout", data={"csrf_token": sent or ""}, headers=headers, follow_redirects=False)
    assert logout.status_code == 403
    # Still signed in: the forged logout did nothing.
    assert client.post("/session/token", headers={"X-CSRF-Token": csrf}).status_code == 200


def test_session_token_reads_the_cookie_without_rotating_it(client: TestClient) -> None:
    email = _sign_up(client)
    csrf = _csrf(client)
    cookie = client.cookies.get("clawhost_session")
    tokens = []
    for _ in range(3):  # a page and the next one, or two tabs: each gets a token, the session survives
        answer = client.post("/session/token", headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        assert "set-cookie" not in answer.headers
        tokens.append(answer.json()["access_token"])
    assert client.cookies.get("clawhost_session") == cookie
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {tokens[-1]}"})
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert "access_token" not in client.get("/chat").text  # never written into a page


def test_logout_revokes_the_session_and_its_access_tokens(client: TestClient) -> None:
    _sign_up(client)
    csrf = _csrf(client)
    token = client.post("/session/token", headers={"X-CSRF-Token": csrf}).json()["access_token"]
    stolen_cookie = client.cookies.get("clawhost_session")
    answer = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    assert 'clawhost_session=""' in answer.headers["set-cookie"] or "Max-Age=0" in answer.headers["set-cookie"]
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    client.cookies.set("clawhost_session", stolen_cookie or "")
    refused = client.post("/session/token", headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 401
    assert refused.json() == {"detail": "not signed in: log in again"}


def test_login_refusals_say_what_to_do_and_nothing_more(client: TestClient) -> None:
    email = _sign_up(client)
    client.cookies.delete("clawhost_session")
    csrf = _csrf(client)
    wrong = client.post("/login", data={"email": email, "password": "not the password", "csrf_token": csrf})
    unknown = client.post(
        "/login", data={"email": f"nobody{uuid.uuid4().hex[:6]}@example.com", "password": PASSWORD, "csrf_token": csrf}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text
    assert "Wrong email or password." in unknown.text
    assert "not the password" not in wrong.text
    taken = client.post("/signup", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
    assert taken.status_code == 409
    assert "log in instead" in taken.text
    short = client.post("/signup", data={"email": "x@example.com", "password": "short", "csrf_token": csrf})
    assert short.status_code == 422
    assert "Choose a password of 10 to 256 characters." in short.text


def test_account_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    limited = settings.model_copy(update={"login_per_account": RateLimit(count=2, seconds=600)})
    with TestClient(create_app(limited)) as client:
        email = _sign_up(client)
        client.cookies.delete("clawhost_session")
        csrf = _csrf(client)
        for _ in range(2):
            assert (
                client.post("/login", data={"email": email, "password": "wrong one!", "csrf_token": csrf}).status_code
                == 401
            )
        answer = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) > 0
        assert "Too many attempts" in answer.text
        assert "10 minutes" in answer.text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/dashboard", "/dashboard"),
        ("/chat?x=1", "/chat?x=1"),
        ("//evil.example/", "/d"),
        ("/\\evil.example", "/d"),
        ("https://evil.example/", "/d"),
        ("javascript:alert(1)", "/d"),
        ("/ok\r\nSet-Cookie: x", "/d"),
        ("", "/d"),
        (None, "/d"),
    ],
)
def test_next_stays_on_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target, "/d") == expected


def test_a_cross_site_arrival_without_the_cookie_reloads_same_site(client: TestClient) -> None:
    """Back from Stripe Checkout the browser withholds the SameSite=Strict cookie: /chat answers a same-site reload
    (which carries it) instead of a signed-out page; any other arrival gets the page."""
    arriving = client.get("/chat", headers={"Sec-Fetch-Site": "cross-site"})
    assert arriving.status_code == 200
    assert '<meta http-equiv="refresh" content="0">' in arriving.text
    assert 'id="chat"' not in arriving.text
    same_site = client.get("/chat", headers={"Sec-Fetch-Site": "same-origin"})
    assert 'id="chat"' in same_site.text
    assert "http-equiv" not in same_site.text
    _sign_up(client)
    signed_in = client.get("/chat", headers={"Sec-Fetch-Site": "cross-site"})  # a Lax-like cookie jar sent it
    assert 'id="chat"' in signed_in.text


def test_api_docs_allow_exactly_their_own_inline_script(client: TestClient) -> None:
    """Swagger UI (FastAPI loads it from jsDelivr) runs under a policy of its own: that CDN and the hash of the one
    inline script it needs, nothing else inline."""
    answer = client.get("/docs")
    assert answer.status_code == 200
    csp = answer.headers["content-security-policy"]
    [script] = re.findall(r"<script>(.*?)</script>", answer.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert script_src.split() == ["script-src", "https://cdn.jsdelivr.net", f"'sha256-{digest}'"]
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["x-frame-options"] == "DENY"
