"""The web chat widget in a real browser (Debian's Chromium driven by Playwright): a site's
page embeds the script tag, shows the bot's message, sends true receipts, and the visitor's
reply reaches the bot's backend, whose answer appears on the page."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from html import escape

from playwright.async_api import async_playwright, expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from herald.config import Settings
from tests.e2e.helpers import wait_status
from tests.e2e.test_bots_conversations import bot_backend, create_bot
from tests.e2e.test_webchat import send_chat, visitor
from tests.fakes.twilio import FakeTwilio
from tests.servers import _serve, free_port, running_herald

CHROMIUM = "/usr/bin/chromium"


@contextlib.asynccontextmanager
async def customer_site(page_html: str) -> AsyncIterator[str]:
    """Another origin than Herald's, like a real site embedding the widget."""
    port = free_port()

    async def home(_: object) -> HTMLResponse:
        return HTMLResponse(page_html)

    server, task = await _serve(Starlette(routes=[Route("/", home)]), port)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task


async def test_widget_shows_messages_sends_receipts_and_replies(settings: Settings) -> None:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    with FakeTwilio() as fake:
        async with (
            running_herald(settings) as herald,
            herald.client() as client,
            bot_backend() as backend,
        ):
            backend.answer = lambda payload: {"reply": f"Got it: {payload['message']['text']}"}
            bot = await create_bot(client, fake, webhookUrl=backend.url)
            who = await visitor(client, bot, "customer-1")
            page_html = (
                "<!doctype html><title>Shop</title><h1>Our shop</h1>"
                f'<script src="{herald.url}/chat/widget.js" data-bot="{escape(bot["id"])}" '
                f'data-visitor="customer-1" data-token="{who["token"]}" data-open="true" '
                'data-title="Shop help"></script>'
            )
            async with customer_site(page_html) as site, async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    page = await browser.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    await page.goto(site)
                    await expect(page.locator(".status")).to_have_text("online", timeout=10_000)

                    message_id = await send_chat(
                        client,
                        {
                            "botId": bot["id"],
                            "messengerType": "WEB",
                            "text": "Your parcel arrives today.",
                            "buttonUrl": "https://example.com/track",
                            "buttonText": "Track parcel",
                        },
                        messengerUserId="customer-1",
                    )
                    shown = page.locator(".msg.bot", has_text="Your parcel arrives today.")
                    await expect(shown).to_be_visible(timeout=10_000)
                    await expect(shown.locator("a.button")).to_have_text("Track parcel")
                    # The panel is open on a visible page: the widget reports it read.
                    read = await wait_status(client, message_id, {"read"})
                    assert [e["status"] for e in read["history"]][-2:] == ["delivered", "read"]

                    await page.locator("input[name=text]").fill("Where is it now?")
                    await page.locator("input[name=text]").press("Enter")
                    answer = page.locator(".msg.bot", has_text="Got it: Where is it now?")
                    await expect(answer).to_be_visible(timeout=10_000)
                    mine = page.locator(".msg.me", has_text="Where is it now?")
                    await expect(mine).to_have_count(1)
                    await expect(mine).not_to_have_class("msg me pending")
                    assert not errors, errors
                finally:
                    await browser.close()
    assert backend.received[0][1]["message"]["text"] == "Where is it now?"
    assert backend.received[0][1]["conversation"]["address"] == "customer-1"
