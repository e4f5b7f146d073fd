"""Screenshots of the web cabinet's pages, in English and Russian, at 1280 and 375 px.

Starts Herald on a free port of 127.0.0.1 with a throwaway SQLite database and the fake
Twilio (tests/fakes), fills it with sample messages (delivered, undelivered with Twilio's
error, scheduled, cancelled), signs in with Debian's Chromium through Playwright and saves
``docs/screenshots/<page>-<lang>-<width>.png``. Nothing leaves the machine.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--only messages]

Pages added to the cabinet later add an entry to ``PAGES`` (name, path; ``{message}`` is the
delivered sample's id, ``{failed}`` the undelivered one's).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fakes and test servers live in tests/

from cryptography.fernet import Fernet  # noqa: E402
from playwright.async_api import Page, async_playwright, expect  # noqa: E402
from tests.e2e.cabinet_pages import CHROMIUM, PASSWORD, make_user  # noqa: E402
from tests.e2e.helpers import add_twilio_sender, send_sms, wait_status  # noqa: E402
from tests.fakes.twilio import FakeTwilio  # noqa: E402
from tests.servers import RunningHerald, make_settings, running_herald  # noqa: E402

from herald.store.migrate import upgrade  # noqa: E402

EMAIL = "anna@acme.example"
# (file name, path); a path is formatted with the sample messages' ids.
PAGES: list[tuple[str, str]] = [
    ("sign-in", "/sign-in"),
    ("messages", "/messages"),
    ("message", "/messages/{message}"),
    ("message-failed", "/messages/{failed}"),
    ("account", "/account"),
    ("send", "/send?template={template}"),
    ("templates", "/templates"),
    ("template", "/templates/{template}"),
    ("tasks", "/tasks"),
    ("task-new", "/tasks/new"),
    ("task-upload", "/tasks/{task_draft}"),
    ("task-check", "/tasks/{task_ready}"),
    ("task-progress", "/tasks/{task_done}"),
]
LANGUAGES = {"en": "en-GB", "ru": "ru-RU"}
WIDTHS = (1280, 375)


async def _samples(herald: RunningHerald, fake: FakeTwilio) -> dict[str, str]:
    """Messages in the states a person meets; returns the ids the pages' paths name."""
    fake.set_outcome("+14155550199", "undelivered", 30003)
    async with herald.client() as api:
        await add_twilio_sender(api, fake)
        template = await api.post(
            "/api/v1/templates",
            json={
                "name": "order-shipped",
                "channels": {"sms": {"text": "Hello {{name}}, order {{order}} has shipped."}},
            },
        )
        template_id = template.json().get("id") if template.status_code == 201 else None
        ids: dict[str, str] = {"template": template_id or ""}
        for n, phone in enumerate(("+14155550100", "+14155550101", "+14155550102")):
            extra: dict[str, Any] = (
                {"templateId": template_id, "variables": {"name": "Anna", "order": f"A-10{n}"}}
                if template_id
                else {}
            )
            body = {"messages": [{"destinations": [{"phone": phone}], **extra}]}
            if not template_id:
                body["messages"][0]["channels"] = {"sms": {"text": f"Order A-10{n} has shipped."}}
            answer = await api.post("/api/v1/messages", json=body)
            ids.setdefault("message", answer.json()[0]["id"])
        ids["failed"] = await send_sms(api, "+14155550199", "Your code is 4711")
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        await send_sms(
            api,
            "+14155550103",
            "Reminder: your appointment is tomorrow at 10:00. https://example.com/appointments/2291",
            sendAt=tomorrow,
            allowedTimeRanges=[["09:00:00", "20:00:00"]],
        )
        cancelled = await send_sms(api, "+14155550104", "Sale starts Friday", sendAt=tomorrow)
        await api.delete(f"/api/v1/messages/{cancelled}")
        await wait_status(api, ids["message"], {"delivered"})
        await wait_status(api, ids["failed"])
        ids.update(await _task_samples(api, template_id))
    return ids


async def _task_samples(api: Any, template_id: str | None) -> dict[str, str]:
    """Send tasks at three steps: waiting for its file, checked (with bad rows), done."""
    good = "".join(f"+1415555{2100 + n},Client {n},A-2{n:02d}\n" for n in range(12))
    bad = "12345,Bad number,A-900\n,No number,A-901\n+14155552100,Twice,A-902\n"
    ids: dict[str, str] = {}
    for key, name in (("task_draft", "January newsletter"), ("task_ready", "Parcels, Monday")):
        made = await api.post("/api/v1/tasks", json={"name": name, "templateId": template_id})
        ids[key] = made.json()["id"]
    ids["task_done"] = (
        await api.post("/api/v1/tasks", json={"name": "Parcels, Friday", "templateId": template_id})
    ).json()["id"]
    for key in ("task_ready", "task_done"):
        content = ("phone,name,order\n" + good + bad).encode()
        await api.post(f"/api/v1/tasks/{ids[key]}", files={"messages": ("parcels.csv", content)})
    await api.post(f"/api/v1/startedTasks/{ids['task_done']}", content=b"[]")
    for _ in range(300):
        status = (await api.get(f"/api/v1/tasks/{ids['task_done']}")).json()["status"]
        if status == "done":
            break
        await asyncio.sleep(0.1)
    return ids


async def _sign_in(page: Page, url: str) -> None:
    await page.goto(f"{url}/sign-in")
    await page.locator("#email").fill(EMAIL)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("form.stack button[type=submit]").click()
    await expect(page.locator("h1")).to_be_visible()


async def shoot(out: Path, only: set[str]) -> list[Path]:
    """Take every screenshot; returns the files written."""
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp, FakeTwilio() as fake:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'herald.db'}"
        upgrade(url)
        settings = make_settings(url, Fernet.generate_key().decode(), data_dir=Path(tmp))
        async with running_herald(settings) as herald:
            await make_user(herald, EMAIL, role="admin")
            ids = await _samples(herald, fake)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    for language, locale in LANGUAGES.items():
                        for width in WIDTHS:
                            context = await browser.new_context(
                                locale=locale,
                                viewport={"width": width, "height": 900},
                                timezone_id="Europe/Moscow",
                            )
                            page = await context.new_page()
                            for name, path in PAGES:
                                if only and name not in only:
                                    continue
                                if name != "sign-in" and "herald_session" not in {
                                    c["name"] for c in await context.cookies()
                                }:
                                    await _sign_in(page, herald.url)
                                await page.goto(herald.url + path.format(**ids))
                                await page.wait_for_load_state("networkidle")
                                target = out / f"{name}-{language}-{width}.png"
                                await page.screenshot(path=str(target), full_page=True)
                                written.append(target)
                            await context.close()
                finally:
                    await browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", action="append", default=[], help="a page's name (repeatable)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(shoot(args.out, set(args.only))):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
