"""The browser session as a page's script uses it (static/js/session.js, the module every live page imports): an
access token that expired mid-use is replaced without the person noticing, and a person who logged out elsewhere
is told to sign in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from playwright.sync_api import Browser, Response

from clawhost_localcluster.site_server import SiteServer, StartSite
from clawhost_localcluster.waiting import eventually

PASSWORD = "a long enough password"
CALL_ME = """async () => {
    const session = await import('/static/js/session.js');
    const answer = await session.authorizedFetch('/auth/me');
    return {status: answer.status, body: await answer.json()};
}"""


def test_an_expired_access_token_is_renewed_silently(browser: Browser, site: SiteServer, start_site: StartSite) -> None:
    # The same accounts, behind a control API whose access tokens live 2 s.
    short = start_site(database_url=site.database_url, access_token_ttl_seconds="2")
    context = browser.new_context()
    page = context.new_page()
    # The page's clock stands still, so the script cannot see the token age: only the API's 401 tells it.
    page.clock.set_fixed_time(datetime.now(UTC))
    email = f"s{uuid.uuid4().hex[:10]}@example.com"
    page.goto(f"{short.url}/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{short.url}/chat")

    calls: list[tuple[str, int]] = []

    def seen(response: Response) -> None:
        path = response.url.removeprefix(short.url)
        if path in ("/auth/me", "/session/token"):
            calls.append((path, response.status))

    page.on("response", seen)
    first = page.evaluate(CALL_ME)
    assert first == {"status": 200, "body": {"id": first["body"]["id"], "email": email, "customer_name": None}}
    token_answers = [c for c in calls if c[0] == "/session/token"]
    assert token_answers == [("/session/token", 200)]

    # Wait, on the server's clock, until that access token is refused.
    def expired() -> bool:
        # The page's cached token (its clock says it is still fresh).
        token = page.evaluate("async () => (await import('/static/js/session.js')).accessToken()")
        return httpx.get(f"{short.url}/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    eventually(expired, timeout=30, what="the page's access token to expire on the server")
    calls.clear()
    second = page.evaluate(CALL_ME)
    assert second["status"] == 200
    assert second["body"]["email"] == email
    assert calls == [("/auth/me", 401), ("/session/token", 200), ("/auth/me", 200)]
    context.close()


def test_a_page_whose_session_was_revoked_is_told_to_sign_in(browser: Browser, site: SiteServer) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/signup")
    page.get_by_label("Email").fill(f"r{uuid.uuid4().hex[:10]}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{site.url}/chat")
    # Log out in a second tab of the same browser: the first tab's next call finds no session.
    other = context.new_page()
    other.goto(f"{site.url}/pricing")
    other.get_by_role("button", name="Log out").click()
    other.wait_for_url(f"{site.url}/")
    outcome = page.evaluate(
        """async () => {
            const session = await import('/static/js/session.js');
            try { await session.authorizedFetch('/auth/me'); return 'fetched'; }
            catch (error) { return error.name + ' ' + session.loginUrl(); }
        }"""
    )
    assert outcome == "NotSignedInError /login?next=%2Fchat"
    context.close()
