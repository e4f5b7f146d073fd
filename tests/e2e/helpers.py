"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp_meta import FakeMetaWhatsApp

FINAL = {"delivered", "read", "undelivered", "failed", "cancelled", "expired"}


async def wait_up(client: httpx.AsyncClient, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until a `herald serve` process answers /healthz; fail if it exits first."""
    async with asyncio.timeout(60):
        while True:
            assert process.poll() is None, f"herald serve exited; see {log}"
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


def twilio_sender_body(
    fake: FakeTwilio,
    *,
    channel: str = "sms",
    provider: str = "twilio",
    from_: str = "+15005550006",
    base_url: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON that registers a sender on the fake Twilio (SMS unless told WhatsApp)."""
    return {
        "channel": channel,
        "provider": provider,
        "from": from_,
        "accountSid": fake.account_sid,
        "authToken": fake.auth_token,
        "baseUrl": base_url or fake.base_url,
        **extra,
    }


async def add_sender(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """Register a sender through the API; its JSON as created."""
    response = await client.post("/api/v1/senders", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def add_twilio_sender(
    client: httpx.AsyncClient, fake: FakeTwilio, **options: Any
) -> dict[str, Any]:
    """A sender on the fake Twilio; `options` as `twilio_sender_body` takes them."""
    return await add_sender(client, twilio_sender_body(fake, **options))


async def add_telegram_sender(client: httpx.AsyncClient, telegram: FakeTelegram) -> dict[str, Any]:
    """A Telegram bot sender on the fake Bot API."""
    return await add_sender(
        client,
        {
            "channel": "telegram",
            "provider": "telegram",
            "from": "@acme_bot",
            "botToken": telegram.token,
            "baseUrl": telegram.base_url,
        },
    )


async def add_meta_sender(
    client: httpx.AsyncClient, meta: FakeMetaWhatsApp, herald_url: str
) -> dict[str, Any]:
    """A Meta WhatsApp sender on the fake, whose webhooks the fake then posts to Herald."""
    data = await add_sender(
        client,
        {
            "channel": "whatsapp",
            "provider": "meta-whatsapp",
            "from": "+14155550111",
            "phoneNumberId": meta.phone_number_id,
            "accessToken": meta.access_token,
            "appSecret": meta.app_secret,
            "verifyToken": "verify-me",
            "baseUrl": meta.base_url,
        },
    )
    meta.webhook_url = f"{herald_url}/webhooks/meta/whatsapp/{data['id']}"
    return data


async def send_sms(client: httpx.AsyncClient, to: str, text: str, **message: Any) -> str:
    response = await client.post(
        "/api/v1/messages",
        json={
            "messages": [
                {
                    "destinations": [{"phone": to}],
                    "channels": {"sms": {"text": text}},
                    **message,
                }
            ]
        },
    )
    assert response.status_code == 201, response.text
    message_id: str = response.json()[0]["id"]
    return message_id


async def wait_status(
    client: httpx.AsyncClient,
    message_id: str,
    wanted: set[str] | None = None,
    timeout: float = 15.0,
) -> dict[str, Any]:
    """Poll the message until its status is in ``wanted`` (any final status by default)."""
    wanted = wanted or FINAL
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/api/v1/messages/{message_id}")
            assert response.status_code == 200, response.text
            data: dict[str, Any] = response.json()
            if data["status"] in wanted:
                return data
            await asyncio.sleep(0.05)


def statuses(message: dict[str, Any]) -> list[str]:
    return [event["status"] for event in message["history"]]
