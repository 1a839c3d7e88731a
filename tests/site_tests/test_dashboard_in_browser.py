"""The dashboard in Debian's Chromium against the platform as `make up` runs it (real API server, operator with kwok
nodes, Redis, PostgreSQL, stripe-mock, the token proxy with the local LLM stand-in): the agent's state live, the
usage gauge moved by a real agent turn through the proxy, settings, suspend and resume, the billing portal,
deletion with typed confirmation, two users apart, outages in words, accessibility and screenshots."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from clawhost_api.customer import PLATFORM_NAMESPACE
from clawhost_localcluster.browser import axe_violations, screenshots
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.platform import CustomerFactory, gateway_secret
from clawhost_localcluster.proxy_process import RunningProxy, start_proxy
from clawhost_localcluster.relay import TcpRelay, relay_to_api_server
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.site_server import SiteServer, StartSite
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

PASSWORD = "a long enough password"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
# Before the page's own script: every CSP violation, and every state the status card shows, in order.
WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e =>
    window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
window.__states = [];
new MutationObserver(() => {
    const card = document.getElementById('status-card');
    const state = card && card.dataset.state;
    if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-state']});
"""


@dataclass
class Person:
    email: str
    context: BrowserContext
    page: Page
    auth: dict[str, str]  # a bearer token of their own, for the API calls a test makes in their name
    agent: str | None = None


@pytest.fixture(scope="module")
def fake_kimi() -> Iterator[FakeKimi]:
    server = FakeKimi()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(
    site: SiteServer, redis_server: RedisServer, fake_kimi: FakeKimi, session_dir: Path
) -> Iterator[RunningProxy]:
    """The token proxy as deployed, writing its ledger into the site's database (the platform's one database)."""
    workdir = session_dir / "dashboard-proxy"
    workdir.mkdir(exist_ok=True)
    running = start_proxy(
        site.cluster,
        redis_server,
        f"http://127.0.0.1:{fake_kimi.port}/v1",
        workdir,
        CLAWHOST_PROXY_POSTGRES_DSN=site.database_url,
        CLAWHOST_PROXY_REQUESTS_PER_SECOND="1000",
    )
    yield running
    running.process.stop()


