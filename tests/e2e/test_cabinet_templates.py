"""The Templates pages in a real browser (Debian's Chromium under Playwright): create a
template and watch its live preview, see a syntax error with its line and column, save a
new version, download the sample file, search, delete."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from playwright.async_api import expect

from herald.config import Settings
from tests.e2e.cabinet_pages import chromium, make_user, sign_in_browser
from tests.servers import RunningHerald, make_settings, running_herald


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    # SQLite only: the pages call the services the API calls, tested on both databases.
    return make_settings(sqlite_url, Fernet.generate_key().decode())


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings) as running:
        yield running


async def test_create_a_template_see_its_preview_version_sample_and_delete_it(
    herald: RunningHerald,
) -> None:
    await make_user(herald, "ann@example.com", role="operator")
    async with chromium() as browser:
        page = await browser.new_page(accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await sign_in_browser(page, herald, "ann@example.com")
        await (
            page.get_by_role("navigation", name="Sections")
            .get_by_role("link", name="Templates")
            .click()
        )
        await expect(page.get_by_text("No templates yet.")).to_be_visible()
        await page.get_by_role("link", name="New template").click()
        await expect(page.get_by_role("heading", name="New template", level=1)).to_be_visible()

        preview = page.locator("#preview")
        await page.get_by_label("Name", exact=True).fill("order-shipped")
        text = page.locator("#t-sms-text")
        # A syntax error: said in the preview with its line and column.
        await text.fill("Hello {{ name }},\nyour order {{ order } has shipped.")
        await expect(preview.get_by_text("Line 2, column")).to_be_visible()
        await text.fill("Hello {{ name }},\nyour order {{ order }} has shipped.")
        await expect(preview.locator(".variables-found li")).to_have_text(["name", "order"])
        await expect(preview.locator(".preview-text")).to_have_text(
            "Hello [name],\nyour order [order] has shipped."
        )
        # The variables found become sample boxes (once the text box is left).
        await text.blur()
        await page.get_by_label("order", exact=True).fill("A-1001")
        await page.get_by_label("name", exact=True).fill("Anna")
        await expect(preview.locator(".preview-text")).to_have_text(
            "Hello Anna,\nyour order A-1001 has shipped."
        )
        await expect(preview.locator(".sms-costs")).to_contain_text("GSM-7")
        await page.get_by_role("button", name="Create the template").click()
        await expect(page.get_by_text("Saved as version 1.")).to_be_visible()
        template_id = page.url.split("/templates/")[1].split("?")[0]

        # A new version: the versions list has both, the newest current.
        await page.locator("#t-sms-text").fill("Hi {{ name }}, order {{ order }} shipped.")
        await page.get_by_role("button", name="Save a new version").click()
        await expect(page.get_by_text("Saved as version 2.")).to_be_visible()
        rows = page.locator("table.cards tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_contain_text("current")

        async with page.expect_download() as downloading:
            await page.get_by_role("link", name="Download CSV").click()
        download = await downloading.value
        content = (await download.path()).read_text(encoding="utf-8-sig")
        header = next(csv.reader(io.StringIO(content)))
        assert header == ["phone", "name", "order"]

        await page.get_by_role("link", name="← Templates").click()
        await page.get_by_label("Name contains").fill("SHIPPED")
        await expect(page.get_by_role("link", name="order-shipped")).to_be_visible()
        await page.get_by_label("Name contains").fill("nothing like it")
        await expect(page.get_by_text("No template's name contains")).to_be_visible()

        await page.goto(f"{herald.url}/templates/{template_id}")
        await page.get_by_text("Delete this template").click()
        await page.get_by_role("button", name="Delete “order-shipped”").click()
        await expect(page.get_by_text("The template is deleted.")).to_be_visible()
        assert not errors, errors
    async with herald.client() as api:
        assert (await api.get(f"/api/v1/templates/{template_id}")).status_code == 404


async def test_a_refused_save_shows_each_problem_under_its_field(herald: RunningHerald) -> None:
    await make_user(herald, "ann@example.com", role="operator")
    async with chromium() as browser:
        page = await browser.new_page()
        await sign_in_browser(page, herald, "ann@example.com")
        await page.goto(f"{herald.url}/templates/new")
        await page.locator("#t-sms-text").fill("Hi {{ name }")
        await page.get_by_role("button", name="Create the template").click()
        await expect(page.locator("#problem-name")).to_contain_text("Give the template a name")
        await expect(page.locator("#problem-ch-sms-text")).to_contain_text("Line 1, column")
        await expect(page.locator("#t-sms-text")).to_have_attribute("aria-invalid", "true")
        # The text typed is kept.
        await expect(page.locator("#t-sms-text")).to_have_value("Hi {{ name }")
    async with herald.client() as api:
        assert (await api.get("/api/v1/templates")).json()["count"] == 0
