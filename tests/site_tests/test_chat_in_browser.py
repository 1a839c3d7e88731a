"""The onboarding chat page in Chromium, against the real /ws/onboarding relay and onboarding service (the model and
Telegram replaced by their stand-ins): the journey from the landing page to a live agent, and a dropped connection
and a reload resumed."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, WebSocketRoute, expect

from clawhost_localcluster.browser import axe_violations, screenshots
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.onboarding_script import HAPPY_MESSAGES, TELEGRAM_USER_ID, Conversation
from clawhost_localcluster.site_server import SiteServer
from clawhost_localcluster.telegram_bot_api import Bot, TelegramBotApi

PASSWORD = "a long enough password"
REPLY_TIMEOUT = 60_000  # ms: a model turn through the relay on a loaded 2-core machine


def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = browser.new_context()
    context.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(e.violatedDirective));"
    )
    return context, context.new_page()


def frame_type(payload: str | bytes) -> str:
    return str(json.loads(payload).get("type"))


def assistant_replies(page: Page) -> int:
    return page.locator('#transcript li[data-role="assistant"]').count()


def say(page: Page, text: str) -> None:
    """Type a message, send it, and wait for the assistant's whole reply (the composer opens again)."""
    # Send is enabled by the session frame, which also draws the transcript (its greeting): counted before it
    # arrived, a loaded run saw the greeting and the reply as two new replies.
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=REPLY_TIMEOUT)
    before = assistant_replies(page)
    page.get_by_label("Your message").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator('#transcript li[data-role="user"]').last).to_contain_text(text[:20])
    expect(page.locator('#transcript li[data-role="assistant"]')).to_have_count(before + 1, timeout=REPLY_TIMEOUT)
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=REPLY_TIMEOUT)


def converse(page: Page, talk: Conversation, telegram: TelegramBotApi, bot: Bot, first: int, last: int) -> None:
    for n in range(first, last + 1):
        if n == 3:  # the person opens their bot and presses Start
            telegram.send_dm(bot.token, TELEGRAM_USER_ID, "/start", first_name="Ana")
        say(page, talk.happy_message(n, bot.token))


def assert_clean(page: Page) -> None:
    assert page.evaluate("window.__cspViolations") == []
    violations = axe_violations(page)
    assert not violations, "\n".join(str(v) for v in violations)


def test_from_the_landing_page_to_a_live_agent(
    browser: Browser, site: SiteServer, site_kimi: FakeKimi, site_telegram: TelegramBotApi, screenshot_dir: Path
) -> None:
    talk = Conversation(site_kimi)
    talk.happy_path()
    bot = site_telegram.register_bot(f"bakery_{uuid.uuid4().hex[:6]}_bot")
    context, page = new_page(browser)
    kinds: list[str] = []  # the type of every frame the page received, in order
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: kinds.append(frame_type(payload))))

    page.goto(f"{site.url}/")
    page.get_by_role("link", name="Pricing", exact=True).click()
    page.get_by_role("link", name="Get my agent").click()
    expect(page).to_have_url(f"{site.url}/chat")
    expect(page.locator("#chat-status")).to_have_text("Connected.")

    # Anonymous until everything is gathered; the replies stream in, a typing indicator first.
    converse(page, talk, site_telegram, bot, 1, 1)
    assert kinds.index("typing") < kinds.index("delta") < kinds.index("reply")
    assert kinds[: kinds.index("reply")].count("delta") > 1, "the first reply arrived in pieces"
    expect(page.locator('#transcript li[data-role="assistant"]').last).to_contain_text("Great! Create a bot")
    converse(page, talk, site_telegram, bot, 2, HAPPY_MESSAGES)
    # The bot token the person pasted is never shown back (the server keeps it out of the transcript).
    expect(page.locator("#transcript")).not_to_contain_text(bot.token.split(":")[1])
    sign_in = page.locator("#sign-in-panel")
    expect(sign_in).to_be_visible(timeout=REPLY_TIMEOUT)
    assert_clean(page)
    screenshots(page, screenshot_dir, "chat-sign-in")

    # Signs up from the chat and comes back to it: the conversation resumes, now bound to the account.
    sign_in.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email").fill(f"j{uuid.uuid4().hex[:10]}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{site.url}/chat")
    expect(page.locator('#transcript li[data-role="user"]')).to_have_count(HAPPY_MESSAGES)
    checkout = page.get_by_role("link", name="Pay and start my agent")
    expect(checkout).to_be_visible(timeout=REPLY_TIMEOUT)
    expect(sign_in).to_be_hidden()
    assert_clean(page)
    screenshots(page, screenshot_dir, "chat-checkout")

    # Pays on the local checkout page (signed Stripe events to the real webhook) and comes back to the chat.
    checkout.click()
    page.get_by_role("button", name="Complete payment").click()
    expect(page).to_have_url(re.compile(re.escape(f"{site.url}/chat")))
    live = page.get_by_role("link", name=f"Message @{bot.username}")
    expect(live).to_be_visible(timeout=180_000)
    expect(live).to_have_attribute("href", f"https://t.me/{bot.username}")
    for phase in ("payment_received", "starting"):
        expect(page.locator(f'#progress li[data-phase="{phase}"]')).to_have_class(re.compile("done"))
    assert_clean(page)
    screenshots(page, screenshot_dir, "chat-live")

    page.get_by_role("link", name="Go to your dashboard").click()
    expect(page).to_have_url(f"{site.url}/dashboard")
    context.close()


