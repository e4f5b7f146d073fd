"""Send tasks over the real API: samples, uploads, reports, control and results."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from herald.config import Settings
from tests.e2e.helpers import add_twilio_sender, wait_status
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, running_herald
from tests.spreadsheet_files import write_ods, write_xls

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def task_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"data_dir": tmp_path / "data"})


@pytest.fixture
async def herald(task_settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(task_settings) as running:
        yield running


@pytest.fixture
async def client(herald: RunningHerald, fake: FakeTwilio) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        await add_twilio_sender(c, fake)
        yield c


async def make_template(client: httpx.AsyncClient, text: str) -> str:
    response = await client.post(
        "/api/v1/templates", json={"name": "promo", "channels": {"sms": {"text": text}}}
    )
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    return template_id


async def make_task(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/api/v1/tasks", json={"name": "spring sale", **body})
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


def csv_bytes(rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter).writerows(rows)
    return text.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def upload(
    client: httpx.AsyncClient, task_id: str, content: bytes, name: str = "list.csv", **data: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/tasks/{task_id}", files={"messages": (name, content)}, data=data
    )


async def wait_task(
    client: httpx.AsyncClient, task_id: str, predicate: Any, timeout: float = 20.0
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/api/v1/tasks/{task_id}/statuses")
            assert response.status_code == 200, response.text
            data: dict[str, Any] = response.json()
            if predicate(data):
                return data
            await asyncio.sleep(0.05)


def read_csv(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


async def test_template_sample_has_exactly_the_needed_columns(client: httpx.AsyncClient) -> None:
    template_id = await make_template(client, "Hi {{ name }}, {{ discount }}% off")
    response = await client.get(f"/api/v1/templates/{template_id}/sample?format=csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["phone", "discount", "name"]
    assert len(rows) == 2

    response = await client.get(f"/api/v1/templates/{template_id}/sample?format=xlsx")
    assert response.headers["content-type"] == XLSX
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).worksheets[0]
    assert [c.value for c in sheet[1]] == ["phone", "discount", "name"]

    task_id = await make_task(client, templateId=template_id)
    response = await client.get(f"/api/v1/tasks/{task_id}/sample?format=csv")
    assert response.content.decode("utf-8-sig").splitlines()[0] == "phone,discount,name"


async def test_upload_send_valid_reports_bad_rows_and_sends_the_rest(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    template_id = await make_template(client, "Hi {{ name }}!")
    task_id = await make_task(
        client, templateId=template_id, policy="send_valid", defaultRegion="US"
    )
    content = csv_bytes(
        [
            ["Phone", "name"],
            ["+14155552671", "Ann"],
            ["4155552672", "Bob"],  # national, default region US
            ["14155552673", "Cy"],  # Excel ate the +
            ["", "Nobody"],
            ["12", "Short"],
            ["+14155552671", "Ann again"],
            ["+14155552674", ""],  # missing variable
            ["+14155552675", "x" * 1700],  # too long once rendered
        ],
        delimiter=";",
    )
    response = await upload(client, task_id, content)
    assert response.status_code == 200, response.text
    task = response.json()
    assert (task["rowsRead"], task["rowsAccepted"], task["rowsRejected"]) == (8, 3, 5)
    assert task["status"] == "ready"
    assert task["messages"] == {"queued": 3}

    report = (await client.get(f"/api/v1/tasks/{task_id}/report")).json()
    by_row = {item["row"]: item for item in report["items"]}
    assert {r: i["code"] for r, i in by_row.items()} == {
        5: "missing_phone",
        6: "invalid_phone",
        7: "duplicate_destination",
        8: "missing_variables",
        9: "text_too_long",
    }
    assert by_row[8]["column"] == "name"
    assert by_row[7]["column"] == "phone"

    csv_report = await client.get(f"/api/v1/tasks/{task_id}/report?format=csv")
    assert csv_report.headers["content-disposition"].startswith("attachment")
    rows = read_csv(csv_report.content)
    assert [r["row"] for r in rows] == ["5", "6", "7", "8", "9"]
    assert rows[2]["error"].startswith("phone: ")
    assert rows[2]["phone"] == "'+14155552671"  # escaped against formula injection

    # Nothing leaves before the task is started.
    await asyncio.sleep(0.3)
    assert fake.requests == []
    response = await client.post(f"/api/v1/startedTasks/{task_id}", content=b"[]")
    assert response.status_code == 200, response.text
    await wait_task(client, task_id, lambda s: s["status"] == "done")
    assert sorted(r.params["To"][0] for r in fake.requests) == [
        "+14155552671",
        "+14155552672",
        "+14155552673",
    ]

    results = await client.get(f"/api/v1/tasks/{task_id}/results?format=xlsx")
    assert results.headers["content-type"] == XLSX
    sheet = openpyxl.load_workbook(io.BytesIO(results.content)).worksheets[0]
    table = [[c.value for c in row] for row in sheet.iter_rows()]
    header = table[0]
    assert header[:3] == ["row", "phone", "name"]
    status = {row[0]: row[header.index("status")] for row in table[1:]}
    assert status[2] == "delivered" and status[5] == "rejected"
    assert table[1][header.index("segments")] == 1

    listed = (await client.get("/api/v1/tasks")).json()
    assert listed["count"] == 1
    item = listed["items"][0]
    assert item["totalMessageCount"] == 3
    assert item["completedMessageCount"] == 3
    assert item["progress"] == 100


async def test_reject_all_stores_nothing_when_a_row_is_bad(
    client: httpx.AsyncClient, herald: RunningHerald
) -> None:
    task_id = await make_task(client, policy="reject_all")
    content = csv_bytes([["phone", "text"], ["+14155552671", "hello"], ["nope", "hi"]])
    response = await upload(client, task_id, content)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "rows_rejected"
    status = (await client.get(f"/api/v1/tasks/{task_id}/statuses")).json()
    assert status["status"] == "failed"
    assert status["messages"] == {}
    report = (await client.get(f"/api/v1/tasks/{task_id}/report")).json()
    assert [(i["row"], i["code"]) for i in report["items"]] == [(3, "invalid_phone")]
    messages = (await client.get("/api/v1/messages")).json()
    assert messages["count"] == 0


async def test_bad_requests_are_4xx_with_codes(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/tasks", json={"name": "x", "templateId": "nope"})
    assert response.status_code == 404 or response.status_code == 422, response.text
    assert response.json()["code"] == "template_not_found"
    response = await client.post("/api/v1/tasks", json={"name": "x", "defaultRegion": "ZZ"})
    assert response.json()["code"] == "invalid_region"
    response = await client.post(
        "/api/v1/tasks", json={"name": "x", "settings": {"sendAt": "yesterday-ish"}}
    )
    assert response.status_code == 422, response.text
    assert response.json()["details"]["errors"][0]["path"] == "settings.sendAt"

    task_id = await make_task(client)
    response = await client.get(f"/api/v1/messages/bulk/{task_id}")  # nothing read yet
    assert response.status_code == 409
    assert response.json()["code"] == "results_not_ready"
    response = await upload(client, task_id, b"\x00\x01binary", name="list.xls")
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_file"
    response = await upload(client, task_id, b"%PDF-1.7\n%\xe2\xe3\n1 0 obj", name="scan.pdf")
    assert response.status_code == 415, response.text
    refused = response.json()
    assert refused["code"] == "unsupported_file"
    assert "'scan.pdf' is a PDF document" in refused["error"]
    assert "CSV (.csv), Excel (.xlsx or .xls) or OpenDocument (.ods)" in refused["error"]
    assert refused["details"]["accepted"] == ["csv", "xlsx", "xls", "ods"]
    response = await upload(client, task_id, csv_bytes([["mobile", "text"], ["+1", "x"]]))
    assert response.status_code == 422
    assert response.json()["code"] == "missing_column"
    response = await upload(client, task_id, b"x")
    assert response.status_code == 409
    assert response.json()["code"] == "task_has_file"
    response = await client.post(f"/api/v1/pausedTasks/{task_id}", content=b"[]")
    assert response.status_code == 409
    response = await client.get("/api/v1/tasks/nope/statuses")
    assert response.status_code == 404
    assert response.json()["code"] == "task_not_found"
    response = await client.get(f"/api/v1/tasks/{task_id}/results?format=pdf")
    assert response.status_code == 422


async def test_bulk_async_then_download_results(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    content = xlsx_bytes(
        [["phone", "text"], [14155552671, "one"], [None, None], ["+14155552672", "two"]]
    )
    response = await client.post(
        "/api/v1/messages/bulk", files={"messages": ("list.xlsx", content)}, data={"async": "1"}
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    await wait_task(client, task_id, lambda s: s["status"] == "done")
    assert sorted(r.params["Body"][0] for r in fake.requests) == ["one", "two"]
    response = await client.get(f"/api/v1/messages/bulk/{task_id}")
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["content-type"] == XLSX


async def test_bulk_sync_answers_with_the_results_file(client: httpx.AsyncClient) -> None:
    content = csv_bytes([["phone", "text"], ["+14155552671", "=cmd|' /C calc'!A0"]])
    response = await client.post(
        "/api/v1/messages/bulk", files={"messages": ("list.csv", content)}, data={"async": ""}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment")
    rows = read_csv(response.content)
    assert rows[0]["text"].startswith("'=")
    assert rows[0]["status"] in ("queued", "sending", "sent", "delivered")


async def test_bulk_joins_repeated_csv_parts_into_one_send(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    header = ["phone", "text"]
    parts = [
        ("messages", ("a.csv", csv_bytes([header, ["+14155552671", "one"]]))),
        # The second without a final newline, the third with a BOM and CRLF lines.
        ("messages", ("b.csv", csv_bytes([header, ["+14155552672", "two"]]).rstrip(b"\r\n"))),
        (
            "messages",
            ("c.csv", b"\xef\xbb\xbfphone,text\r\n+14155552673,three\r\n"),
        ),
    ]
    response = await client.post("/api/v1/messages/bulk", files=parts, data={"async": ""})
    assert response.status_code == 200, response.text
    rows = read_csv(response.content)
    assert [r["text"] for r in rows] == ["one", "two", "three"]
    tasks = (await client.get("/api/v1/tasks")).json()
    assert tasks["count"] == 1  # one send, one results file

    for other in [
        ("d.csv", csv_bytes([["mobile", "text"], ["+14155552674", "four"]])),
        ("e.xlsx", xlsx_bytes([header, ["+14155552675", "five"]])),
    ]:
        refused = await client.post(
            "/api/v1/messages/bulk", files=[parts[0], ("messages", other)], data={"async": ""}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "files_not_joinable"
    assert (await client.get("/api/v1/tasks")).json()["count"] == 1  # nothing made


@pytest.mark.parametrize(
    "other", [("b.csv", b"\x00\x01 not text"), ("b.pdf", b"%PDF-1.4\n1 0 obj")]
)
async def test_bulk_refuses_a_part_that_is_no_spreadsheet(
    client: httpx.AsyncClient, other: tuple[str, bytes]
) -> None:
    first = ("a.csv", csv_bytes([["phone", "text"], ["+14155552671", "one"]]))
    refused = await client.post(
        "/api/v1/messages/bulk",
        files=[("messages", first), ("messages", other)],
        data={"async": "1"},
    )
    # Found by `make fuzz`: the second part's format problem was a 500.
    assert refused.status_code == 415, refused.text
    assert refused.json()["code"] == "unsupported_file"
    assert other[0] in refused.json()["error"]
    assert (await client.get("/api/v1/tasks")).json()["count"] == 0


async def test_headers_fill_variables_whatever_their_case_and_a_missing_one_refuses_the_file(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    template_id = await make_template(
        client, "Hi {{ name }} from {{ city }}{{ tail | default('') }}"
    )
    # Without the city column every row could only be rejected: the file is refused once.
    task_id = await make_task(client, templateId=template_id)
    content = csv_bytes([["Phone", "Name"], ["+14155552671", "Ann"], ["+14155552672", "Bob"]])
    response = await upload(client, task_id, content)
    assert response.status_code == 422, response.text
    refused = response.json()
    assert refused["code"] == "missing_column"
    assert "'city'" in refused["error"] and "'name'" not in refused["error"]
    assert "'tail'" not in refused["error"]  # it has a default
    status = (await client.get(f"/api/v1/tasks/{task_id}/statuses")).json()
    assert status["status"] == "failed"
    assert (await client.get(f"/api/v1/tasks/{task_id}/report")).json()["count"] == 0
    assert (await client.get("/api/v1/messages")).json()["count"] == 0

    task_id = await make_task(client, templateId=template_id)
    content = csv_bytes([["PHONE", "Name", "CITY"], ["+14155552671", "Ann", "Paris"]])
    response = await upload(client, task_id, content)
    assert response.status_code == 200, response.text
    assert response.json()["rowsAccepted"] == 1
    (await client.post(f"/api/v1/startedTasks/{task_id}", content=b"[]")).raise_for_status()
    await wait_task(client, task_id, lambda s: s["status"] == "done")
    assert [r.params["Body"][0] for r in fake.requests] == ["Hi Ann from Paris"]


@pytest.mark.parametrize("write", [write_xls, write_ods], ids=["xls", "ods"])
async def test_xls_and_ods_are_sent_and_answered_with_xlsx_results(
    client: httpx.AsyncClient, fake: FakeTwilio, tmp_path: Path, write: Any
) -> None:
    fmt = write.__name__.removeprefix("write_")
    path = write(
        tmp_path / f"list.{fmt}",
        [["Phone", "text"], [14155552671, "one"], [None, None], ["+14155552672", "two"]],
    )
    response = await client.post(
        "/api/v1/messages/bulk",
        files={"messages": (path.name, path.read_bytes())},
        data={"async": ""},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    assert response.headers["content-disposition"].endswith('list-results.xlsx"')
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).worksheets[0]
    table = [[c.value for c in row] for row in sheet.iter_rows()]
    assert table[0][:3] == ["row", "phone", "text"]
    assert [row[:3] for row in table[1:]] == [
        [2, "14155552671", "one"],
        [4, "+14155552672", "two"],
    ]
    assert all(row[table[0].index("messageId")] for row in table[1:])
    assert (await client.get("/api/v1/tasks")).json()["items"][0]["fileFormat"] == fmt


async def test_xlsx_samples_and_results_hold_phones_as_plain_text(
    client: httpx.AsyncClient,
) -> None:
    template_id = await make_template(client, "Hi {{ name }}")
    sample = await client.get(f"/api/v1/templates/{template_id}/sample?format=xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(sample.content)).worksheets[0]
    assert (sheet["A2"].value, sheet["A2"].data_type) == ("+14155552671", "s")

    workbook = openpyxl.Workbook()
    upload_sheet = workbook.active
    assert upload_sheet is not None
    for row in (["phone", "name"], ["+14155552671", "=1+1"], ["+1", "Bob"]):
        upload_sheet.append(row)
    upload_sheet["B2"].data_type = "s"  # text typed in a cell formatted as text
    buffer = io.BytesIO()
    workbook.save(buffer)
    content = buffer.getvalue()
    response = await client.post(
        "/api/v1/messages/bulk",
        files={"messages": ("list.xlsx", content)},
        data={"async": "", "templateId": template_id},
    )
    assert response.status_code == 200, response.text
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).worksheets[0]
    cells = {(c.row, c.column): c for row in sheet.iter_rows() for c in row}
    # No apostrophe in front of a phone, and text that looks like a formula stays text.
    assert (cells[2, 2].value, cells[2, 2].data_type) == ("+14155552671", "s")
    assert (cells[2, 3].value, cells[2, 3].data_type) == ("=1+1", "s")
    assert (cells[3, 2].value, cells[3, 2].data_type) == ("+1", "s")


async def test_pause_resume_cancel_while_sending(
    client: httpx.AsyncClient, fake: FakeTwilio, herald: RunningHerald
) -> None:
    # A slow sender (2 messages a second) keeps most of the task waiting.
    senders = (await client.get("/api/v1/senders")).json()["items"]
    assert senders
    response = await client.post(
        "/api/v1/senders",
        json={
            "channel": "sms",
            "provider": "twilio",
            "from": "+14155550199",
            "accountSid": fake.account_sid,
            "authToken": fake.auth_token,
            "baseUrl": fake.base_url,
            "rateLimit": 2,
            "default": True,
        },
    )
    assert response.status_code == 201, response.text
    rows = [["phone", "text"]] + [[f"+1415555{2600 + i}", f"m{i}"] for i in range(20)]
    task_id = await make_task(client)
    response = await upload(client, task_id, csv_bytes(rows))
    assert response.status_code == 200, response.text
    await client.post(f"/api/v1/startedTasks/{task_id}", content=b"[]")
    await wait_task(client, task_id, lambda s: len(fake.requests) >= 1)
    response = await client.post(f"/api/v1/pausedTasks/{task_id}", content=b"[]")
    assert response.status_code == 200, response.text
    # Messages a worker claimed before the pause wait for their rate-limit slot (within a
    # second) and still go: they were already dispatched.
    await asyncio.sleep(1.2)
    sent_at_pause = len(fake.requests)
    await asyncio.sleep(1.5)
    assert len(fake.requests) == sent_at_pause < 20
    status = (await client.get(f"/api/v1/tasks/{task_id}/statuses")).json()
    assert status["status"] == "paused"

    response = await client.request("DELETE", f"/api/v1/pausedTasks/{task_id}", content=b"[]")
    assert response.status_code == 200, response.text
    await wait_task(client, task_id, lambda s: len(fake.requests) > sent_at_pause)
    response = await client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()["cancelledMessageCount"]
    await asyncio.sleep(1.0)
    status = (await client.get(f"/api/v1/tasks/{task_id}/statuses")).json()
    assert status["status"] == "cancelled"
    assert status["messages"].get("cancelled") == cancelled
    assert cancelled + len(fake.requests) == 20
    sent = sum(n for s, n in status["messages"].items() if s != "cancelled")
    assert sent == len(fake.requests)

    response = await client.request("DELETE", f"/api/v1/tasks/{task_id}", content=b"[]")
    assert response.status_code == 200
    assert (await client.get(f"/api/v1/tasks/{task_id}")).status_code == 404


async def test_messages_given_a_task_id_obey_the_task(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    """Issue 18: TWIN's SDK makes a task with only a name and sends with its taskId."""

    def sms(phone: str, **extra: Any) -> dict[str, Any]:
        body = {"destinations": [{"phone": phone}], "channels": {"sms": {"text": "hi"}}}
        return {"messages": [body], **extra}

    task_id = await make_task(client)
    response = await client.post(f"/api/v1/pausedTasks/{task_id}", content=b"[]")
    assert response.status_code == 200, response.text
    response = await client.post("/api/v1/messages", json=sms("+14155552671", taskId=task_id))
    assert response.status_code == 201, response.text
    held = response.json()[0]["id"]
    other = (await client.post("/api/v1/messages", json=sms("+14155552672"))).json()[0]["id"]
    await wait_status(client, other)  # the workers ran meanwhile
    assert [r.params["To"][0] for r in fake.requests] == ["+14155552672"]
    assert (await client.get(f"/api/v1/messages/{held}")).json()["status"] == "queued"

    response = await client.request("DELETE", f"/api/v1/pausedTasks/{task_id}", content=b"[]")
    assert response.status_code == 200, response.text
    assert (await wait_status(client, held))["status"] == "delivered"
    response = await client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert response.status_code == 200, response.text
    refused = await client.post("/api/v1/messages", json=sms("+14155552673", taskId=task_id))
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "task_not_open"
    assert "cancelled" in refused.json()["error"]
    assert len(fake.requests) == 2


