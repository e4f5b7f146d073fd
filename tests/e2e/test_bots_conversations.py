"""Two-way SMS bots end to end: the fake Twilio texts the bot's number with signed inbound
webhooks, a local bot backend answers, replies go back as TwiML or through the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from herald.services.delivery.suppressions import refuse_suppressed
from herald.store.bots import last_inbound_at
from tests.e2e.helpers import wait_status
from tests.fakes.twilio import FakeTwilio, twilio_signature
from tests.servers import RunningHerald, _serve, free_port

BOT_NUMBER = "+15005550006"
PERSON = "+14155552671"
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


async def create_bot(client: httpx.AsyncClient, fake: FakeTwilio, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/bots",
        json={
            "name": "Support",
            "accountSid": fake.account_sid,
            "authToken": fake.auth_token,
            "phone": BOT_NUMBER,
            "baseUrl": fake.base_url,
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    bot: dict[str, Any] = response.json()
    return bot


async def text(fake: FakeTwilio, bot: dict[str, Any], body: str, **kwargs: Any) -> str:
    """The person texts the bot; returns Herald's TwiML answer."""
    result = await fake.send_inbound(
        BOT_NUMBER, PERSON, body, url=bot["inboundWebhookUrl"], **kwargs
    )
    assert result.status_code == 200, result.text
    assert result.content_type.startswith("text/xml")
    return result.text


def said(*replies: str) -> str:
    messages = "".join(f"<Message>{r}</Message>" for r in replies)
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{messages}</Response>'


async def only_conversation(client: httpx.AsyncClient, bot: dict[str, Any]) -> dict[str, Any]:
    listed = (await client.get(f"/api/v1/bots/{bot['id']}/conversations")).json()
    assert listed["count"] == 1
    conversation: dict[str, Any] = listed["items"][0]
    return conversation


@dataclass
class Backend:
    """A bot's own server: answers each text with whatever `answer` returns."""

    url: str
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    delay: float = 0.0
    answer: Any = None


@contextlib.asynccontextmanager
async def bot_backend() -> AsyncIterator[Backend]:
    port = free_port()
    backend = Backend(url=f"http://127.0.0.1:{port}/bot")

    async def hook(request: Request) -> Response:
        raw = await request.body()
        payload = json.loads(raw)
        backend.raw.append(raw)
        backend.received.append((dict(request.headers), payload))
        await asyncio.sleep(backend.delay)
        answer = backend.answer(payload) if callable(backend.answer) else backend.answer
        return JSONResponse(answer)

    server, task = await _serve(Starlette(routes=[Route("/bot", hook, methods=["POST"])]), port)
    try:
        yield backend
    finally:
        server.should_exit = True
        await task


