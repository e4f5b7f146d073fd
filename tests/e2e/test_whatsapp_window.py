"""WhatsApp's 24-hour window in the cascade, against the fake Twilio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from herald.store.bots import record_inbound_activity
from tests.e2e.helpers import add_twilio_sender, wait_status
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald

PHONE = "+14155552671"
CONTENT_SID = "HX" + "ab" * 16


@pytest.fixture
async def client(herald: RunningHerald, fake: FakeTwilio) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        await add_twilio_sender(c, fake)
        await add_twilio_sender(c, fake, channel="whatsapp", provider="twilio-whatsapp")
        yield c


def whatsapp_first(**whatsapp: Any) -> dict[str, Any]:
    return {
        "messages": [
            {
                "destinations": [{"phone": PHONE}],
                "channels": {
                    "whatsapp": {"text": "Your table is ready", **whatsapp},
                    "sms": {"text": "Your table is ready"},
                },
            }
        ]
    }


def sent_to(fake: FakeTwilio) -> list[str]:
    return [r.params["To"][0] for r in fake.requests]


async def test_outside_the_window_without_a_template_moves_on(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    message_id = (await client.post("/api/v1/messages", json=whatsapp_first())).json()[0]["id"]
    message = await wait_status(client, message_id, {"delivered"})
    channels = {d["channel"]: d for d in message["deliveries"]}
    assert channels["whatsapp"]["status"] == "failed"
    assert channels["whatsapp"]["error"]["code"] == "whatsapp_outside_window"
    assert channels["whatsapp"]["attempts"] == []  # never offered to Twilio
    assert sent_to(fake) == [PHONE]  # the SMS only


async def test_outside_the_window_the_approved_template_goes(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    body = whatsapp_first(contentSid=CONTENT_SID, templateData={"1": "Ann"})
    message_id = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
    await wait_status(client, message_id, {"delivered", "read"})
    [request] = fake.requests
    assert request.params["To"] == [f"whatsapp:{PHONE}"]
    assert request.params["ContentSid"] == [CONTENT_SID]
    assert request.params["ContentVariables"] == ['{"1": "Ann"}']
    assert "Body" not in request.params


async def test_inside_the_window_free_text_goes(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    async with herald.herald.sessions() as session, session.begin():
        await record_inbound_activity(
            session, herald.project.project_id, "whatsapp", PHONE, herald.herald.clock.now()
        )
    body = whatsapp_first(contentSid=CONTENT_SID)
    message_id = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
    await wait_status(client, message_id, {"delivered", "read"})
    [request] = fake.requests
    assert request.params["Body"] == ["Your table is ready"]
    assert "ContentSid" not in request.params


async def create_bot(client: httpx.AsyncClient, fake: FakeTwilio) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/bots",
        json={
            "name": "Support",
            "accountSid": fake.account_sid,
            "authToken": fake.auth_token,
            "phone": "+15005550007",
            "baseUrl": fake.base_url,
        },
    )
    assert response.status_code == 201, response.text
    bot: dict[str, Any] = response.json()
    return bot


async def test_an_inbound_sms_does_not_open_the_window(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(client, fake)
    answered = await fake.send_inbound(
        "+15005550007", PHONE, "hello by SMS", url=bot["inboundWebhookUrl"]
    )
    assert answered.status_code == 200, answered.text
    message_id = (await client.post("/api/v1/messages", json=whatsapp_first())).json()[0]["id"]
    message = await wait_status(client, message_id, {"delivered"})
    channels = {d["channel"]: d for d in message["deliveries"]}
    # Meta's policy: only the person's message in WhatsApp opens the window.
    assert channels["whatsapp"]["error"]["code"] == "whatsapp_outside_window"
    assert sent_to(fake) == [PHONE]  # the SMS only, no free text wasted on a 131047


async def test_an_inbound_whatsapp_message_opens_the_window(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(client, fake)
    answered = await fake.send_inbound(
        "whatsapp:+15005550007", f"whatsapp:{PHONE}", "hola", url=bot["inboundWebhookUrl"]
    )
    assert answered.status_code == 200, answered.text
    message_id = (await client.post("/api/v1/messages", json=whatsapp_first())).json()[0]["id"]
    await wait_status(client, message_id, {"delivered", "read"})
    [request] = fake.requests
    assert request.params["To"] == [f"whatsapp:{PHONE}"]
    assert request.params["Body"] == ["Your table is ready"]