async def test_a_finished_task_is_stored_done_with_its_last_messages_end(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    """Issue 18: the list says done (and ?status=done finds it) without anyone opening the
    task; finishedAt is when its last message became final."""
    task_id = await make_task(client)
    rows = [["phone", "text"], ["+14155552671", "one"], ["+14155552672", "two"]]
    assert (await upload(client, task_id, csv_bytes(rows))).status_code == 200
    await client.post(f"/api/v1/startedTasks/{task_id}", content=b"[]")
    async with asyncio.timeout(20):
        while not (listed := (await client.get("/api/v1/tasks?status=done")).json())["count"]:
            await asyncio.sleep(0.05)
    [item] = listed["items"]
    assert (item["id"], item["status"]) == (task_id, "done")
    messages = (await client.get("/api/v1/messages", params={"taskId": task_id})).json()
    ends = [m["deliveredAt"] for m in messages["items"]]
    assert len(ends) == 2 and all(ends)
    assert item["finishedAt"] == max(ends, key=datetime.fromisoformat)
    assert (await client.get("/api/v1/tasks?status=running")).json()["count"] == 0
    late = {"destinations": [{"phone": "+14155552673"}], "channels": {"sms": {"text": "late"}}}
    refused = await client.post("/api/v1/messages", json={"taskId": task_id, "messages": [late]})
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "task_not_open"
    assert len(fake.requests) == 2


async def test_twin_create_update_and_list(client: httpx.AsyncClient) -> None:
    ranges = [["09:00:00", "21:00:00"]]
    task_id = await make_task(client, allowedTimeRanges=ranges)
    response = await client.put(
        f"/api/v1/tasks/{task_id}",
        json={"name": "renamed", "allowedTimeRanges": [["10:00:00", "20:00:00"]]},
    )
    assert response.status_code == 200, response.text
    response = await client.put(
        f"/api/v1/tasks/{task_id}", json={"allowedTimeRanges": [["25:00:00", "20:00:00"]]}
    )
    assert response.status_code == 422
    assert response.json()["details"]["errors"][0]["path"] == "settings.allowedTimeRanges"
    listed = (await client.get("/api/v1/tasks", params={"status": "draft,ready"})).json()
    assert listed["count"] == 1
    item = listed["items"][0]
    assert item["name"] == "renamed"
    assert item["allowedTimeRanges"] == [["10:00:00", "20:00:00"]]
    assert item["settings"]["channels"] == {"sms": {"text": "{{ text }}"}}
    for key in ("totalMessageCount", "progress", "completedMessageCount"):
        assert item[key] == 0
    assert (await client.get("/api/v1/tasks", params={"name": "nothing"})).json()["count"] == 0
    await upload(client, task_id, csv_bytes([["phone", "text"], ["+14155552671", "hi"]]))
    response = await client.put(f"/api/v1/tasks/{task_id}", json={"policy": "reject_all"})
    assert response.status_code == 409
    assert response.json()["code"] == "task_not_editable"


async def test_task_list_sorts_and_returns_only_the_fields_asked(
    client: httpx.AsyncClient,
) -> None:
    first = await make_task(client, name="first")
    second = await make_task(client, name="second")
    await upload(client, first, csv_bytes([["phone", "text"], ["+14155552671", "hi"]]))

    async def listed(**params: Any) -> list[dict[str, Any]]:
        response = await client.get("/api/v1/tasks", params=params)
        assert response.status_code == 200, response.text
        assert response.json()["count"] == 2  # TWIN's SDK needs count and items, whatever asked
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    assert [t["id"] for t in await listed()] == [second, first]
    assert [t["id"] for t in await listed(sort="-createdAt")] == [second, first]
    assert [t["id"] for t in await listed(sort="createdAt")] == [first, second]
    statuses = [t["status"] for t in await listed(sort="status")]
    assert len(set(statuses)) == 2 and statuses == sorted(statuses)
    assert [t["status"] for t in await listed(sort="-status")] == statuses[::-1]
    for query in ("fields=id,name", "fields%5B0%5D=id&fields%5B1%5D=name"):
        response = await client.get(f"/api/v1/tasks?sort=createdAt&{query}")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "count": 2,
            "items": [{"id": first, "name": "first"}, {"id": second, "name": "second"}],
        }
    bad = await client.get("/api/v1/tasks", params={"fields": "id,colour"})
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_field"
    bad = await client.get("/api/v1/tasks", params={"sort": "name"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_sort"
    assert bad.json()["details"]["allowed"] == ["createdAt", "status", "-createdAt", "-status"]
