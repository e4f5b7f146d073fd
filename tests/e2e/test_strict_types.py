"""Request bodies take each value as the JSON type it is: ``{"rateLimit": true}`` is a 422,
not one message a second, and no string passes for a number or a boolean."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.helpers import add_twilio_sender, twilio_sender_body
from tests.e2e.test_bots_conversations import BOT_NUMBER
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald

PHONE = "+14155552671"


def sms(**channel: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"destinations": [{"phone": PHONE}], "channels": {"sms": {"text": "hi", **channel}}}
        ]
    }


def message(**fields: Any) -> dict[str, Any]:
    return {"messages": [{**sms()["messages"][0], **fields}]}


def _wrong_type(response: httpx.Response, path: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "wrong_type", body
    assert [e["path"] for e in body["details"]["errors"]] == [path], body
    assert body["error"].startswith(f"{path}: ")


@pytest.mark.parametrize("value", [True, "5", "true", [5], {"perSecond": 5}])
async def test_a_sender_rate_limit_is_a_number(
    client: httpx.AsyncClient, fake: FakeTwilio, value: Any
) -> None:
    twilio = twilio_sender_body(fake)
    _wrong_type(
        await client.post("/api/v1/senders", json={**twilio, "rateLimit": value}), "rateLimit"
    )
    listed = (await client.get("/api/v1/senders")).json()["items"]
    assert [s["provider"] for s in listed] == ["SANDBOX"]  # the one every project has
    sender = await add_twilio_sender(client, fake)
    path = f"/api/v1/senders/{sender['id']}"
    _wrong_type(await client.patch(path, json={"rateLimit": value}), "rateLimit")
    # A whole number is a number: TWIN's SDK sends floats that happen to be whole as such.
    changed = await client.patch(path, json={"rateLimit": 5})
    assert changed.status_code == 200, changed.text
    assert changed.json()["rateLimit"] == 5


async def test_flags_are_booleans_and_counts_are_integers(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    sender_path = (await add_twilio_sender(client, fake))["id"]
    for body, path in [
        ({"smartEncoding": "true"}, "smartEncoding"),
        ({"smartEncoding": 1}, "smartEncoding"),
        ({"default": "yes"}, "default"),
    ]:
        _wrong_type(await client.patch(f"/api/v1/senders/{sender_path}", json=body), path)
    for body, path in [
        (sms(validityPeriod="3600"), "messages[0].channels.sms.validityPeriod"),
        (sms(validityPeriod=True), "messages[0].channels.sms.validityPeriod"),
        (sms(validityPeriod=3600.5), "messages[0].channels.sms.validityPeriod"),
        (sms(required="false"), "messages[0].channels.sms.required"),
        (message(useShortLinks="true"), "messages[0].useShortLinks"),
        (message(useShortLinks=0), "messages[0].useShortLinks"),
        (message(groupId=12), "messages[0].groupId"),
        (
            {"messages": [{"destinations": [{"phone": 14155552671}], "channels": {}}]},
            "messages[0].destinations[0].phone",
        ),
    ]:
        response = await client.post("/api/v1/messages", json=body)
        assert response.status_code == 422, (body, response.text)
        errors = response.json()["details"]["errors"]
        assert [(e["path"], e["code"]) for e in errors] == [(path, "wrong_type")], body
    listed = await client.get("/api/v1/messages")
    assert listed.status_code == 200 and listed.json()["items"] == []
    # What TWIN's SDK sends still goes: JSON numbers and booleans as such.
    sent = await client.post(
        "/api/v1/messages",
        json=message(channels={"sms": {"text": "hi", "validityPeriod": 3600, "required": True}}),
    )
    assert sent.status_code == 201, sent.text


async def test_other_request_bodies_are_strict_too(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = {
        "name": "Support",
        "accountSid": fake.account_sid,
        "authToken": fake.auth_token,
        "phone": BOT_NUMBER,
        "baseUrl": fake.base_url,
    }
    _wrong_type(
        await client.post("/api/v1/bots", json={**bot, "replyTimeout": "5"}), "replyTimeout"
    )
    _wrong_type(await client.patch("/api/v1/project", json={"rateLimit": True}), "rateLimit")
    _wrong_type(
        await client.put("/api/v1/bandwidth/1", json={"bandwidthList": [{"bandwidth": "10"}]}),
        "bandwidthList[0].bandwidth",
    )
    preview = {"channels": {"sms": {"text": "hi"}}, "useShortLinks": "no"}
    _wrong_type(await client.post("/api/v1/templates/preview", json=preview), "useShortLinks")
    task = {"name": "t", "settings": {"channels": {"sms": {"text": "hi"}}, "useShortLinks": 1}}
    _wrong_type(await client.post("/api/v1/tasks", json=task), "settings.useShortLinks")
