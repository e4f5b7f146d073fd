"""Chat sessions on Telegram: the bot's message goes out through the fake Telegram, the
person's answer arrives as a Telegram update on Herald's webhook, and the bot replies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import add_telegram_sender, wait_status
from tests.e2e.test_bots_conversations import create_bot
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald

CHAT = 555001


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTwilio, FakeTelegram]]:
    with FakeTwilio() as twilio, FakeTelegram() as telegram:
        yield twilio, telegram


async def sent_texts(telegram: FakeTelegram, count: int, timeout: float = 10) -> list[str]:
    async with asyncio.timeout(timeout):
        while len(telegram.requests) < count:
            await asyncio.sleep(0.05)
    return [r.payload["text"] for r in telegram.requests if r.method == "sendMessage"]


def update(update_id: int, **body: Any) -> dict[str, Any]:
    return {"update_id": update_id, **body}


def text_update(update_id: int, text: str) -> dict[str, Any]:
    chat = {"id": CHAT, "type": "private", "first_name": "Ann"}
    message = {"message_id": update_id, "date": int(time.time()), "chat": chat, "text": text}
    return update(update_id, message=message)


async def test_people_answer_chat_sessions_on_telegram(
    herald: RunningHerald, fakes: tuple[FakeTwilio, FakeTelegram]
) -> None:
    twilio, telegram = fakes
    async with herald.client() as client:
        sender = await add_telegram_sender(client, telegram)
        hook, secret = sender["inboundWebhookUrl"], sender["webhookSecretToken"]
        again = await client.get(f"/api/v1/senders/{sender['id']}/telegram-webhook")
        assert again.json() == {"inboundWebhookUrl": hook, "webhookSecretToken": secret}
        bot = await create_bot(
            client, twilio, rules=[{"match": "exact", "pattern": "hi", "reply": "Hello, Ann!"}]
        )
        started = await client.post(
            "/api/v1/messages",
            json={
                "messages": [
                    {
                        "destinations": [{"messengerUserId": str(CHAT)}],
                        "channels": {
                            "chat": {
                                "botId": bot["id"],
                                "messengerType": "TELEGRAM",
                                "text": "How can we help?",
                            }
                        },
                    }
                ]
            },
        )
        assert started.status_code == 201, started.text
        assert await sent_texts(telegram, 1) == ["How can we help?"]

        async def post(body: dict[str, Any], token: str = secret) -> httpx.Response:
            return await client.post(
                hook, json=body, headers={"X-Telegram-Bot-Api-Secret-Token": token}
            )

        assert (await post(text_update(1, "hi"), token="forged")).status_code == 403
        assert (await post(text_update(1, "hi"))).status_code == 200
        assert (await post(text_update(1, "hi"))).status_code == 200  # Telegram's retry
        assert await sent_texts(telegram, 2) == ["How can we help?", "Hello, Ann!"]
        assert telegram.requests[-1].payload["chat_id"] == CHAT

        conversations = (await client.get(f"/api/v1/bots/{bot['id']}/conversations")).json()
        (conversation,) = conversations["items"]
        assert (conversation["channel"], conversation["address"]) == ("telegram", str(CHAT))
        full = (
            await client.get(f"/api/v1/bots/{bot['id']}/conversations/{conversation['id']}")
        ).json()
        assert [(m["direction"], m["text"]) for m in full["messages"]] == [
            ("outbound", "How can we help?"),
            ("inbound", "hi"),
            ("outbound", "Hello, Ann!"),
        ]

        # The person blocks the Telegram bot: later sessions are refused before Telegram.
        kicked = {
            "chat": {"id": CHAT, "type": "private"},
            "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": True}},
        }
        assert (await post(update(2, my_chat_member=kicked))).status_code == 200
        listed = (await client.get("/api/v1/suppressions", params={"channel": "telegram"})).json()
        assert [(s["from"], s["to"]) for s in listed["items"]] == [("@acme_bot", str(CHAT))]
        refused = await client.post(
            "/api/v1/messages",
            json={
                "messages": [
                    {
                        "destinations": [{"messengerUserId": str(CHAT)}],
                        "channels": {"chat": {"botId": bot["id"], "text": "Still there?"}},
                    }
                ]
            },
        )
        failed = await wait_status(client, refused.json()[0]["id"])
        assert failed["deliveries"][0]["error"]["code"] == "recipient_opted_out"
        assert len(telegram.requests) == 2
        assert (await post({"nonsense": True})).status_code == 200
        malformed = await client.post(
            hook, content=b"{", headers={"X-Telegram-Bot-Api-Secret-Token": secret}
        )
        assert malformed.status_code == 400

        # A removed bot sender takes no more updates (its history stays).
        assert (await client.delete(f"/api/v1/senders/{sender['id']}")).status_code == 204
        gone = await post(text_update(3, "hi"))
        assert gone.status_code == 404 and gone.json()["code"] == "unknown_sender"
