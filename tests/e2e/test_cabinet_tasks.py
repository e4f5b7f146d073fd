"""The cabinet's Send tasks pages in a real browser (Debian's Chromium driven by Playwright)
against Herald and the fake Twilio: the seed's flow with an XLSX file holding bad rows (the
report, Create, pause, resume, done, the results file), a 100,000-row upload, a viewer's
limits, and the pages in Russian."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from cryptography.fernet import Fernet
from playwright.async_api import FilePayload, Page, expect

from herald.config import Settings
from tests.e2e.cabinet_pages import (
    browser_client,
    chromium,
    csrf_of,
    make_user,
    sign_in_browser,
    sign_in_over_http,
)
from tests.e2e.helpers import add_twilio_sender
from tests.e2e.test_tasks_api import xlsx_bytes
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, make_settings, running_herald

GOOD_ROWS = 10
# Records the upload bar's value (a <progress> reflects .value into its attribute).
WATCH_PROGRESS = """() => {
  const bar = document.getElementById("upload-bar");
  new MutationObserver(() => sessionStorage.setItem("upload-bar", bar.getAttribute("value")))
    .observe(bar, {attributes: true});
}"""


@pytest.fixture
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    # SQLite only: the pages call the services the API calls, tested on both databases.
    return make_settings(sqlite_url, Fernet.generate_key().decode(), data_dir=tmp_path / "data")


@pytest.fixture
async def herald(settings: Settings, fake: FakeTwilio) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings) as running:
        async with running.client() as api:
            # Two messages a second: a task of ten rows sends long enough to be paused.
            await add_twilio_sender(api, fake, rateLimit=2)
        yield running


async def make_template(herald: RunningHerald) -> str:
    async with herald.client() as api:
        response = await api.post(
            "/api/v1/templates",
            json={"name": "Parcel ready", "channels": {"sms": {"text": "Hi {{ name }}!"}}},
        )
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    return template_id


async def api_task(herald: RunningHerald, task_id: str) -> dict[str, Any]:
    async with herald.client() as api:
        response = await api.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def sheet_rows(content: bytes) -> list[list[Any]]:
    sheet = openpyxl.load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


async def download(page: Page, link_name: str) -> bytes:
    async with page.expect_download() as info:
        await page.get_by_role("link", name=link_name).click()
    path = await (await info.value).path()
    return await asyncio.to_thread(Path(path).read_bytes)


def payload(name: str, mime_type: str, content: bytes) -> FilePayload:
    """A file for an <input type=file>, as Playwright takes it."""
    return {"name": name, "mimeType": mime_type, "buffer": content}


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


async def new_task(page: Page, herald: RunningHerald, name: str, template: str) -> str:
    """Send tasks → New task → name → type of notification; returns the task's id."""
    await page.goto(f"{herald.url}/tasks")
    await page.get_by_role("link", name="New task").click()
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Type of notification").select_option(label=template)
    await page.get_by_role("button", name="Next: the sample file").click()
    await expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    return page.url.rsplit("/", 1)[-1]


