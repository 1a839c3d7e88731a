"""The site in Debian's Chromium against the platform as `make up` runs it: the pages, sign-up and log-in as a
person meets them, accessibility (axe-core), the Content-Security-Policy at work, and screenshots at phone and
desktop width (test-results/screenshots/)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from clawhost_api.tiers import TIER_ORDER, load_tiers
from clawhost_localcluster.browser import axe_violations, screenshots
from clawhost_localcluster.site_server import SiteServer

PASSWORD = "a long enough password"
# Collects every CSP violation the page reports (an init script runs before the page's own, outside its CSP).
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e =>
    window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


@pytest.fixture
def context(browser: Browser) -> BrowserContext:
    fresh = browser.new_context()
    fresh.add_init_script(CSP_WATCH)
    return fresh


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def new_email() -> str:
    return f"p{uuid.uuid4().hex[:10]}@example.com"


def sign_up(page: Page, site: SiteServer, email: str) -> None:
    page.goto(f"{site.url}/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()


def assert_clean(page: Page) -> None:
    """No serious or critical accessibility violation and nothing the CSP had to block."""
    assert page.evaluate("window.__cspViolations") == []
    violations = axe_violations(page)
    assert not violations, "\n".join(str(v) for v in violations)


def test_landing_pricing_sign_up_and_the_chat(page: Page, site: SiteServer, screenshot_dir: Path) -> None:
    page.goto(f"{site.url}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("AI agent")
    ctas = page.get_by_role("link", name="Get my agent")
    expect(ctas).to_have_count(1)
    assert_clean(page)
    screenshots(page, screenshot_dir, "landing")

    page.get_by_role("link", name="Pricing", exact=True).click()
    expect(page).to_have_url(f"{site.url}/pricing")
    tiers = load_tiers()
    for name in TIER_ORDER:
        card = page.locator(f'[data-tier="{name}"]')
        tier = tiers[name]
        expect(card.locator(".amount")).to_have_text(f"${tier.price_cents // 100}")
        tokens = card.locator('[data-fact="tokens"]').inner_text()
        assert float(tokens.rstrip("M")) * 1_000_000 == tier.monthly_tokens
        users = "user" if tier.telegram_users_max == 1 else "users"
        expect(card.locator('[data-fact="telegram-users"]')).to_have_text(f"{tier.telegram_users_max} Telegram {users}")
        expect(card.locator('[data-fact="thinking"]')).to_contain_text(tier.thinking, ignore_case=True)
    expect(page.get_by_role("link", name="Get my agent")).to_have_count(1)
    assert_clean(page)
    screenshots(page, screenshot_dir, "pricing")

    page.goto(f"{site.url}/signup")
    assert_clean(page)
    screenshots(page, screenshot_dir, "signup")
    email = new_email()
    sign_up(page, site, email)
    expect(page).to_have_url(f"{site.url}/chat")
    expect(page.get_by_role("button", name=re.compile("Log out"))).to_be_visible()
    expect(page.get_by_role("heading", name="Set up your agent")).to_be_visible()
    assert_clean(page)
    screenshots(page, screenshot_dir, "chat")
    # The refresh token is out of script's reach; nothing is kept in Web Storage but the chat's session id.
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["clawhost_session"]["httpOnly"]
    assert cookies["clawhost_session"]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""
    assert set(page.evaluate("Object.keys(localStorage)")) <= {"clawhost.onboarding.session"}
    assert page.evaluate("Object.keys(sessionStorage)") == []


def test_a_returning_user_logs_in_and_out(browser: Browser, site: SiteServer, screenshot_dir: Path) -> None:
    email = new_email()
    first = browser.new_context()
    sign_up(first.new_page(), site, email)
    first.close()

    context = browser.new_context()
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    page.goto(f"{site.url}/login")
    assert_clean(page)
    screenshots(page, screenshot_dir, "login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{site.url}/chat")  # no agent yet: the chat is where to go
    page.get_by_role("button", name=re.compile("Log out")).click()
    expect(page).to_have_url(f"{site.url}/")
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "clawhost_session"]
    context.close()


def test_wrong_password_is_refused_with_a_message_that_names_neither_half(page: Page, site: SiteServer) -> None:
    email = new_email()
    sign_up(page, site, email)
    page.context.clear_cookies()
    page.goto(f"{site.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Wrong email or password.")
    expect(page.get_by_label("Email")).to_have_value(email)  # kept, so only the password is typed again
    expect(page.get_by_label("Password")).to_have_value("")
    assert_clean(page)


def test_inline_script_never_runs_under_the_csp(page: Page, site: SiteServer) -> None:
    page.goto(f"{site.url}/")
    with pytest.raises(Exception, match=r"Content Security Policy|inline"):
        page.add_script_tag(content="window.__inlineRan = true")
    assert page.evaluate("window.__inlineRan") is None
    violations = page.evaluate("window.__cspViolations")
    assert any(v.startswith("script-src") for v in violations), violations


def test_too_many_attempts_are_refused_with_when_to_come_back(page: Page, site: SiteServer) -> None:
    """The per-account limit as shipped (10 log-ins per 15 minutes): the 11th attempt, even with the right
    password, is refused, and the message says to wait without saying which limit or whether the account exists."""
    email = new_email()
    sign_up(page, site, email)
    page.context.clear_cookies()
    page.goto(f"{site.url}/login")
    for _ in range(10):
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill("not the password at all")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 429
    assert int(answer.value.headers["retry-after"]) > 0
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"Too many attempts\. For your account.s safety, wait \d+ minutes? and try again\.")
    )
    expect(page).to_have_url(f"{site.url}/login")
    assert not [c for c in page.context.cookies() if c["name"] == "clawhost_session"]
    assert_clean(page)
