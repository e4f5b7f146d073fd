"""Helpers for the web cabinet's tests: users, signed-in HTTP clients, a real browser."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import AsyncIterator

import httpx
from playwright.async_api import Browser, Page, async_playwright, expect

from herald.services import users
from tests.servers import RunningHerald

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


async def make_user(
    herald: RunningHerald,
    email: str = "ann@example.com",
    role: str = "operator",
    password: str | None = PASSWORD,
    project_id: str | None = None,
) -> str:
    """A user of the test project (or ``project_id``); returns the user's id."""
    async with herald.herald.sessions() as session, session.begin():
        user = await users.create_user(
            session, project_id or herald.project.project_id, email, role, password=password
        )
        return user.id


async def sign_in_link(herald: RunningHerald, email: str) -> str:
    """A one-time sign-in link for the user, as the CLI prints it."""
    async with herald.herald.sessions() as session, session.begin():
        user = await users.find_user(session, email)
        token = await users.sign_in_link(session, user)
    return f"{herald.url}/sign-in/link/{token}"


def csrf_of(page_html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = _CSRF.search(page_html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@contextlib.asynccontextmanager
async def browser_client(herald: RunningHerald) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that keeps cookies like a browser (no API key)."""
    async with httpx.AsyncClient(base_url=herald.url, timeout=30) as client:
        yield client


async def sign_in_over_http(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    """Post the sign-in form as a browser would (its CSRF token from the form's page)."""
    form = await client.get("/sign-in")
    return await client.post(
        "/sign-in",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
    )


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium under Playwright (never a downloaded browser)."""
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in_browser(
    page: Page, herald: RunningHerald, email: str, password: str = PASSWORD
) -> None:
    """Sign in through the form, like a person; the Messages page opens."""
    await page.goto(f"{herald.url}/sign-in")
    await page.get_by_label("E-mail address").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Messages", level=1)).to_be_visible()