async def test_the_seeds_task_flow_with_bad_rows_pause_resume_and_results(
    herald: RunningHerald, fake: FakeTwilio
) -> None:
    await make_template(herald)
    await make_user(herald, "ann@example.com", role="operator")
    async with chromium() as browser:
        page = await browser.new_page()
        errors = watch_errors(page)
        await sign_in_browser(page, herald, "ann@example.com")
        await (
            page.get_by_role("navigation", name="Sections")
            .get_by_role("link", name="Send tasks")
            .click()
        )
        await expect(page.get_by_text("No send tasks yet.")).to_be_visible()
        task_id = await new_task(page, herald, "December parcels", "Parcel ready")

        sample = sheet_rows(await download(page, "Sample file (XLSX)"))
        assert sample[0] == ["phone", "name"]
        good = [[f"+1415555{2700 + i}", f"Person {i}"] for i in range(GOOD_ROWS)]
        bad: list[list[Any]] = [["12345", "Bad number"], [None, "No number"], [good[0][0], "Twice"]]
        # Spreadsheet rows: the header is row 1, so the bad rows are 12, 13 and 14.
        content = xlsx_bytes([sample[0], *good, *bad])
        await page.get_by_label("File (CSV, XLSX, XLS or ODS)").set_input_files(
            files=[payload("parcels.xlsx", "application/octet-stream", content)]
        )
        await page.get_by_role("button", name="Upload and check").click()

        # The validation report: each bad row with its row, column and reason.
        await expect(page.get_by_role("heading", name="Create the task")).to_be_visible(
            timeout=30_000
        )
        report = page.locator("table.report tbody tr")
        await expect(report).to_have_count(3)
        texts = [await report.nth(i).inner_text() for i in range(3)]
        assert "12" in texts[0] and "phone" in texts[0] and "12345" in texts[0], texts
        assert "13" in texts[1] and "missing" in texts[1].lower(), texts
        assert "14" in texts[2] and "earlier row" in texts[2], texts
        await expect(page.locator("dl.counts")).to_contain_text(str(GOOD_ROWS))
        assert fake.requests == []  # nothing sent yet
        assert (await api_task(herald, task_id))["status"] == "ready"

        await page.get_by_role("button", name="Create", exact=True).click()
        await expect(page.locator("[data-task-status]")).to_have_text("Sending")
        await page.get_by_role("button", name="Pause").click()
        await expect(page.locator("[data-task-status]")).to_have_text("Paused")
        assert (await api_task(herald, task_id))["status"] == "paused"
        await expect(page.get_by_role("heading", name="Progress")).to_be_visible()
        await page.get_by_role("button", name="Resume").click()
        await expect(page.locator("[data-task-status]")).to_have_text("Sending")
        # The page follows the task by itself (polling) and shows it done.
        await expect(page.locator("[data-task-status]")).to_have_text("Done", timeout=60_000)
        await expect(page.locator('[data-count="delivered"]')).to_have_text(str(GOOD_ROWS))
        assert len(fake.requests) == GOOD_ROWS

        results = sheet_rows(await download(page, "Results (XLSX)"))
        header, rows = results[0], results[1:]
        assert header[:3] == ["row", "phone", "name"]
        status = header.index("status")
        assert len(rows) == GOOD_ROWS + len(bad)
        assert [r[status] for r in rows].count("delivered") == GOOD_ROWS
        assert [r[status] for r in rows].count("rejected") == len(bad)

        report_csv = (await download(page, "Rows not valid (CSV)")).decode("utf-8-sig")
        assert [r["row"] for r in csv.DictReader(io.StringIO(report_csv))] == ["12", "13", "14"]

        # The list shows the task with its status and counts.
        await page.get_by_role("link", name="Send tasks").first.click()
        row = page.locator("table.tasks tbody tr").first
        await expect(row).to_contain_text("December parcels")
        await expect(row).to_contain_text("Done")
        await expect(row).to_contain_text("100 %")

        # In Russian.
        await page.get_by_role("button", name="Русский").click()
        await expect(page.get_by_role("heading", name="Задачи рассылки", level=1)).to_be_visible()
        await expect(row).to_contain_text("Завершено")
        await row.get_by_role("link").click()
        await expect(page.get_by_role("heading", name="Проверка файла")).to_be_visible()
        await expect(page.locator("table.report")).to_contain_text("Неверный номер телефона")
        assert not errors, errors


async def test_a_100000_row_file_uploads_with_its_progress_and_is_read(
    herald: RunningHerald, tmp_path: Path
) -> None:
    await make_template(herald)
    await make_user(herald, "ann@example.com", role="operator")
    lines = ["phone,name"] + [f"+1415{2000000 + i:07d},P{i}" for i in range(100_000)]
    big = tmp_path / "big.csv"
    big.write_text("\n".join(lines) + "\n")
    async with chromium() as browser:
        page = await browser.new_page()
        errors = watch_errors(page)
        await sign_in_browser(page, herald, "ann@example.com")
        task_id = await new_task(page, herald, "Everyone", "Parcel ready")
        await page.get_by_label("File (CSV, XLSX, XLS or ODS)").set_input_files(big)
        # What the progress bar showed, kept across the navigation that follows the upload.
        await page.evaluate(WATCH_PROGRESS)
        await page.get_by_role("button", name="Upload and check").click()
        # The file arrived whole and is being read on the server (or already is).
        await expect(page.locator("[data-task-status]")).not_to_have_text(
            "Waiting for its file", timeout=60_000
        )
        assert await page.evaluate("sessionStorage.getItem('upload-bar')") == "100"
        task = await api_task(herald, task_id)
        assert task["fileName"] == "big.csv"
        assert task["status"] in ("importing", "ready")
        stored = Path(str(herald.herald.settings.data_dir)) / "tasks" / task_id / "upload.csv"
        assert stored.stat().st_size == big.stat().st_size
        # Rows come in while the page watches; then the task is cancelled from the page.
        async with asyncio.timeout(120):
            while (await api_task(herald, task_id))["rowsRead"] == 0:
                await asyncio.sleep(0.2)
        await page.reload()
        await page.get_by_role("button", name="Cancel the task").click()
        await expect(page.locator("[data-task-status]")).to_have_text("Cancelled")
        assert not errors, errors


