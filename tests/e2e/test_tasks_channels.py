"""Send tasks on e-mail, Telegram and cascades, against the fake Twilio, SMTP and Telegram."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from herald.config import Settings
from tests.e2e.helpers import add_twilio_sender
from tests.e2e.test_tasks_api import csv_bytes, make_task, read_csv, upload, wait_task, xlsx_bytes
from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, running_herald

Fakes = tuple[FakeTwilio, FakeSmtp, FakeTelegram]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with FakeTwilio() as twilio, FakeSmtp() as smtp, FakeTelegram() as telegram:
        yield twilio, smtp, telegram


@pytest.fixture
async def herald(settings: Settings, tmp_path: Path) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings.model_copy(update={"data_dir": tmp_path})) as running:
        yield running


@pytest.fixture
async def client(herald: RunningHerald, fakes: Fakes) -> AsyncIterator[httpx.AsyncClient]:
    twilio, smtp, telegram = fakes
    async with herald.client() as c:
        await add_twilio_sender(c, twilio)
        for body in (
            {"channel": "email", "provider": "smtp", "from": "news@herald.example"},
            {"channel": "telegram", "provider": "telegram", "from": "@herald_bot"},
        ):
            extra = (
                {"baseUrl": smtp.base_url}
                if body["channel"] == "email"
                else {"botToken": telegram.token, "baseUrl": telegram.base_url}
            )
            response = await c.post("/api/v1/senders", json={**body, **extra})
            assert response.status_code == 201, response.text
        yield c


def header_of(content: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


async def test_email_then_sms_cascade_from_one_file(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    twilio, smtp, telegram = fakes
    response = await client.post(
        "/api/v1/templates",
        json={
            "name": "welcome",
            "channels": {
                "email": {"subject": "Welcome, {{ name }}", "text": "Hello {{ name }}!"},
                "sms": {"text": "Hi {{ name }}"},
            },
        },
    )
    assert response.status_code == 201, response.text
    template_id = response.json()["id"]

    # The sample has the destination columns of the channels asked for, then the variables.
    sample = await client.get(f"/api/v1/templates/{template_id}/sample?format=csv")
    assert header_of(sample.content) == ["email", "phone", "name"]
    sample = await client.get(f"/api/v1/templates/{template_id}/sample?channels=sms")
    assert header_of(sample.content) == ["phone", "name"]
    sample = await client.get(f"/api/v1/templates/{template_id}/sample?channels=telegram")
    assert header_of(sample.content) == ["messengerUserId"]
    sample = await client.get(f"/api/v1/templates/{template_id}/sample?channels=fax")
    assert sample.status_code == 400 or sample.status_code == 422, sample.text
    assert sample.json()["code"] == "unsupported_channel"

    task_id = await make_task(client, templateId=template_id)
    sample = await client.get(f"/api/v1/tasks/{task_id}/sample?format=csv")
    assert header_of(sample.content) == ["email", "phone", "name"]

    content = csv_bytes(
        [
            ["Email", "Phone", "name"],
            ["ann@example.com", "+14155552671", "Ann"],  # e-mail first; SMS not needed
            ["", "+14155552672", "Bob"],  # no e-mail: SMS only
            ["not-an-email", "+14155552673", "Cy"],
            ["", "", "Nobody"],
            ["ANN@example.com", "", "Ann again"],
            ["dee@example.com", "", ""],  # missing variable
        ]
    )
    response = await upload(client, task_id, content)
    assert response.status_code == 200, response.text
    task = response.json()
    assert (task["rowsRead"], task["rowsAccepted"], task["rowsRejected"]) == (6, 2, 4)

    report = (await client.get(f"/api/v1/tasks/{task_id}/report")).json()
    by_row = {item["row"]: (item["code"], item["column"]) for item in report["items"]}
    assert by_row == {
        4: ("invalid_email", "email"),
        5: ("missing_address", None),
        6: ("duplicate_destination", "email"),
        7: ("missing_variables", "name"),
    }
    assert "e-mail address or phone number" in report["items"][1]["message"]

    response = await client.post(f"/api/v1/startedTasks/{task_id}", content=b"[]")
    assert response.status_code == 200, response.text
    await wait_task(client, task_id, lambda s: s["status"] == "done")
    assert [m.rcpt_tos for m in smtp.messages] == [("ann@example.com",)]
    assert smtp.messages[0].message["Subject"] == "Welcome, Ann"
    assert [r.params["To"][0] for r in twilio.requests] == ["+14155552672"]
    assert [r.params["Body"][0] for r in twilio.requests] == ["Hi Bob"]
    assert telegram.requests == []

    results = read_csv((await client.get(f"/api/v1/tasks/{task_id}/results")).content)
    assert [(r["row"], r["status"], r["channel"]) for r in results] == [
        ("2", "delivered", "email"),
        ("3", "delivered", "sms"),
        ("4", "rejected", ""),
        ("5", "rejected", ""),
        ("6", "rejected", ""),
        ("7", "rejected", ""),
    ]


async def test_telegram_task_sends_each_rows_text_by_chat_id(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    _twilio, _smtp, telegram = fakes
    task_id = await make_task(client, settings={"channels": {"telegram": {}}})
    sample = await client.get(f"/api/v1/tasks/{task_id}/sample?format=csv")
    assert header_of(sample.content) == ["messengerUserId", "text"]

    content = xlsx_bytes(
        [
            ["MessengerUserId", "text"],
            [12345, "Your order shipped"],
            [None, "nobody to send to"],
            ["-100777", "Channel news"],
        ]
    )
    response = await upload(client, task_id, content, name="chats.xlsx")
    assert response.status_code == 200, response.text
    assert (response.json()["rowsAccepted"], response.json()["rowsRejected"]) == (2, 1)
    report = (await client.get(f"/api/v1/tasks/{task_id}/report")).json()
    assert [(i["row"], i["code"], i["column"]) for i in report["items"]] == [
        (3, "missing_address", "messengerUserId")
    ]
    await client.post(f"/api/v1/startedTasks/{task_id}", content=b"[]")
    await wait_task(client, task_id, lambda s: s["status"] == "done")
    sent = sorted((str(r.payload["chat_id"]), r.payload["text"]) for r in telegram.requests)
    assert sent == [("-100777", "Channel news"), ("12345", "Your order shipped")]


async def test_a_file_without_a_channels_column_is_refused(client: httpx.AsyncClient) -> None:
    task_id = await make_task(
        client, settings={"channels": {"sms": {}, "email": {"subject": "News"}}}
    )
    sample = await client.get(f"/api/v1/tasks/{task_id}/sample?format=csv")
    assert header_of(sample.content) == ["phone", "email", "text"]
    response = await upload(client, task_id, csv_bytes([["phone", "text"], ["+14155552671", "x"]]))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "missing_column"
    assert "'email'" in response.json()["error"]
    messages = (await client.get("/api/v1/messages", params={"taskId": task_id})).json()
    assert messages["count"] == 0
