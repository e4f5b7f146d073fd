"""The web chat over a real WebSocket: visitors, the bot's answers, receipts, replay, and chat
sessions started through the messages API (the browser test is test_webchat_browser.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from herald.clock import ManualClock
from herald.config import Settings
from tests.e2e.helpers import add_twilio_sender, wait_status, wait_up
from tests.e2e.test_bots_conversations import (
    BOT_NUMBER,
    PERSON,
    bot_backend,
    create_bot,
    text,
)
from tests.e2e.test_crash_safety import start_worker
from tests.e2e.test_tasks_resume import HERALD
from tests.fakes.twilio import FakeTwilio
from tests.servers import LOOPBACK_HOSTS, RunningHerald, free_port, running_herald


async def visitor(
    client: httpx.AsyncClient, bot: dict[str, Any], visitor_id: str
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/bots/{bot['id']}/webchat/visitors", json={"visitorId": visitor_id}
    )
    assert response.status_code == 200, response.text
    credentials: dict[str, Any] = response.json()
    return credentials


def socket_url(
    herald: RunningHerald, bot: dict[str, Any], who: dict[str, Any], after: int = 0
) -> str:
    query = httpx.QueryParams(visitor=who["visitorId"], token=who["token"], after=after)
    return f"ws://127.0.0.1:{herald.url.rsplit(':', 1)[1]}/chat/{bot['id']}/ws?{query}"


_UNREAD: dict[int, list[dict[str, Any]]] = {}


async def frame(ws: ClientConnection, kind: str = "message", timeout: float = 10) -> dict[str, Any]:
    """The next frame of ``kind``; frames of other kinds stay for their own turn (an ack and
    the message it acknowledges may come in either order)."""
    unread = _UNREAD.setdefault(id(ws), [])
    async with asyncio.timeout(timeout):
        while True:
            for i, data in enumerate(unread):
                if data["type"] == kind:
                    return unread.pop(i)
            unread.append(json.loads(await ws.recv()))


async def say(ws: ClientConnection, words: str, client_id: str | None = None) -> dict[str, Any]:
    client_id = client_id or uuid.uuid4().hex
    await ws.send(json.dumps({"type": "text", "text": words, "clientId": client_id}))
    return await frame(ws, "ack")


async def send_chat(client: httpx.AsyncClient, chat: dict[str, Any], **dest: Any) -> str:
    response = await client.post(
        "/api/v1/messages",
        json={"messages": [{"destinations": [dest], "channels": {"chat": chat}}]},
    )
    assert response.status_code == 201, response.text
    message_id: str = response.json()[0]["id"]
    return message_id


async def test_visitor_talks_to_the_bot_and_receipts_move_the_message(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(
        client,
        fake,
        rules=[{"match": "exact", "pattern": "hours", "reply": "We are open 9-17."}],
        defaultReply="A person will answer soon.",
    )
    assert bot["webchat"]["snippet"].startswith(f'<script src="{herald.url}/chat/widget.js"')
    who = await visitor(client, bot, "user-42")

    forged = {**who, "token": "0" * 64}
    with pytest.raises(ConnectionClosed) as closed:
        async with connect(socket_url(herald, bot, forged)) as ws:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403

    async with connect(socket_url(herald, bot, who)) as ws:
        assert (await frame(ws, "ready"))["visitorId"] == "user-42"
        # Opening the chat alone (every page view) leaves no conversation behind.
        listed = (await client.get(f"/api/v1/bots/{bot['id']}/conversations")).json()
        assert listed["count"] == 0
        ack = await say(ws, "hours", "first")
        mine, answer = await frame(ws), await frame(ws)
        assert (mine["id"], mine["direction"], mine["clientId"]) == (ack["id"], "inbound", "first")
        assert (answer["direction"], answer["text"]) == ("outbound", "We are open 9-17.")
        # A resend after a lost ack (same clientId) stores nothing new.
        assert (await say(ws, "hours", "first"))["id"] == ack["id"]
        await ws.send("not json")
        assert (await frame(ws, "error"))["code"] == "malformed_json"
        await ws.send(json.dumps({"type": "receipt", "id": "x", "status": "read"}))
        assert (await frame(ws, "error"))["code"] == "invalid_receipt"

        message_id = await send_chat(
            client,
            {
                "botId": bot["id"],
                "messengerType": "WEB",
                "text": "Your order has shipped.",
                "imageUrl": "https://example.com/box.png",
                "buttonUrl": "https://example.com/track",
                "buttonText": "Track it",
            },
            messengerUserId="user-42",
        )
        shown = await frame(ws)
        assert shown["text"] == "Your order has shipped."
        assert (shown["imageUrl"], shown["buttonText"]) == (
            "https://example.com/box.png",
            "Track it",
        )
        await wait_status(client, message_id, {"sent"})
        await ws.send(json.dumps({"type": "receipt", "id": shown["id"], "status": "delivered"}))
        await wait_status(client, message_id, {"delivered"})
        await ws.send(json.dumps({"type": "receipt", "id": shown["id"], "status": "read"}))
        read = await wait_status(client, message_id, {"read"})
        assert read["channel"] == "chat"

    # Offline: the next message waits in the chat and is replayed on reconnect.
    missed = await send_chat(
        client, {"chatId": bot["id"], "text": "Are you still there?"}, messengerUserId="user-42"
    )
    await wait_status(client, missed, {"sent"})
    async with connect(socket_url(herald, bot, who, after=shown["id"])) as ws:
        replayed = await frame(ws)
        assert (replayed["text"], replayed["status"]) == ("Are you still there?", "sent")

    conversations = (await client.get(f"/api/v1/bots/{bot['id']}/conversations")).json()
    web = next(c for c in conversations["items"] if c["channel"] == "chat")
    assert web["address"] == "user-42"
    # A person answering as the bot, later, through the conversations API.
    later = await client.post(
        f"/api/v1/bots/{bot['id']}/conversations/{web['id']}/messages", json={"text": "On it!"}
    )
    assert later.status_code == 201, later.text
    async with connect(socket_url(herald, bot, who, after=replayed["id"])) as ws:
        assert (await frame(ws))["text"] == "On it!"
    await wait_status(client, later.json()["messageId"], {"sent"})
    full = (await client.get(f"/api/v1/bots/{bot['id']}/conversations/{web['id']}")).json()
    assert [(m["direction"], m["text"], m["status"]) for m in full["messages"]] == [
        ("inbound", "hours", "received"),
        ("outbound", "We are open 9-17.", "sent"),
        ("outbound", "Your order has shipped.", "read"),
        ("outbound", "Are you still there?", "sent"),
        ("outbound", "On it!", "sent"),
    ]


async def test_delivered_web_chat_leaves_the_sms_step_unused(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(client, fake)
    who = await visitor(client, bot, "user-7")
    async with connect(socket_url(herald, bot, who)) as ws:
        response = await client.post(
            "/api/v1/messages",
            json={
                "messages": [
                    {
                        "destinations": [{"messengerUserId": "user-7", "phone": PERSON}],
                        "channels": {
                            "chat": {"botId": bot["id"], "messengerType": "WEB", "text": "Hi"},
                            "sms": {"from": BOT_NUMBER, "text": "Hi by SMS"},
                        },
                    }
                ]
            },
        )
        assert response.status_code == 201, response.text
        message_id = response.json()[0]["id"]
        shown = await frame(ws)
        await ws.send(json.dumps({"type": "receipt", "id": shown["id"], "status": "delivered"}))
        done = await wait_status(client, message_id, {"delivered"})
    assert [d["status"] for d in done["deliveries"]] == ["delivered", "skipped"]
    assert not fake.requests  # the SMS never left


async def test_chat_sessions_on_other_messengers_and_bad_requests(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(client, fake, defaultReply="Thanks!")
    # The person last talked to the bot by SMS, so a session without messengerType goes there.
    await text(fake, bot, "hello")
    message_id = await send_chat(
        client, {"botId": bot["id"], "text": "How did we do?"}, phone=PERSON
    )
    sent = await wait_status(client, message_id)
    assert sent["channel"] == "sms" and sent["status"] == "delivered"
    assert fake.requests[-1].params["From"] == [BOT_NUMBER]
    assert fake.requests[-1].params["Body"] == ["How did we do?"]
    conversation = (await client.get(f"/api/v1/bots/{bot['id']}/conversations")).json()["items"][0]
    full = (await client.get(f"/api/v1/bots/{bot['id']}/conversations/{conversation['id']}")).json()
    assert [(m["direction"], m["text"]) for m in full["messages"]][-1] == (
        "outbound",
        "How did we do?",
    )
    assert full["messages"][-1]["messageId"] == message_id

    async def refused(chat: dict[str, Any], **dest: Any) -> dict[str, Any]:
        response = await client.post(
            "/api/v1/messages",
            json={"messages": [{"destinations": [dest], "channels": {"chat": chat}}]},
        )
        assert response.status_code == 422, response.text
        body: dict[str, Any] = response.json()
        return body

    viber = await refused({"botId": bot["id"], "messengerType": "VIBER", "text": "x"}, phone=PERSON)
    assert viber["code"] == "unsupported_messenger"
    nobody = await refused({"botId": "no-such-bot", "text": "x"}, phone=PERSON)
    assert nobody["code"] == "bot_not_found"
    missing = await refused({"text": "x"}, phone=PERSON)
    assert missing["code"] == "missing_field"
    telegram = await refused(
        {"botId": bot["id"], "messengerType": "TELEGRAM", "text": "x"}, messengerUserId="42"
    )
    assert telegram["code"] == "no_sender"
    new_session = await refused(
        {"botId": bot["id"], "continueLastOrStartNewSession": False, "text": "x"}, phone=PERSON
    )
    assert new_session["code"] == "unsupported_field"


async def test_backend_answers_visitors_and_anonymous_visitors(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    async with bot_backend() as backend:
        backend.answer = lambda payload: {"reply": f"You said: {payload['message']['text']}"}
        bot = await create_bot(client, fake, webhookUrl=backend.url)
        async with httpx.AsyncClient(base_url=herald.url) as browser:
            made = await browser.post(f"/chat/{bot['id']}/visitors")
            assert made.status_code == 200 and made.headers["access-control-allow-origin"] == "*"
            who = made.json()
            assert (await browser.post("/chat/nope/visitors")).status_code == 404
            script = await browser.get("/chat/widget.js")
            assert script.headers["content-type"].startswith("application/javascript")
            assert (await browser.get(f"/chat/{bot['id']}")).status_code == 200
        async with connect(socket_url(herald, bot, who)) as ws:
            await say(ws, "ping")
            assert (await frame(ws))["direction"] == "inbound"
            assert (await frame(ws))["text"] == "You said: ping"
    payload = backend.received[0][1]
    assert payload["conversation"]["channel"] == "chat"
    assert payload["conversation"]["address"] == who["visitorId"]


async def test_a_worker_process_posts_and_the_serving_process_shows_it(
    settings: Settings, fake: FakeTwilio, tmp_path: Path
) -> None:
    # The API runs no dispatcher here: a separate `herald worker` process sends, and the
    # serving process's hub finds the posted message in the database.
    async with running_herald(settings, run_workers=False) as herald, herald.client() as client:
        bot = await create_bot(client, fake)
        who = await visitor(client, bot, "user-9")
        worker = start_worker(settings, herald.url, tmp_path, 1)
        try:
            async with connect(socket_url(herald, bot, who)) as ws:
                message_id = await send_chat(
                    client,
                    {"botId": bot["id"], "text": "From the worker"},
                    messengerUserId="user-9",
                )
                shown = await frame(ws, timeout=30)
                assert shown["text"] == "From the worker"
                await ws.send(json.dumps({"type": "receipt", "id": shown["id"], "status": "read"}))
                await wait_status(client, message_id, {"read"})
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)


async def test_whatsapp_session_follows_the_messenger_the_person_last_used(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(client, fake, defaultReply="Thanks!")
    await add_twilio_sender(
        client, fake, from_=BOT_NUMBER, channel="whatsapp", provider="twilio-whatsapp"
    )
    await text(fake, bot, "hi by SMS")
    # Later the person writes on WhatsApp (which also opens its 24-hour window).
    answer = await fake.send_inbound(
        f"whatsapp:{BOT_NUMBER}",
        f"whatsapp:{PERSON}",
        "hi on WhatsApp",
        url=bot["inboundWebhookUrl"],
    )
    assert answer.status_code == 200
    message_id = await send_chat(
        client, {"botId": bot["id"], "text": "Your table is ready"}, phone=PERSON
    )
    sent = await wait_status(client, message_id)
    assert (sent["channel"], sent["status"]) == ("whatsapp", "delivered")
    last = fake.requests[-1].params
    assert (last["To"], last["From"]) == ([f"whatsapp:{PERSON}"], [f"whatsapp:{BOT_NUMBER}"])
    listed = (await client.get(f"/api/v1/bots/{bot['id']}/conversations")).json()["items"]
    whatsapp = next(c for c in listed if c["channel"] == "whatsapp")
    assert whatsapp["lastMessage"]["text"] == "Your table is ready"


async def test_floods_are_refused_and_a_deleted_bot_ends_the_chat(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(client, fake)
    who = await visitor(client, bot, "user-5")
    async with connect(socket_url(herald, bot, who)) as ws:
        for i in range(10):
            await say(ws, f"message {i}")
        await ws.send(json.dumps({"type": "text", "text": "one more", "clientId": "x"}))
        refused = await frame(ws, "error")
        assert (refused["code"], refused["clientId"]) == ("too_many_messages", "x")
    async with connect(socket_url(herald, bot, who)) as ws:
        await frame(ws, "ready")
        assert (await client.delete(f"/api/v1/bots/{bot['id']}")).status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            await ws.send(json.dumps({"type": "text", "text": "hello?", "clientId": "y"}))
            await frame(ws, "never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


async def test_visitor_tokens_expire(settings: Settings, fake: FakeTwilio) -> None:
    clock = ManualClock(datetime.now(UTC))
    async with running_herald(settings, clock=clock) as herald, herald.client() as client:
        bot = await create_bot(client, fake)
        who = await visitor(client, bot, "user-42")
        expires = int(who["token"].split(".", 1)[0])
        assert expires == int((clock.now() + timedelta(days=30)).timestamp())
        async with connect(socket_url(herald, bot, who)) as ws:
            assert (await frame(ws, "ready"))["visitorId"] == "user-42"
        clock.advance(30 * 86400 + 1)
        with pytest.raises(ConnectionClosed) as closed:
            async with connect(socket_url(herald, bot, who)) as ws:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        assert "expired" in closed.value.rcvd.reason
        # A fresh token (the widget asks for one when it is refused) works again.
        async with connect(socket_url(herald, bot, await visitor(client, bot, "user-42"))) as ws:
            assert (await frame(ws, "ready"))["visitorId"] == "user-42"


def start_server(
    settings: Settings, data_dir: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_SECRET_KEY": settings.secret_key or "",
        "HERALD_DATA_DIR": str(data_dir),
        "HERALD_ALLOWED_PRIVATE_HOSTS": LOOPBACK_HOSTS,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [HERALD, "serve", "--port", str(port), "--no-workers"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_serve_never_logs_a_visitor_token(
    settings: Settings, fake: FakeTwilio, tmp_path: Path
) -> None:
    async with running_herald(settings, run_workers=False) as setup, setup.client() as client:
        bot = await create_bot(client, fake)
        api_key = setup.project.api_key
    port, log = free_port(), tmp_path / "serve.log"
    server = start_server(settings, tmp_path / "data", port, log)
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers) as served:
            await wait_up(served, server, log)
            who = await visitor(served, bot, "user-42")
            anonymous = (await served.post(f"/chat/{bot['id']}/visitors")).json()
            for credentials in (who, anonymous, {**who, "token": "1." + "f" * 64}):
                query = httpx.QueryParams(
                    visitor=credentials["visitorId"], token=credentials["token"]
                )
                with contextlib.suppress(ConnectionClosed):
                    async with connect(f"ws://127.0.0.1:{port}/chat/{bot['id']}/ws?{query}") as ws:
                        await ws.recv()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    written = log.read_text()
    assert "WebSocket /chat/" in written  # uvicorn did log the sockets
    assert "token=[redacted]" in written
    for token in (who["token"], anonymous["token"]):
        assert token.split(".", 1)[1] not in written
    assert "f" * 64 not in written
