"""WhatsApp through Meta's Cloud API in the cascade, against the fake Graph API and its webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from herald.channels.whatsapp_meta import signature_for
from tests.e2e.helpers import add_meta_sender, wait_status
from tests.fakes.whatsapp_meta import FakeMetaWhatsApp
from tests.servers import RunningHerald

PHONE = "+14155552671"


@pytest.fixture
def meta() -> Iterator[FakeMetaWhatsApp]:
    with FakeMetaWhatsApp() as fake:
        yield fake


@pytest.fixture
async def sender(herald: RunningHerald, meta: FakeMetaWhatsApp) -> AsyncIterator[dict[str, Any]]:
    async with herald.client() as client:
        data = await add_meta_sender(client, meta, herald.url)
    yield data


def send_body(**whatsapp: Any) -> dict[str, Any]:
    return {
        "messages": [
            {
                "destinations": [{"phone": PHONE}],
                "channels": {"whatsapp": {"text": "Table for two at 8", **whatsapp}},
            }
        ]
    }


async def test_subscription_challenge(
    herald: RunningHerald, meta: FakeMetaWhatsApp, sender: dict[str, Any]
) -> None:
    async with httpx.AsyncClient() as http:
        ok = await http.get(
            meta.webhook_url or "",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "verify-me",
                "hub.challenge": "42",
            },
        )
        assert ok.status_code == 200 and ok.text == "42"
        bad = await http.get(
            meta.webhook_url or "",
            params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"},
        )
        assert bad.status_code == 403


async def test_inside_the_window_text_goes_and_reports_arrive(
    herald: RunningHerald, meta: FakeMetaWhatsApp, sender: dict[str, Any]
) -> None:
    await asyncio.to_thread(meta.send_inbound, PHONE.lstrip("+"), "hi there")
    async with herald.client() as client:
        message_id = (await client.post("/api/v1/messages", json=send_body())).json()[0]["id"]
        message = await wait_status(client, message_id, {"delivered", "read"})
    [request] = meta.requests
    assert request.payload["type"] == "text"
    assert request.payload["text"]["body"] == "Table for two at 8"
    assert message["provider"]["messageId"].startswith("wamid.")
    assert [e["source"] for e in message["history"]][-1] == "meta-webhook"


async def test_outside_the_window_the_approved_template_goes(
    herald: RunningHerald, meta: FakeMetaWhatsApp, sender: dict[str, Any]
) -> None:
    async with herald.client() as client:
        body = send_body(
            templateName="table_ready", language="en", templateData={"1": "two", "2": "8"}
        )
        message_id = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
        await wait_status(client, message_id, {"delivered", "read"})
    [request] = meta.requests
    assert request.payload["type"] == "template"
    assert request.payload["template"]["name"] == "table_ready"
    assert request.payload["template"]["language"] == {"code": "en"}


async def test_a_late_report_does_not_take_the_providers_status_back(
    herald: RunningHerald, meta: FakeMetaWhatsApp, sender: dict[str, Any]
) -> None:
    await asyncio.to_thread(meta.send_inbound, PHONE.lstrip("+"), "hi there")
    async with herald.client() as client:
        message_id = (await client.post("/api/v1/messages", json=send_body())).json()[0]["id"]
        message = await wait_status(client, message_id, {"delivered", "read"})
        reached = message["provider"]["status"]
        late = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"phone_number_id": meta.phone_number_id},
                                "statuses": [
                                    {
                                        "id": message["provider"]["messageId"],
                                        "status": "sent",
                                        "timestamp": "1",
                                        "recipient_id": PHONE.lstrip("+"),
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
        body = json.dumps(late).encode()
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                meta.webhook_url or "",
                content=body,
                headers={
                    "X-Hub-Signature-256": signature_for(meta.app_secret, body),
                    "Content-Type": "application/json",
                },
            )
        assert answer.status_code == 200
        after = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert reached in ("delivered", "read")
    assert (after["status"], after["provider"]["status"]) == (message["status"], reached)


async def test_forged_webhook_is_refused(
    herald: RunningHerald, meta: FakeMetaWhatsApp, sender: dict[str, Any]
) -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    async with httpx.AsyncClient() as http:
        forged = await http.post(
            meta.webhook_url or "",
            content=body,
            headers={"X-Hub-Signature-256": signature_for("wrong-secret", body)},
        )
        assert forged.status_code == 403 and forged.json()["code"] == "invalid_signature"
        signed = await http.post(
            meta.webhook_url or "",
            content=body,
            headers={"X-Hub-Signature-256": signature_for(meta.app_secret, body)},
        )
        assert signed.status_code == 200


async def test_failed_report_keeps_metas_code(
    herald: RunningHerald, meta: FakeMetaWhatsApp, sender: dict[str, Any]
) -> None:
    await asyncio.to_thread(meta.send_inbound, PHONE.lstrip("+"), "hi")
    meta.undeliverable(PHONE.lstrip("+"))
    async with herald.client() as client:
        message_id = (await client.post("/api/v1/messages", json=send_body())).json()[0]["id"]
        message = await wait_status(client, message_id, {"failed"})
    assert message["error"]["code"] == "131026"
    assert message["history"][-1]["source"] == "meta-webhook"
