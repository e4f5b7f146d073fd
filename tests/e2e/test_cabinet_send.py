"""The Send page in a real browser (Debian's Chromium under Playwright) against Herald and the
fake Twilio: pick a template, fill its variables, watch the live preview, arrange the
cascade, see a refusal next to its field, send, and land on the message's page; short
links and SMS costs in the preview; a viewer can neither see the page nor post it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from playwright.async_api import expect

from herald.config import Settings
from tests.e2e.cabinet_pages import (
    browser_client,
    chromium,
    csrf_of,
    make_user,
    sign_in_browser,
    sign_in_over_http,
)
from tests.e2e.helpers import add_twilio_sender, wait_status
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, make_settings, running_herald


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    # SQLite only: the page calls the services the API calls, tested on both databases.
    return make_settings(sqlite_url, Fernet.generate_key().decode())


@pytest.fixture
async def herald(settings: Settings, fake: FakeTwilio) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings) as running:
        async with running.client() as api:
            await add_twilio_sender(api, fake)
        yield running


async def _template(herald: RunningHerald) -> str:
    async with herald.client() as api:
        answer = await api.post(
            "/api/v1/templates",
            json={
                "name": "login-code",
                "channels": {
                    "sms": {"text": "Hello {{ name }}, your code is {{ code }}."},
                    "email": {"subject": "Your code", "text": "Your code is {{ code }}."},
                },
            },
        )
    assert answer.status_code == 201, answer.text
    template_id: str = answer.json()["id"]
    return template_id


async def test_send_with_a_template_and_land_on_the_message_page(herald: RunningHerald) -> None:
    template_id = await _template(herald)
    await make_user(herald, "ann@example.com", role="operator")
    async with chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await sign_in_browser(page, herald, "ann@example.com")
        nav = page.get_by_role("navigation", name="Sections")
        await nav.get_by_role("link", name="Send", exact=True).click()
        await expect(page.get_by_role("heading", name="Send a message", level=1)).to_be_visible()

        preview = page.locator("#preview")
        await page.get_by_label("Template").select_option(label="login-code")
        await expect(preview.locator(".preview-text").first).to_have_text(
            "Hello [name], your code is [code]."
        )
        # The template's variables become boxes.
        await page.get_by_label("name", exact=True).fill("Anna")
        await page.get_by_label("code", exact=True).fill("4711")
        await expect(preview.locator(".preview-text").first).to_have_text(
            "Hello Anna, your code is 4711."
        )
        await expect(preview.locator(".sms-costs")).to_contain_text("GSM-7")

        # The cascade: add e-mail, move it first, then remove it again.
        await page.get_by_role("button", name="Add a channel").click()
        rows = page.locator("[data-channel-row]")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(1).locator("select[name=channel]")).to_have_value("email")
        await expect(preview.locator("h3")).to_have_text(["SMS", "E-mail"])
        await rows.nth(1).get_by_role("button", name="Move up").click()
        await expect(preview.locator("h3")).to_have_text(["E-mail", "SMS"])
        await expect(rows.nth(0).get_by_label("Subject")).to_be_visible()
        await rows.nth(0).get_by_role("button", name="Remove").click()
        await expect(rows).to_have_count(1)
        await expect(preview.locator("h3")).to_have_text(["SMS"])

        # A refusal is said next to the field it concerns; what was typed stays.
        await page.get_by_label("Phone").fill("12")
        await page.get_by_role("button", name="Send", exact=True).click()
        await expect(page.locator("#problem-phone")).to_contain_text("not valid")
        await expect(page.get_by_label("Phone")).to_have_attribute("aria-invalid", "true")
        await expect(page.get_by_label("code", exact=True)).to_have_value("4711")

        await page.get_by_label("Phone").fill("+14155550100")
        await page.get_by_role("button", name="Send", exact=True).click()
        await expect(page.get_by_role("heading", name="Message", level=1)).to_be_visible()
        message_id = page.url.rsplit("/", 1)[1]
        await expect(page.locator("pre.body")).to_have_text("Hello Anna, your code is 4711.")
        await expect(page.locator(".summary .status")).to_have_text("Delivered", timeout=15_000)
        # The refused form's answer was a 422 on purpose; nothing else may have failed.
        assert [e for e in errors if "status of 422" not in e] == [], errors
    async with herald.client() as api:
        message = await wait_status(api, message_id, {"delivered"})
    assert message["templateId"] == template_id
    assert message["channel"] == "sms"


async def test_free_text_preview_shows_short_links_encoding_and_characters_left(
    herald: RunningHerald,
) -> None:
    await make_user(herald, "ann@example.com", role="operator")
    async with chromium() as browser:
        page = await browser.new_page()
        await sign_in_browser(page, herald, "ann@example.com")
        await page.goto(f"{herald.url}/send")
        preview = page.locator("#preview")
        await page.get_by_label("Text").fill("Посылка в пути: https://example.com/track/1")
        costs = preview.locator(".sms-costs")
        await expect(costs).to_contain_text("UCS-2")
        await expect(costs).to_contain_text("27 in this segment")  # 70 - 43 characters
        await page.get_by_label("Shorten links (and count their clicks)").check()
        link = preview.locator(".preview-links li")
        await expect(link).to_contain_text("https://example.com/track/1")
        short = await link.locator("code").first.inner_text()
        assert short.startswith(herald.url) and short != "https://example.com/track/1"
        await expect(preview.locator(".preview-text")).to_contain_text(short)


async def test_a_viewer_can_neither_see_nor_post_the_send_form(herald: RunningHerald) -> None:
    await make_user(herald, "vic@example.com", role="viewer")
    async with chromium() as browser:
        page = await browser.new_page()
        await sign_in_browser(page, herald, "vic@example.com")
        nav = page.get_by_role("navigation", name="Sections")
        await expect(nav.get_by_role("link", name="Send", exact=True)).to_have_count(0)
        opened = await page.goto(f"{herald.url}/send")
        assert opened is not None and opened.status == 403
        await expect(page.get_by_text("Your role does not allow this.")).to_be_visible()
        await expect(page.locator("#send-form")).to_have_count(0)
        token = await page.locator('input[name="csrf_token"]').first.input_value()
        for path in ("/send", "/send/preview", "/templates/new"):
            answer = await page.request.post(
                f"{herald.url}{path}",
                form={
                    "csrf_token": token,
                    "phone": "+14155550100",
                    "channel": "sms",
                    "text": "Hi",
                    "name": "x",
                    "ch.sms.text": "Hi",
                },
                max_redirects=0,
            )
            assert answer.status == 403, (path, answer.status)
    async with herald.client() as api:
        assert (await api.get("/api/v1/messages")).json()["count"] == 0
        assert (await api.get("/api/v1/templates")).json()["count"] == 0


async def test_the_same_form_sent_twice_sends_one_message(herald: RunningHerald) -> None:
    await make_user(herald, "ann@example.com", role="operator")
    async with browser_client(herald) as browser:
        await sign_in_over_http(browser, "ann@example.com")
        form = (await browser.get("/send")).text
        key = re.search(r'name="key" value="([0-9a-f-]{36})"', form)
        assert key is not None
        fields = {
            "csrf_token": csrf_of(form),
            "key": key.group(1),
            "phone": "+14155550100",
            "channel": "sms",
            "text": "Your table is ready",
        }
        first = await browser.post("/send", data=fields)
        second = await browser.post("/send", data=fields)  # a double click
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    async with herald.client() as api:
        assert (await api.get("/api/v1/messages")).json()["count"] == 1