def _person(browser: Browser, site: SiteServer) -> Person:
    context = browser.new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    email = f"d{uuid.uuid4().hex[:10]}@example.com"
    page.goto(f"{site.url}/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r".*/chat"))
    tokens = httpx.post(f"{site.url}/auth/login", json={"email": email, "password": PASSWORD}, timeout=30).json()
    return Person(email, context, page, {"Authorization": f"Bearer {tokens['access_token']}"})


def _create_agent(site: SiteServer, person: Person, tier: str = "pro", users: list[int] | None = None) -> str:
    """The agent as the onboarding's result creates it (POST /agent), waiting for its first payment."""
    body = {"tier": tier, "bot_token": BOT_TOKEN, "allowed_user_ids": users or [4242]}
    created = httpx.post(f"{site.url}/agent", headers=person.auth, json=body, timeout=30)
    assert created.status_code == 201, created.text
    person.agent = str(created.json()["name"])
    return person.agent


def _pay(cluster: Cluster, name: str, tier: str = "pro") -> None:
    """What the Stripe webhooks write once the checkout is paid: an active subscription for this period."""
    now = datetime.now(UTC)
    billing = {
        "customerId": f"cus_{name}",
        "subscriptionId": f"sub_{name}",
        "state": "active",
        "paidTier": tier,
        "currentPeriodStart": (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "currentPeriodEnd": (now + timedelta(days=27)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    cluster.patch_customer_status(name, {"billing": billing})


def _customer(cluster: Cluster, name: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", "customer", name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def _assert_clean(page: Page) -> None:
    assert page.evaluate("window.__cspViolations") == []
    violations = axe_violations(page)
    assert not violations, "\n".join(str(v) for v in violations)


def _state(page: Page) -> Any:
    return expect(page.locator("#status-card"))


def _leave_for_stripe(page: Page, site: SiteServer, click: Any) -> list[str]:
    """Click, and catch the browser on its way to Stripe: stripe-mock's session URLs point at Stripe itself, which
    this machine cannot reach. The addresses it tried to open."""
    left: list[str] = []

    def stripe_page(route: Route) -> None:
        left.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<title>Stripe</title><h1>Stripe</h1>")

    def checkout_or_stripe(url: str) -> bool:
        # With the local-only checkout on (as make up runs the site), Checkout is our own /local-checkout/ page.
        return not url.startswith(site.url) or url.startswith(f"{site.url}/local-checkout/")

    page.context.route(lambda url: not url.startswith(site.url), stripe_page)
    click()
    page.wait_for_url(checkout_or_stripe)
    page.context.unroute_all()
    if page.url.startswith(site.url):
        left.append(page.url)
    return left


def test_a_customers_whole_dashboard(
    browser: Browser,
    site: SiteServer,
    proxy: RunningProxy,
    customers: CustomerFactory,
    screenshot_dir: Path,
) -> None:
    person = _person(browser, site)
    page = person.page
    name = _create_agent(site, person)
    page.goto(f"{site.url}/dashboard")
    _state(page).to_have_attribute("data-state", "payment_needed")
    expect(page.get_by_role("heading", name="Waiting for your first payment")).to_be_visible()
    expect(page.locator("#dashboard")).to_have_attribute("data-live", "true")
    _assert_clean(page)
    screenshots(page, screenshot_dir, "dashboard-payment-needed")
    # The state's own action: pay. A Stripe Checkout session (stripe-mock), and the browser sent there.
    left = _leave_for_stripe(page, site, lambda: page.get_by_role("button", name="Pay and start my agent").click())
    assert left, "the browser left for the checkout"
    page.goto(f"{site.url}/dashboard")

    # Paid: the operator starts it (kwok makes the pod Ready); the page shows each step without a reload.
    page.evaluate("window.__states = []")
    _pay(site.cluster, name)
    _state(page).to_have_attribute("data-state", "running", timeout=60_000)
    expect(page.get_by_role("heading", name="Your agent is running")).to_be_visible()
    states = page.evaluate("window.__states")
    while states and states[0] == "payment_needed":  # the page's own first look may land after the reset
        states.pop(0)
    assert states == ["starting", "running"]
    expect(page.locator("#plan-renewal")).to_have_text(re.compile(r"^\d{1,2} \w+ \d{4}$"))
    _assert_clean(page)
    screenshots(page, screenshot_dir, "dashboard-running")

    # An agent turn through the real proxy with the customer's proxy token moves the gauge, and the chart has today.
    expect(page.locator("#usage-meter")).to_have_attribute("value", "0")
    token = gateway_secret(customers, name)["proxy-token"]
    turn = httpx.post(
        f"{proxy.url}/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": "kimi-k2.5", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20},
        timeout=30,
    )
    assert turn.status_code == 200, turn.text
    expect(page.locator("#usage-text")).not_to_have_text(re.compile(r"^0 of"), timeout=20_000)
    used = int(page.locator("#dashboard").get_attribute("data-tokens-used") or 0)
    assert used > 0
    expect(page.locator("#usage-text")).to_contain_text(f"{used} of 5M tokens used")
    today = page.locator("#usage-chart rect.chart-today title")
    expect(today).to_contain_text(re.compile(r": [1-9][\d,]* tokens"), timeout=20_000)

    # A setting: the thinking level, saved, in the Customer, and said so.
    page.get_by_label("Thinking level").select_option("low")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_have_text(re.compile("^Saved"))
    assert (_customer(site.cluster, name) or {})["spec"]["agent"]["thinking"] == "low"
    # A refused change says what to do and keeps what was typed.
    page.get_by_label("Telegram users allowed to talk to your agent").fill("4242, 77")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_have_text(re.compile("at most 1 Telegram user"))
    expect(page.get_by_label("Telegram users allowed to talk to your agent")).to_have_value("4242, 77")
    page.get_by_label("Telegram users allowed to talk to your agent").fill("4242")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_have_text(re.compile("^Saved"))

    # Suspend, then resume: the button says what it does, the status follows the operator.
    page.get_by_role("button", name="Suspend my agent").click()
    expect(page.locator("#suspend-result")).to_have_text(re.compile("^Suspended"))
    _state(page).to_have_attribute("data-state", "suspended")
    expect(
        page.get_by_role("heading", name=re.compile("You suspended your agent|Your agent is stopping"))
    ).to_be_visible()
    assert (_customer(site.cluster, name) or {})["spec"]["dashboardSuspend"] is True
    screenshots(page, screenshot_dir, "dashboard-suspended")
    page.locator("#suspend-button").click()
    expect(page.locator("#suspend-result")).to_have_text(re.compile("^Resumed"))
    _state(page).to_have_attribute("data-state", "running", timeout=60_000)

    # The bot token: a wrong one is refused in words before anything is sent, a right one replaces it.
    page.get_by_label("New bot token from @BotFather").fill("not a token")
    page.get_by_role("button", name="Replace the token").click()
    expect(page.locator("#bot-token-result")).to_contain_text("That is not a bot token")
    page.get_by_label("New bot token from @BotFather").fill("987654321:AAH" + "x" * 32)
    page.get_by_role("button", name="Replace the token").click()
    expect(page.locator("#bot-token-result")).to_have_text(re.compile("^Token replaced"))
    expect(page.get_by_label("New bot token from @BotFather")).to_have_value("")

    # The billing portal: a Stripe session (stripe-mock), and the browser sent there.
    left = _leave_for_stripe(
        page, site, lambda: page.get_by_role("button", name="Manage billing and invoices in Stripe").click()
    )
    assert left, "the browser left for the portal's address"
    page.goto(f"{site.url}/dashboard")
    _state(page).to_have_attribute("data-state", "running")

    # Delete, with the words typed: the button stays off until they are.
    delete = page.get_by_role("button", name="Delete my agent")
    expect(delete).to_be_disabled()
    page.get_by_label("Type delete my agent to confirm").fill("delete my")
    expect(delete).to_be_disabled()
    page.get_by_label("Type delete my agent to confirm").fill("delete my agent")
    expect(delete).to_be_enabled()
    _assert_clean(page)
    screenshots(page, screenshot_dir, "dashboard-delete-confirmation")
    delete.click()
    expect(page.get_by_role("heading", name="Your agent is deleted")).to_be_visible(timeout=30_000)
    eventually(lambda: _customer(site.cluster, name) is None, timeout=60, what="the Customer to be deleted")
    expect(page.get_by_role("link", name="Set up my agent")).to_be_visible()
    person.context.close()


def test_one_person_never_sees_anothers_agent_usage_or_billing(browser: Browser, site: SiteServer) -> None:
    alice, bob = _person(browser, site), _person(browser, site)
    alices = _create_agent(site, alice, tier="team", users=[111111, 222222])
    bobs = _create_agent(site, bob, tier="starter", users=[333333])
    _pay(site.cluster, alices, "team")
    for person in (alice, bob):
        person.page.goto(f"{site.url}/dashboard")
    _state(alice.page).to_have_attribute("data-state", "running", timeout=60_000)
    _state(bob.page).to_have_attribute("data-state", "payment_needed")
    expect(alice.page.locator("#plan-current")).to_have_text("Team, $129 a month")
    expect(bob.page.locator("#plan-current")).to_have_text("Starter, $19 a month")
    expect(bob.page.get_by_label("Telegram users allowed to talk to your agent")).to_have_value("333333")
    # Alice's agent keeps changing while Bob watches: none of it reaches his page.
    alice.page.get_by_role("button", name="Suspend my agent").click()
    _state(alice.page).to_have_attribute("data-state", "suspended")
    bob_html = bob.page.content()
    for secret in (alices, "111111", "222222", "Team, $129", alice.email):
        assert secret not in bob_html
    assert bobs not in alice.page.content()
    # Nor through the API with Bob's own token.
    assert alices not in httpx.get(f"{site.url}/agent", headers=bob.auth).text
    for person in (alice, bob):
        person.context.close()


def test_the_api_server_or_redis_down_shows_a_banner_and_loses_nothing(
    browser: Browser,
    site: SiteServer,
    start_site: StartSite,
    redis_server: RedisServer,
    session_dir: Path,
    screenshot_dir: Path,
) -> None:
    """The same accounts behind a control API that reaches the API server and Redis through relays the test cuts."""
    api_relay = relay_to_api_server(site.cluster.kubeconfig)
    redis_relay = TcpRelay("127.0.0.1", redis_server.port)
    redis_relay.start()
    workdir = session_dir / f"relayed-{uuid.uuid4().hex[:6]}"
    workdir.mkdir()
    kubeconfig = site.cluster.service_account_kubeconfig(
        PLATFORM_NAMESPACE,
        "clawhost-control-api",
        workdir / "relayed.kubeconfig",
        server=f"https://{api_relay.address}",
    )
    try:
        relayed = start_site(
            database_url=site.database_url,
            kubeconfig=str(kubeconfig),
            redis_url=f"redis://{redis_relay.address}/0",
            dashboard_usage_seconds="0.5",
        )
        person = _person(browser, relayed)
        page = person.page
        name = _create_agent(relayed, person)
        _pay(site.cluster, name)
        page.goto(f"{relayed.url}/dashboard")
        _state(page).to_have_attribute("data-state", "running", timeout=60_000)
        banner = page.locator("#health-banner")
        expect(banner).to_be_hidden()

        api_relay.cut()
        expect(banner).to_be_visible(timeout=20_000)
        expect(banner).to_contain_text("We cannot reach the cluster right now")
        _state(page).to_have_attribute("data-state", "running")  # the last known state stays
        # A change meanwhile fails with what to do, and what was typed stays.
        page.get_by_label("Thinking level").select_option("low")
        page.get_by_role("button", name="Save settings").click()
        expect(page.locator("#settings-result")).to_contain_text("try again in a moment")
        expect(page.get_by_label("Thinking level")).to_have_value("low")
        _assert_clean(page)
        screenshots(page, screenshot_dir, "dashboard-cluster-down")
        api_relay.start()
        expect(banner).to_be_hidden(timeout=40_000)
        page.get_by_role("button", name="Save settings").click()
        expect(page.locator("#settings-result")).to_have_text(re.compile("^Saved"))

        redis_relay.cut()
        expect(banner).to_be_visible(timeout=20_000)
        expect(banner).to_contain_text("Usage figures cannot be read right now")
        screenshots(page, screenshot_dir, "dashboard-usage-down")
        redis_relay.start()
        expect(banner).to_be_hidden(timeout=20_000)
        assert (_customer(site.cluster, name) or {})["spec"]["agent"]["thinking"] == "low", "nothing was lost"
        person.context.close()
    finally:
        api_relay.stop()
        redis_relay.stop()