async def test_keyword_rules_answer_with_escaped_twiml_and_the_conversation_is_kept(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(
        client,
        fake,
        rules=[
            {"match": "exact", "pattern": "hours", "reply": "Open 9<17 & Sat"},
            {"match": "regex", "pattern": r"order \d+", "reply": "Looking it up"},
        ],
        defaultReply="A person will answer soon.",
    )
    assert await text(fake, bot, "HOURS") == said("Open 9&lt;17 &amp; Sat")
    assert await text(fake, bot, "where is order 42?") == said("Looking it up")
    assert await text(fake, bot, "photo", media=["https://example.com/a.jpg"]) == said(
        "A person will answer soon."
    )
    assert await text(fake, bot, "anyone?") == said("A person will answer soon.")

    conversation = await only_conversation(client, bot)
    assert conversation["address"] == PERSON
    assert conversation["status"] == "open"
    assert conversation["lastMessage"]["text"] == "A person will answer soon."
    # The bot's automatic replies answered every text, but no person has seen them.
    assert conversation["unreadCount"] == 4

    full = (await client.get(f"/api/v1/bots/{bot['id']}/conversations/{conversation['id']}")).json()
    assert [(m["direction"], m["text"]) for m in full["messages"]] == [
        ("inbound", "HOURS"),
        ("outbound", "Open 9<17 & Sat"),
        ("inbound", "where is order 42?"),
        ("outbound", "Looking it up"),
        ("inbound", "photo"),
        ("outbound", "A person will answer soon."),
        ("inbound", "anyone?"),
        ("outbound", "A person will answer soon."),
    ]
    assert full["messages"][4]["media"] == ["https://example.com/a.jpg"]
    assert full["messages"][0]["status"] == "received"
    assert full["messages"][0]["providerMessageId"].startswith("SM")
    assert (await only_conversation(client, bot))["unreadCount"] == 0  # a person opened it


async def test_forged_or_repeated_webhooks_change_nothing(
    client: httpx.AsyncClient, fake: FakeTwilio, herald: RunningHerald
) -> None:
    bot = await create_bot(client, fake, defaultReply="Hi!")
    forged = await fake.send_inbound(
        BOT_NUMBER, PERSON, "hello", url=bot["inboundWebhookUrl"], sign_with="not-the-token"
    )
    assert forged.status_code == 403
    assert json.loads(forged.text)["code"] == "invalid_signature"
    # Signed correctly, but for another bot's address: Twilio signs the URL it calls.
    misdirected = await fake.send_inbound(
        BOT_NUMBER, PERSON, "hello", url=bot["inboundWebhookUrl"], signed_url=herald.url + "/x"
    )
    assert misdirected.status_code == 403
    unknown = await fake.send_inbound(
        BOT_NUMBER, PERSON, "hello", url=herald.url + "/webhooks/twilio/inbound/nope"
    )
    assert unknown.status_code == 404
    assert json.loads(unknown.text)["code"] == "bot_not_found"
    async with httpx.AsyncClient() as anyone:
        unsigned = await anyone.post(bot["inboundWebhookUrl"], data={"Body": "hi"})
    assert unsigned.status_code == 403
    listed = (await client.get(f"/api/v1/bots/{bot['id']}/conversations")).json()
    assert listed["count"] == 0

    first = await text(fake, bot, "hello", message_sid="SM" + "a" * 32)
    assert first == said("Hi!")
    # Twilio's retry of the same MessageSid is stored once and not answered twice.
    assert await text(fake, bot, "hello", message_sid="SM" + "a" * 32) == EMPTY
    conversation = await only_conversation(client, bot)
    full = (await client.get(f"/api/v1/bots/{bot['id']}/conversations/{conversation['id']}")).json()
    assert [m["direction"] for m in full["messages"]] == ["inbound", "outbound"]


async def test_backend_answers_now_as_twiml_or_later_through_the_api(
    client: httpx.AsyncClient, fake: FakeTwilio, herald: RunningHerald
) -> None:
    async with bot_backend() as backend:
        backend.answer = lambda p: {"reply": f"You said: {p['message']['text']}"}
        bot = await create_bot(client, fake, webhookUrl=backend.url, replyTimeout=0.5)
        assert await text(fake, bot, "hello") == said("You said: hello")
        backend.answer = {"replies": ["one", "two"]}
        assert await text(fake, bot, "again") == said("one", "two")

        # Signed like client callbacks, with the project's webhook secret.
        headers, payload = backend.received[1]
        timestamp, mac = (
            part.split("=", 1)[1] for part in headers["x-herald-signature"].split(",")
        )
        raw = backend.raw[1]
        expected = hmac.new(
            herald.project.webhook_secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(mac, expected)
        assert payload["bot"]["id"] == bot["id"]
        assert payload["conversation"]["address"] == PERSON
        assert payload["message"]["text"] == "again"
        assert [(h["direction"], h["text"]) for h in payload["history"]] == [
            ("inbound", "hello"),
            ("outbound", "You said: hello"),
        ]

        # Too slow (or {"reply": null}): nothing now; the backend replies later via the API.
        backend.delay, backend.answer = 1.5, {"reply": "too late"}
        assert await text(fake, bot, "slow question") == EMPTY
        backend.delay, backend.answer = 0.0, {"reply": None}
        assert await text(fake, bot, "another") == EMPTY

    conversation = await only_conversation(client, bot)
    assert conversation["unreadCount"] == 4  # the backend's replies are no person's
    assert conversation["lastMessage"]["text"] == "another"
    reply = await client.post(
        f"/api/v1/bots/{bot['id']}/conversations/{conversation['id']}/messages",
        json={"text": "Here is your answer"},
    )
    assert reply.status_code == 201, reply.text
    message_id = reply.json()["messageId"]
    delivered = await wait_status(client, message_id, {"delivered"})
    assert delivered["destination"]["phone"] == PERSON
    sent = [r for r in fake.requests if r.sid]
    assert sent[-1].params["From"] == [BOT_NUMBER]
    assert sent[-1].params["Body"] == ["Here is your answer"]
    assert sent[-1].params["StatusCallback"][0].startswith(herald.url + "/webhooks/twilio/status/")

    full = (await client.get(f"/api/v1/bots/{bot['id']}/conversations/{conversation['id']}")).json()
    assert full["unreadCount"] == 0
    last = full["messages"][-1]
    assert (last["direction"], last["text"], last["via"], last["status"]) == (
        "outbound", "Here is your answer", "api", "delivered",
    )  # fmt: skip

    closed = await client.post(f"/api/v1/bots/{bot['id']}/conversations/{conversation['id']}/close")
    assert closed.json()["status"] == "closed"
    only_open = await client.get(
        f"/api/v1/bots/{bot['id']}/conversations", params={"status": "open"}
    )
    assert only_open.json()["count"] == 0
    await text(fake, bot, "one more thing")
    assert (await only_conversation(client, bot))["status"] == "open"


async def test_stop_suppresses_confirms_once_and_start_lifts(
    client: httpx.AsyncClient, fake: FakeTwilio, herald: RunningHerald
) -> None:
    bot = await create_bot(client, fake, defaultReply="Hi!", helpText="Support bot. Call 555.")
    assert await text(fake, bot, "help") == said("Support bot. Call 555.")
    confirmation = await text(fake, bot, "Stop")
    assert "unsubscribed" in confirmation
    assert await text(fake, bot, "STOP") == EMPTY  # confirmed once
    assert await text(fake, bot, "HELP") == EMPTY  # no texts at all to an opted-out person
    assert await text(fake, bot, "hello?") == EMPTY

    listed = (await client.get("/api/v1/suppressions")).json()
    assert [(s["from"], s["to"], s["source"]) for s in listed["items"]] == [
        (BOT_NUMBER, PERSON, "keyword:STOP")
    ]
    conversation = await only_conversation(client, bot)
    refused = await client.post(
        f"/api/v1/bots/{bot['id']}/conversations/{conversation['id']}/messages",
        json={"text": "Are you there?"},
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "recipient_opted_out"
    # What the dispatcher asks before a bulk send reaches the provider.
    async with herald.herald.sessions() as session:
        claimed = [
            (herald.project.project_id, "sms", BOT_NUMBER, "+14155550000"),
            (herald.project.project_id, "sms", BOT_NUMBER, PERSON),
        ]
        assert await refuse_suppressed(session, claimed) == {1}
    assert not [r for r in fake.requests if r.params.get("To") == [PERSON]]

    assert "re-subscribed" in await text(fake, bot, "start")
    assert (await client.get("/api/v1/suppressions")).json()["count"] == 0
    assert await text(fake, bot, "hello again") == said("Hi!")


async def test_advanced_opt_out_is_not_confirmed_twice(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(client, fake)
    # Twilio's Advanced Opt-Out has already answered STOP itself.
    assert await text(fake, bot, "STOP", extra={"OptOutType": "STOP"}) == EMPTY
    assert (await client.get("/api/v1/suppressions")).json()["count"] == 1


async def test_inbound_texts_refresh_the_contact_window_per_channel(
    client: httpx.AsyncClient, fake: FakeTwilio, herald: RunningHerald
) -> None:
    bot = await create_bot(client, fake, defaultReply="Hi!")
    project = herald.project.project_id
    async with herald.herald.sessions() as session:
        assert await last_inbound_at(session, project, "whatsapp", PERSON) is None
    before = herald.herald.clock.now()
    result = await fake.send_inbound(
        f"whatsapp:{BOT_NUMBER}", f"whatsapp:{PERSON}", "hola", url=bot["inboundWebhookUrl"]
    )
    assert result.status_code == 200
    await text(fake, bot, "hello by SMS")
    async with herald.herald.sessions() as session:
        whatsapp = await last_inbound_at(session, project, "whatsapp", f"whatsapp:{PERSON}")
        sms = await last_inbound_at(session, project, "sms", PERSON)
        assert whatsapp is not None and sms is not None
        assert before <= whatsapp <= sms
    # One conversation per channel with the same person.
    listed = (await client.get(f"/api/v1/bots/{bot['id']}/conversations")).json()
    assert sorted(c["channel"] for c in listed["items"]) == ["sms", "whatsapp"]


async def test_other_projects_bad_input_and_deleted_bots(
    client: httpx.AsyncClient, fake: FakeTwilio, herald: RunningHerald
) -> None:
    bot = await create_bot(client, fake, defaultReply="Hi!")
    await text(fake, bot, "hello")
    conversation = await only_conversation(client, bot)
    path = f"/api/v1/bots/{bot['id']}/conversations/{conversation['id']}"
    other = await herald.new_project()
    async with herald.client(other.api_key) as stranger:
        for response in (
            await stranger.get(path),
            await stranger.post(f"{path}/messages", json={"text": "hi"}),
            await stranger.post(f"{path}/close"),
            await stranger.get(f"/api/v1/bots/{bot['id']}/conversations"),
        ):
            assert response.status_code == 404
            assert response.json()["code"] in ("bot_not_found", "conversation_not_found")
    empty = await client.post(f"{path}/messages", json={"text": ""})
    assert empty.status_code == 422
    assert empty.json()["code"] == "invalid_field"
    # A signed webhook without From is refused, not crashed on.
    async with httpx.AsyncClient() as anyone:
        params = {"MessageSid": "SM" + "b" * 32, "Body": "hi"}
        signature = twilio_signature(bot["inboundWebhookUrl"], params, fake.auth_token)
        incomplete = await anyone.post(
            bot["inboundWebhookUrl"], data=params, headers={"X-Twilio-Signature": signature}
        )
    assert incomplete.status_code == 422
    assert incomplete.json()["code"] == "incomplete_webhook"

    assert (await client.delete(f"/api/v1/bots/{bot['id']}")).status_code == 204
    assert (await client.get(path)).json()["code"] == "conversation_not_found"
    listed = await client.get(f"/api/v1/bots/{bot['id']}/conversations")
    assert listed.json()["code"] == "bot_not_found"
    gone = await fake.send_inbound(BOT_NUMBER, PERSON, "hello", url=bot["inboundWebhookUrl"])
    assert gone.status_code == 404
    # Its conversations went with it; a new bot on the number starts afresh.
    again = await create_bot(client, fake)
    assert await text(fake, again, "hello") == EMPTY
    fresh = await only_conversation(client, again)
    assert fresh["id"] != conversation["id"]


async def test_stop_then_bulk_send_is_refused_before_the_provider(
    client: httpx.AsyncClient, fake: FakeTwilio, herald: RunningHerald
) -> None:
    bot = await create_bot(client, fake)
    assert "unsubscribed" in await text(fake, bot, "STOP")
    response = await client.post(
        "/api/v1/messages",
        json={
            "messages": [
                {
                    "destinations": [{"phone": PERSON}, {"phone": "+14155550000"}],
                    "channels": {"sms": {"text": "Sale!", "from": BOT_NUMBER}},
                }
            ]
        },
    )
    assert response.status_code == 201, response.text
    refused, other = (m["id"] for m in response.json())
    message = await wait_status(client, refused, {"failed"})
    assert message["error"]["code"] == "recipient_opted_out"
    assert message["attempts"] == []  # never handed to a provider
    await wait_status(client, other, {"delivered"})
    assert [r.params["To"] for r in fake.requests if r.sid] == [["+14155550000"]]


async def test_twilio_21610_records_a_suppression(
    client: httpx.AsyncClient, fake: FakeTwilio, herald: RunningHerald
) -> None:
    await create_bot(client, fake)
    opted_out = "+15005550004"  # Twilio's magic number: "unsubscribed recipient" (21610)
    body = {
        "messages": [
            {
                "destinations": [{"phone": opted_out}],
                "channels": {"sms": {"text": "hi", "from": BOT_NUMBER}},
            }
        ]
    }
    first = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
    assert (await wait_status(client, first, {"failed"}))["error"]["code"] == "21610"
    listed = (await client.get("/api/v1/suppressions", params={"to": opted_out})).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    assert len(items) == 1
    second = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
    refused = await wait_status(client, second, {"failed"})
    assert refused["error"]["code"] == "recipient_opted_out"
    assert len([r for r in fake.requests if r.params["To"] == [opted_out]]) == 1


@pytest.mark.parametrize("channel", ["x" * 21, "İ" * 20, "", "sms "])
async def test_a_suppression_channel_is_a_channel_name(
    client: httpx.AsyncClient, channel: str
) -> None:
    # Found by `make fuzz` on PostgreSQL: a channel longer than its 20-character column was
    # a 500 there (SQLite stores any length); "İ".lower() is two characters.
    body = {"channel": channel, "from": BOT_NUMBER, "to": PERSON}
    response = await client.post("/api/v1/suppressions", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["details"]["errors"][0]["path"] == "channel"
    assert (await client.get("/api/v1/suppressions")).json()["count"] == 0
    added = await client.post("/api/v1/suppressions", json={**body, "channel": "WhatsApp"})
    assert added.status_code == 201, added.text
    assert added.json()["channel"] == "whatsapp"