async def test_the_upload_form_shows_why_a_file_is_refused(herald: RunningHerald) -> None:
    await make_template(herald)
    await make_user(herald, "ann@example.com", role="operator")
    async with chromium() as browser:
        page = await browser.new_page()
        await sign_in_browser(page, herald, "ann@example.com")
        await new_task(page, herald, "Broken", "Parcel ready")
        await page.get_by_label("File (CSV, XLSX, XLS or ODS)").set_input_files(
            files=[payload("photo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(64))]
        )
        await page.get_by_role("button", name="Upload and check").click()
        await expect(page.get_by_role("alert")).to_contain_text("photo.png")
        await expect(page.locator("[data-task-status]")).to_have_text("Waiting for its file")


async def _viewer(herald: RunningHerald) -> tuple[str, str]:
    template_id = await make_template(herald)
    async with herald.client() as api:
        made = await api.post(
            "/api/v1/tasks", json={"name": "Read only", "templateId": template_id}
        )
        task_id = made.json()["id"]
        body = "phone,name\n+14155552800,Ann\n"
        uploaded = await api.post(
            f"/api/v1/tasks/{task_id}", files={"messages": ("a.csv", body.encode())}
        )
        assert uploaded.status_code == 200, uploaded.text
    await make_user(herald, "vic@example.com", role="viewer")
    return template_id, task_id


async def test_a_viewer_sees_tasks_without_buttons_and_posts_are_refused(
    herald: RunningHerald, fake: FakeTwilio
) -> None:
    template_id, task_id = await _viewer(herald)
    async with browser_client(herald) as client:
        await sign_in_over_http(client, "vic@example.com")
        listed = await client.get("/tasks")
        assert listed.status_code == 200
        assert "Read only" in listed.text and 'href="/tasks/new"' not in listed.text
        shown = await client.get(f"/tasks/{task_id}")
        assert shown.status_code == 200
        assert "Create the task" in shown.text
        assert 'action="/tasks/' not in shown.text  # no form that changes the task
        token = csrf_of(shown.text)
        assert (await client.get("/tasks/new")).status_code == 403
        for path in ("start", "pause", "resume", "cancel"):
            answer = await client.post(f"/tasks/{task_id}/{path}", data={"csrf_token": token})
            assert answer.status_code == 403, (path, answer.status_code)
        answer = await client.post(
            "/tasks/new", data={"csrf_token": token, "name": "x", "template": template_id}
        )
        assert answer.status_code == 403
        answer = await client.post(
            f"/tasks/{task_id}/file",
            files={"file": ("b.csv", b"phone\n+14155552801\n")},
            headers={"X-CSRF-Token": token, "X-Requested-With": "XMLHttpRequest"},
        )
        assert answer.status_code == 403
        # The files a viewer may read.
        assert (await client.get(f"/tasks/{task_id}/sample?format=csv")).status_code == 200
    assert (await api_task(herald, task_id))["status"] == "ready"
    assert fake.requests == []


async def test_an_operators_post_without_its_csrf_token_is_refused(
    herald: RunningHerald,
) -> None:
    _template_id, task_id = await _viewer(herald)
    await make_user(herald, "ann@example.com", role="operator")
    async with browser_client(herald) as client:
        await sign_in_over_http(client, "ann@example.com")
        answer = await client.post(f"/tasks/{task_id}/start", data={})
        assert answer.status_code == 403
        other = httpx.AsyncClient(base_url=herald.url)
        async with other:
            signed_out = await other.post(
                f"/tasks/{task_id}/file", files={"file": ("b.csv", b"phone\n")}
            )
        assert signed_out.status_code in (303, 403)
    assert (await api_task(herald, task_id))["status"] == "ready"


async def test_the_forms_work_without_javascript(herald: RunningHerald) -> None:
    template_id = await make_template(herald)
    await make_user(herald, "ann@example.com", role="operator")
    async with browser_client(herald) as client:
        await sign_in_over_http(client, "ann@example.com")
        form = await client.get("/tasks/new")
        token = csrf_of(form.text)
        unnamed = await client.post(
            "/tasks/new", data={"csrf_token": token, "name": "", "template": template_id}
        )
        assert unnamed.status_code == 422
        assert "Give the task a name." in unnamed.text
        made = await client.post(
            "/tasks/new", data={"csrf_token": token, "name": "Plain", "template": template_id}
        )
        assert made.status_code == 303
        task_path = made.headers["location"]
        body = b"phone,name\n+14155552900,Ann\n+1,Bob\n"
        uploaded = await client.post(
            f"{task_path}/file",
            data={"csrf_token": token},
            files={"file": ("people.csv", body, "text/csv")},
        )
        assert uploaded.status_code == 303
        assert uploaded.headers["location"] == task_path
        again = await client.post(
            f"{task_path}/file",
            data={"csrf_token": token},
            files={"file": ("people.csv", body, "text/csv")},
        )
        assert again.status_code == 409
        assert "already has a file" in again.text
        task_id = task_path.rsplit("/", 1)[-1]
        async with asyncio.timeout(30):
            while (await api_task(herald, task_id))["status"] != "ready":
                await asyncio.sleep(0.1)
        page = await client.get(task_path)
        assert "Create the task" in page.text and "+1" in page.text
        missing = await client.get("/tasks/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404
