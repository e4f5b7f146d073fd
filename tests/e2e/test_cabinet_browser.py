"""The web cabinet in a real browser (Debian's Chromium driven by Playwright) against Herald
and the fake Twilio: sign in, watch a message reach Delivered without reloading, cancel a
scheduled one from its page, switch to Russian, and a viewer's limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from playwright.async_api import expect

from herald.config import Settings
from tests.e2e.cabinet_pages import chromium, make_user, sign_in_browser
from tests.e2e.helpers import add_twilio_sender, send_sms
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, make_settings, running_herald


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    # SQLite only: the pages call the services the API calls, tested on both databases.
    return make_settings(sqlite_url, Fernet.generate_key().decode())


@pytest.fixture
async def herald(settings: Settings, fake: FakeTwilio) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings) as running:
        async with running.client() as api:
            await add_twilio_sender(api, fake)
        yield running


async def test_an_operator_watches_a_delivery_cancels_and_reads_russian(
    herald: RunningHerald, tmp_path: Path
) -> None:
    await make_user(herald, "ann@example.com", role="operator")
    async with chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await sign_in_browser(page, herald, "ann@example.com")
        await expect(page.get_by_text("No messages yet.")).to_be_visible()
        # Marks this document: still there at the end means the page never reloaded.
        await page.evaluate("window.notReloaded = true")

        async with herald.client() as api:
            message_id = await send_sms(api, "+14155550100", "Your parcel is on its way")
        row = page.locator(f'tr[data-message-id="{message_id}"]')
        await expect(row).to_be_visible(timeout=15_000)
        await expect(row.locator(".status")).to_have_text("Delivered", timeout=15_000)
        assert await page.evaluate("window.notReloaded") is True

        send_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        async with herald.client() as api:
            scheduled = await send_sms(api, "+14155550101", "See you tomorrow", sendAt=send_at)
        later = page.locator(f'tr[data-message-id="{scheduled}"]')
        await expect(later.locator(".status")).to_have_text("Scheduled", timeout=15_000)
        assert await page.evaluate("window.notReloaded") is True

        await later.get_by_role("link").click()
        await expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
        await page.get_by_role("button", name="Cancel the message").click()
        summary = page.locator(".summary")
        await expect(summary.locator(".status")).to_have_text("Cancelled")
        await expect(page.get_by_role("button", name="Cancel the message")).to_have_count(0)
        async with herald.client() as api:
            found = (await api.get(f"/api/v1/messages/{scheduled}")).json()
        assert found["status"] == "cancelled"

        await page.get_by_role("button", name="Русский").click()
        await expect(page.get_by_role("heading", name="Хронология")).to_be_visible()
        await expect(summary.locator(".status")).to_have_text("Отменено")
        await expect(page.get_by_role("link", name="Сообщения").first).to_be_visible()
        assert await page.locator("html").get_attribute("lang") == "ru"
        # Dates in Russian: the month's name in the genitive ("8 декабря 2026, 14:05").
        months = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа")
        months += ("сентября", "октября", "ноября", "декабря")
        created = await summary.locator("dd").nth(2).inner_text()
        assert any(m in created for m in months), created
        await page.get_by_role("link", name="Сообщения").first.click()
        await expect(page.get_by_role("heading", name="Сообщения", level=1)).to_be_visible()
        await expect(row.locator(".status")).to_have_text("Доставлено")
        assert not errors, errors


async def test_a_viewer_sees_no_send_link_nor_cancel_and_a_post_is_refused(
    herald: RunningHerald,
) -> None:
    await make_user(herald, "vic@example.com", role="viewer")
    send_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    async with herald.client() as api:
        message_id = await send_sms(api, "+14155550100", "Later", sendAt=send_at)
    async with chromium() as browser:
        page = await browser.new_page()
        await sign_in_browser(page, herald, "vic@example.com")
        nav = page.get_by_role("navigation", name="Sections")
        await expect(nav.get_by_role("link", name="Messages")).to_be_visible()
        await expect(nav.get_by_role("link", name="Send", exact=True)).to_have_count(0)
        await expect(nav.get_by_role("link", name="Templates")).to_have_count(0)
        await page.locator(f'tr[data-message-id="{message_id}"]').get_by_role("link").click()
        await expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
        await expect(page.get_by_role("button", name="Cancel the message")).to_have_count(0)
        # The form a viewer is not shown, posted anyway with the viewer's session and token.
        token = await page.locator('input[name="csrf_token"]').first.input_value()
        for path in (f"/messages/{message_id}/cancel", "/send"):
            answer = await page.request.post(
                f"{herald.url}{path}", form={"csrf_token": token}, max_redirects=0
            )
            assert answer.status in (403, 404, 405), (path, answer.status)
            if path.endswith("/cancel"):
                assert answer.status == 403
    async with herald.client() as api:
        assert (await api.get(f"/api/v1/messages/{message_id}")).json()["status"] == "scheduled"
