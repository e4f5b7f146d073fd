"""A NUL character (U+0000) in anything a client sends is a 422 that names where, and changes
nothing: PostgreSQL refuses NUL in text, so such a request was a 500 there (found by
``make fuzz`` on PostgreSQL) and stored as sent on SQLite."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import pytest

from tests.e2e.test_tasks_api import csv_bytes, make_task, upload, xlsx_bytes

PHONE = "+14155552671"
NUL = "\x00"


def batch(**message: Any) -> dict[str, Any]:
    return {
        "messages": [
            {
                "destinations": [{"phone": PHONE}],
                "channels": {"sms": {"text": "hi"}},
                **message,
            }
        ]
    }


def _refused(response: httpx.Response, path: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_character", body
    assert body["error"].startswith(f"{path}: contains a NUL character"), body
    assert [e["path"] for e in body["details"]["errors"]] == [path], body


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (batch(channels={"sms": {"text": f"a{NUL}b"}}), "messages[0].channels.sms.text"),
        (batch(destinations=[{"phone": PHONE + NUL}]), "messages[0].destinations[0].phone"),
        (batch(variables={"name": NUL}), "messages[0].variables.name"),
        (batch(variables={f"na{NUL}me": "x"}), "messages[0].variables.na\\u0000me"),
        (batch(callbackData=NUL), "messages[0].callbackData"),
        ({**batch(), "taskId": NUL}, "taskId"),
    ],
)
async def test_a_message_with_a_nul_is_refused_and_not_stored(
    client: httpx.AsyncClient, body: dict[str, Any], path: str
) -> None:
    _refused(await client.post("/api/v1/messages", json=body), path)
    assert (await client.get("/api/v1/messages")).json()["count"] == 0


async def test_every_request_body_refuses_a_nul(client: httpx.AsyncClient) -> None:
    _refused(await client.post("/api/v1/templates", json={"name": f"t{NUL}"}), "name")
    _refused(
        await client.post(
            "/api/v1/templates", json={"name": "t", "channels": {"sms": {"text": NUL}}}
        ),
        "channels.sms.text",
    )
    assert (await client.get("/api/v1/templates")).json()["count"] == 0
    _refused(await client.post("/api/v1/tasks", json={"name": NUL}), "name")
    assert (await client.get("/api/v1/tasks")).json()["count"] == 0
    _refused(
        await client.patch("/api/v1/project", json={"defaultTimezone": NUL}), "defaultTimezone"
    )
    _refused(
        await client.post("/api/v1/suppressions", json={"from": "+15005550006", "to": NUL}), "to"
    )
    _refused(await client.request("DELETE", "/api/v1/messages", json={"id": [f"x{NUL}"]}), "id[0]")
    _refused(
        await client.post("/api/v1/templates/preview", json={"channels": {"sms": {"text": NUL}}}),
        "channels.sms.text",
    )


async def test_bulk_form_fields_refuse_a_nul(client: httpx.AsyncClient) -> None:
    content = csv_bytes([["phone", "text"], [PHONE, "one"]])
    for field in ("name", "templateId", "defaultRegion"):
        response = await client.post(
            "/api/v1/messages/bulk",
            files={"messages": ("list.csv", content)},
            data={"async": "", field: f"x{NUL}"},
        )
        _refused(response, field)
    assert (await client.get("/api/v1/tasks")).json()["count"] == 0


def _xlsx_with_cell_xml(text: str) -> bytes:
    """A workbook whose one text cell is written as ``text`` in the sheet's raw XML."""
    marker = "CELL-MARKER"
    plain = xlsx_bytes([["phone", "text"], [PHONE, marker]])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename).replace(marker.encode(), text.encode()))
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        # Past the first bytes, which file_format already reads as a sign of a binary file.
        (
            "list.csv",
            csv_bytes([["phone", "text"], *[[PHONE, "x" * 50]] * 200, [PHONE, f"o{NUL}ne"]]),
            "invalid_character",
        ),
        ("list.xlsx", _xlsx_with_cell_xml("o&#0;ne"), "invalid_xlsx"),
    ],
)
async def test_a_sheet_with_a_nul_is_refused(
    client: httpx.AsyncClient, name: str, content: bytes, code: str
) -> None:
    task_id = await make_task(client)
    response = await upload(client, task_id, content, name=name)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code, response.text
    assert (await client.get("/api/v1/messages")).json()["count"] == 0
    bulk = await client.post(
        "/api/v1/messages/bulk", files={"messages": (name, content)}, data={"async": ""}
    )
    assert bulk.status_code == 422, bulk.text
    assert bulk.json()["code"] == code, bulk.text
    assert (await client.get("/api/v1/messages")).json()["count"] == 0
