"""Malformed and hostile requests on the webhooks: each gets its own 4xx and changes nothing,
and valid callbacks arriving at the same moment are all applied.

httpx refuses ``str`` header values that are not ASCII, so the hostile headers go as bytes:
the server really receives them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from herald.channels.whatsapp_meta import signature_for
from tests.e2e.helpers import (
    add_meta_sender,
    add_telegram_sender,
    add_twilio_sender,
    wait_status,
)
from tests.e2e.test_bots_conversations import BOT_NUMBER, create_bot
from tests.e2e.test_webchat import socket_url, visitor
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio, twilio_signature
from tests.fakes.whatsapp_meta import FakeMetaWhatsApp
from tests.servers import RunningHerald

# What a browser or a script may put in a header: é, and a lone byte that is not even UTF-8.
NON_ASCII = ["é".encode(), b"\xff" * 28, "Подпись".encode()]
PHONES = [f"+1415555{2700 + i}" for i in range(40)]


def _many() -> httpx.AsyncClient:
    """One client that opens a connection per request: the requests really are concurrent."""
    return httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))


def _assert_herald_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and isinstance(body["error"], str) and body["error"]


async def test_bad_signatures_in_a_burst_of_status_callbacks_fail_alone(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    await add_twilio_sender(client, fake)
    for phone in PHONES:
        fake.set_outcome(phone, "sent")  # the final report is left to the test
    response = await client.post(
        "/api/v1/messages",
        json={
            "messages": [
                {"destinations": [{"phone": p}], "channels": {"sms": {"text": "hi"}}}
                for p in PHONES
            ]
        },
    )
    assert response.status_code == 201, response.text
    ids = [m["id"] for m in response.json()]
    for message_id in ids:
        await wait_status(client, message_id, {"sent"})
    await asyncio.to_thread(fake.wait_for_callbacks, len(PHONES))

    valid: list[tuple[str, dict[str, str], str]] = []
    for request in fake.requests:
        url = request.params["StatusCallback"][0].partition("#")[0]  # as Twilio signs it
        params = {
            "MessageSid": request.sid or "",
            "MessageStatus": "delivered",
            "AccountSid": fake.account_sid,
            "To": request.params["To"][0],
        }
        valid.append((url, params, twilio_signature(url, params, fake.auth_token)))
    assert len(valid) == len(PHONES)

    async with _many() as http:

        async def post(url: str, params: dict[str, str], signature: bytes) -> httpx.Response:
            return await http.post(url, data=params, headers={b"X-Twilio-Signature": signature})

        # Each valid callback goes with hostile ones for the same attempt, all at once, so
        # they share the group committer's batches.
        calls = []
        for i, (url, params, signature) in enumerate(valid):
            calls.append(post(url, params, signature.encode()))
            calls.append(post(url, params, NON_ASCII[i % len(NON_ASCII)]))
        answers = await asyncio.gather(*calls)
    for good in answers[0::2]:
        assert good.status_code == 200, good.text
    for bad in answers[1::2]:
        _assert_herald_error(bad, 403, "invalid_signature")
    for message_id in ids:
        message = (await client.get(f"/api/v1/messages/{message_id}")).json()
        assert message["status"] == "delivered", message


async def test_status_callbacks_no_attempt_could_have(herald: RunningHerald) -> None:
    """Paths and account ids no Twilio callback carries get a 403 like any unsigned one."""
    base = f"{herald.url}/webhooks/twilio/status"
    async with _many() as http:
        answers = await asyncio.gather(
            http.post(f"{base}/{'a' * 5000}", data={"MessageStatus": "sent"}),
            http.post(f"{base}/x", data={"AccountSid": "AC\x00", "MessageSid": "SM1"}),
            http.post(f"{base}/x", data={"AccountSid": "AC" * 5000}),
        )
        for answer in answers:
            _assert_herald_error(answer, 403, "invalid_signature")
        # PostgreSQL refuses NUL in text: no address holding one reaches a query.
        for url in (f"{base}/{quote(chr(0))}", f"{base}/x?a=%00"):
            _assert_herald_error(await http.post(url), 400, "invalid_request")


async def test_bot_inbound_webhook_refuses_bad_signatures_and_answers_the_rest(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(client, fake, defaultReply="Hi!")
    url = bot["inboundWebhookUrl"]
    async with _many() as http:

        async def forged(i: int) -> httpx.Response:
            params = {"MessageSid": f"SM{i:032x}", "From": PHONES[i], "To": BOT_NUMBER}
            header = NON_ASCII[i % len(NON_ASCII)]
            return await http.post(url, data=params, headers={b"X-Twilio-Signature": header})

        valid = [fake.send_inbound(BOT_NUMBER, phone, "hello", url=url) for phone in PHONES[:20]]
        goods, bads = await asyncio.gather(
            asyncio.gather(*valid), asyncio.gather(*(forged(i) for i in range(20)))
        )
    for good in goods:
        assert good.status_code == 200 and "Hi!" in good.text, good.text
    for bad in bads:
        _assert_herald_error(bad, 403, "invalid_signature")
    listed = (await client.get(f"/api/v1/bots/{bot['id']}/conversations")).json()
    assert sorted(c["address"] for c in listed["items"]) == sorted(PHONES[:20])
    # PostgreSQL refuses NUL in text: an id holding one never reaches a query.
    async with httpx.AsyncClient() as http:
        nul = await http.post(f"{herald.url}/webhooks/twilio/inbound/{quote(chr(0))}")
    _assert_herald_error(nul, 400, "invalid_request")


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


async def test_telegram_webhook_refuses_or_ignores_malformed_updates(
    herald: RunningHerald, client: httpx.AsyncClient, telegram: FakeTelegram
) -> None:
    made = await add_telegram_sender(client, telegram)
    hook, secret = made["inboundWebhookUrl"], made["webhookSecretToken"]
    async with httpx.AsyncClient() as http:

        async def post(body: bytes, token: bytes = secret.encode()) -> httpx.Response:
            headers = {b"X-Telegram-Bot-Api-Secret-Token": token}
            return await http.post(hook, content=body, headers=headers)

        for header in NON_ASCII:
            _assert_herald_error(await post(b"{}", header), 403, "invalid_signature")
        _assert_herald_error(await post(b"[" * 100_000), 400, "malformed_json")
        _assert_herald_error(await post(b"\xff{"), 400, "malformed_json")
        # From Telegram (the secret matches) but not shaped as Herald expects: nothing to do,
        # and a 200 so that Telegram does not send it again and again.
        for update in (
            {"update_id": 1, "message": {"chat": "not an object", "text": "hi"}},
            {"update_id": 2, "message": {"chat": {"id": [1]}, "text": "hi"}},
            {"update_id": 10**30, "message": {"chat": {"id": 1}, "text": "hi"}},
            {"update_id": 3, "message": {"chat": {"id": 1}, "text": "hi", "date": 10**20}},
            {"update_id": 4, "my_chat_member": {"chat": 5, "new_chat_member": "kicked"}},
            {"update_id": 5, "my_chat_member": {"chat": {"id": 5}, "new_chat_member": []}},
        ):
            answer = await post(json.dumps(update).encode())
            assert answer.status_code == 200, (update, answer.text)


@pytest.fixture
def meta() -> Iterator[FakeMetaWhatsApp]:
    with FakeMetaWhatsApp() as fake:
        yield fake


async def test_meta_webhook_refuses_or_ignores_malformed_requests(
    herald: RunningHerald, client: httpx.AsyncClient, meta: FakeMetaWhatsApp
) -> None:
    made = await add_meta_sender(client, meta, herald.url)
    hook = f"{herald.url}/webhooks/meta/whatsapp/{made['id']}"
    async with httpx.AsyncClient() as http:

        async def post(body: bytes, signature: bytes | None = None) -> httpx.Response:
            signed = signature or signature_for(meta.app_secret, body).encode()
            return await http.post(hook, content=body, headers={b"X-Hub-Signature-256": signed})

        for header in NON_ASCII:
            _assert_herald_error(await post(b"{}", b"sha256=" + header), 403, "invalid_signature")
            _assert_herald_error(await post(b"{}", header), 403, "invalid_signature")
        _assert_herald_error(await post(b"[" * 100_000), 400, "malformed_json")
        _assert_herald_error(await post(b"[]"), 400, "malformed_json")

        def change(value: dict[str, Any]) -> bytes:
            payload = {"entry": [{"changes": [{"field": "messages", "value": value}]}]}
            return json.dumps(payload).encode()

        # Signed by Meta's secret, but items Herald cannot use: skipped, and a 200 as Meta wants.
        for value in (
            {"statuses": [{"status": ["sent"], "id": "wamid.1", "timestamp": "1"}]},
            {"statuses": [{"status": "sent", "id": "w" * 5000, "timestamp": "1"}]},
            {"statuses": [{"status": "sent", "id": "wamid.\x00", "timestamp": "1"}]},
            {"statuses": [{"status": "read", "id": "wamid.2", "timestamp": "9" * 5000}]},
            {"messages": [{"from": "1" * 5000, "timestamp": "1", "type": "text"}]},
            {"messages": [{"from": "1\x00", "timestamp": "1"}]},
            {"messages": [{"from": {"a": 1}, "timestamp": 1}]},
        ):
            answer = await post(change(value))
            assert answer.status_code == 200, (value, answer.text)

        for token in NON_ASCII:
            query = b"hub.mode=subscribe&hub.challenge=42&hub.verify_token=" + quote(token).encode()
            answer = await http.get(hook, params=httpx.QueryParams(query.decode()))
            _assert_herald_error(answer, 403, "invalid_token")


async def test_webchat_refuses_tokens_and_frames_it_cannot_use(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    bot = await create_bot(client, fake)
    who = await visitor(client, bot, "user-7")
    base = socket_url(herald, bot, who).partition("?")[0]
    # Percent-encoded as sent: UTF-8 that is not ASCII, and bytes that are not even UTF-8.
    for token in (quote("é" * 64), quote("Подпись"), "%FF%FE"):
        with pytest.raises(ConnectionClosed) as closed:
            async with connect(f"{base}?visitor={who['visitorId']}&token={token}") as ws:
                await ws.recv()
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with connect(socket_url(herald, bot, who)) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        for raw, code in (
            ("[" * 100_000, "malformed_json"),
            (json.dumps({"type": "text", "text": "a\x00b", "clientId": "c1"}), "invalid_text"),
            (json.dumps({"type": "receipt", "id": 2**70, "status": "read"}), "invalid_receipt"),
        ):
            await ws.send(raw)
            answer = json.loads(await ws.recv())
            assert (answer["type"], answer["code"]) == ("error", code)
        # The socket still works after all that.
        await ws.send(json.dumps({"type": "text", "text": "hello", "clientId": "c2"}))
        frames = [json.loads(await ws.recv()) for _ in range(1)]
        assert frames[0]["type"] in ("ack", "message"), frames


async def test_405_names_the_methods_the_address_accepts(
    herald: RunningHerald, client: httpx.AsyncClient
) -> None:
    twilio = await client.get("/webhooks/twilio/status/some-attempt")
    _assert_herald_error(twilio, 405, "method_not_allowed")
    assert twilio.headers["allow"] == "POST"
    # GET and POST /api/v1/senders are two routes: both methods are named.
    senders = await client.put("/api/v1/senders", json={})
    _assert_herald_error(senders, 405, "method_not_allowed")
    assert {m.strip() for m in senders.headers["allow"].split(",")} >= {"GET", "POST"}
    assert "PUT" in senders.json()["error"]
    health = await client.delete("/healthz")
    _assert_herald_error(health, 405, "method_not_allowed")
    assert "GET" in health.headers["allow"]