def test_a_dropped_connection_and_a_reload_resume_the_conversation(
    browser: Browser, site: SiteServer, site_kimi: FakeKimi, site_telegram: TelegramBotApi
) -> None:
    talk = Conversation(site_kimi)
    talk.happy_path()
    bot = site_telegram.register_bot(f"shop_{uuid.uuid4().hex[:6]}_bot")
    context, page = new_page(browser)
    # Every connection of the page goes through this route to the real server, so the test can cut one.
    live_routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    def through(route: WebSocketRoute) -> None:
        live_routes.append((route, route.connect_to_server()))

    page.route_web_socket(re.compile(r".*/ws/onboarding$"), through)
    page.goto(f"{site.url}/chat")
    converse(page, talk, site_telegram, bot, 1, 2)
    session_id = page.evaluate("localStorage.getItem('clawhost.onboarding.session')")
    assert session_id
    shown = page.locator("#transcript li").all_inner_texts()  # the greeting, then two exchanges

    # The connection drops: the page says so, reconnects by itself and resumes the same session.
    page_side, server_side = live_routes[-1]
    server_side.close(code=1001, reason="cut by the test")
    page_side.close(code=1001, reason="cut by the test")
    expect(page.locator("#chat-status")).to_contain_text("Reconnecting", timeout=10_000)
    expect(page.locator("#chat-status")).to_have_text("Connected.", timeout=30_000)
    assert len(live_routes) >= 2
    expect(page.locator("#transcript li")).to_have_count(len(shown))
    assert page.locator("#transcript li").all_inner_texts() == shown
    assert page.evaluate("localStorage.getItem('clawhost.onboarding.session')") == session_id
    converse(page, talk, site_telegram, bot, 3, 3)

    # A reload shows the whole conversation again and goes on from there.
    page.reload()
    expect(page.locator("#chat-status")).to_have_text("Connected.", timeout=30_000)
    expect(page.locator('#transcript li[data-role="user"]')).to_have_count(3)
    expect(page.locator('#transcript li[data-role="assistant"]').last).to_contain_text("Is this you: Ana?")
    converse(page, talk, site_telegram, bot, 4, 4)
    expect(page.locator('#transcript li[data-role="assistant"]').last).to_contain_text("How often will you use it?")
    context.close()


def test_the_model_down_shows_what_happened_and_try_again_answers(
    browser: Browser, site: SiteServer, site_kimi: FakeKimi, site_telegram: TelegramBotApi
) -> None:
    talk = Conversation(site_kimi)
    talk.happy_path()
    bot = site_telegram.register_bot(f"down_{uuid.uuid4().hex[:6]}_bot")
    context, page = new_page(browser)
    page.goto(f"{site.url}/chat")
    expect(page.locator("#chat-status")).to_have_text("Connected.", timeout=30_000)
    site_kimi.outage = 503
    try:
        page.get_by_label("Your message").fill(talk.happy_message(1, bot.token))
        page.get_by_role("button", name="Send").click()
        error = page.locator("#chat-error")
        expect(error).to_be_visible(timeout=REPLY_TIMEOUT)
        expect(page.get_by_role("button", name="Try again")).to_be_visible()
        assert_clean(page)
    finally:
        site_kimi.outage = None
    page.get_by_role("button", name="Try again").click()
    expect(page.locator('#transcript li[data-role="assistant"]').last).to_contain_text(
        "Great! Create a bot", timeout=REPLY_TIMEOUT
    )
    expect(error).to_be_hidden()
    expect(page.locator('#transcript li[data-role="user"]')).to_have_count(1)  # the message was kept, not repeated
    context.close()
