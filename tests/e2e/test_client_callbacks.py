"""Client callbacks over real sockets: order, message-level status, the log, both signatures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update
from standardwebhooks import Webhook

from herald.config import Settings
from herald.services.projects import rotate_webhook_secret
from herald.store.callbacks import ClientCallback
from tests.e2e.helpers import send_sms, wait_status
from tests.e2e.test_cli import run
from tests.servers import (
    CallbackReceiver,
    ReceivedCallback,
    RunningHerald,
    callback_receiver,
    running_herald,
)

NEW_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")


def herald_signature_ok(secret: str, callback: ReceivedCallback) -> bool:
    t, v1 = callback.headers["x-herald-signature"].split(",")
    mac = hmac.new(secret.encode(), t[2:].encode() + b"." + callback.body, hashlib.sha256)
    return v1 == f"v1={mac.hexdigest()}"


async def received_for(
    receiver: CallbackReceiver, message_id: str, final: set[str], timeout: float = 20.0
) -> list[ReceivedCallback]:
    await receiver.wait_for(lambda b: b["id"] == message_id and b["status"] in final, timeout)
    return [c for c in receiver.received if c.json["id"] == message_id]


def assert_told_in_order(callbacks: list[ReceivedCallback]) -> None:
    """Sequence 1, 2, 3 … as received; each previousStatus the status before it."""
    bodies = [c.json for c in callbacks]
    assert [b["sequence"] for b in bodies] == list(range(1, len(bodies) + 1)), bodies
    for before, after in itertools.pairwise(bodies):
        assert after["previousStatus"] == before["status"], bodies


async def make_due(herald: RunningHerald) -> None:
    """Retries back off from 5 s; make the pending ones due now instead of waiting."""
    async with herald.herald.sessions() as session, session.begin():
        await session.execute(
            update(ClientCallback)
            .where(ClientCallback.state == "pending")
            .values(next_attempt_at=herald.herald.clock.now())
        )


async def test_every_sandbox_message_is_told_in_order_and_verifies_both_ways(
    herald: RunningHerald, client: httpx.AsyncClient
) -> None:
    # The sandbox reports sent and delivered at the same instant: the order must not depend
    # on timestamps or on ids made within one millisecond.
    async with callback_receiver() as receiver:
        ids = [
            await send_sms(client, f"+1415555{n:04d}", "hello", callbackUrl=receiver.url)
            for n in range(30)
        ]
        told = {m: await received_for(receiver, m, {"delivered"}) for m in ids}
    secret = herald.project.webhook_secret
    assert NEW_SECRET.fullmatch(secret)
    verifier = Webhook(secret)
    for message_id, callbacks in told.items():
        assert_told_in_order(callbacks)
        assert [c.json["status"] for c in callbacks][-1] == "delivered"
        for c in callbacks:
            assert c.headers["webhook-id"] == c.headers["x-herald-callback-id"]
            assert verifier.verify(c.body, c.headers)["id"] == message_id
            assert herald_signature_ok(secret, c)
        message = (await client.get(f"/api/v1/messages/{message_id}")).json()
        assert callbacks[-1].json["status"] == message["status"]


async def test_a_failing_callback_holds_back_the_later_ones_and_every_attempt_is_listed(
    herald: RunningHerald, client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    async with callback_receiver(fail_first=1) as receiver:
        message_id = await send_sms(client, "+14155552671", "hello", callbackUrl=receiver.url)
        await wait_status(client, message_id, {"delivered"})
        # The first POST was answered 500 and waits for its retry (a backoff with full
        # jitter: up to 5 s, possibly much less); nothing after it may overtake it meanwhile.
        listing = await wait_listed(
            client, message_id, lambda items: items[0]["attempts"] and len(items) == 3
        )
        await asyncio.sleep(0.5)  # time for a later callback to overtake, were it allowed to
        told = [c.json["sequence"] for c in receiver.received]
        assert told == list(range(1, len(told) + 1)), told
        first, *later = listing["items"]
        if first["state"] == "pending":  # its retry had not come yet: the others wait too
            assert all(i["state"] == "pending" and not i["attempts"] for i in later), later
        await make_due(herald)
        callbacks = await received_for(receiver, message_id, {"delivered"})
    assert_told_in_order(callbacks)
    assert [c.json["status"] for c in callbacks] == ["sending", "sent", "delivered"]

    listing = await wait_listed(
        client, message_id, lambda items: all(i["state"] == "sent" for i in items)
    )
    assert listing["count"] == 3
    first, *rest = listing["items"]
    assert (first["sequence"], first["status"], first["url"]) == (1, "sending", receiver.url)
    refused, accepted = first["attempts"]
    assert (refused["httpStatus"], refused["response"], refused["error"]) == (500, "not now", None)
    assert (accepted["httpStatus"], accepted["response"]) == (200, "ok")
    assert refused["url"] == receiver.url and refused["at"]
    assert [len(i["attempts"]) for i in rest] == [1, 1]

    env = {
        "HERALD_URL": herald.url,
        "HERALD_API_KEY": herald.project.api_key,
        "COLUMNS": "200",
    }
    shown = await asyncio.to_thread(run, ["messages", "callbacks", message_id], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "not now" in shown.stdout and "500" in shown.stdout and "delivered" in shown.stdout
    assert receiver.url in shown.stdout
    other = await herald.new_project()
    async with herald.client(other.api_key) as stranger:
        hidden = await stranger.get(f"/api/v1/messages/{message_id}/callbacks")
    assert hidden.status_code == 404 and hidden.json()["code"] == "message_not_found"


async def wait_listed(
    client: httpx.AsyncClient, message_id: str, ready: Any, timeout: float = 15.0
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/api/v1/messages/{message_id}/callbacks")
            assert response.status_code == 200, response.text
            data: dict[str, Any] = response.json()
            if data["items"] and ready(data["items"]):
                return data
            await asyncio.sleep(0.05)


async def test_a_project_default_callback_url_serves_messages_that_name_none(
    herald: RunningHerald, client: httpx.AsyncClient
) -> None:
    async with callback_receiver() as receiver:
        patched = await client.patch("/api/v1/project", json={"callbackUrl": receiver.url})
        assert patched.status_code == 200, patched.text
        assert patched.json()["callbackUrl"] == receiver.url
        assert (await client.get("/api/v1/project")).json()["callbackUrl"] == receiver.url
        message_id = await send_sms(client, "+14155552671", "hello")
        callbacks = await received_for(receiver, message_id, {"delivered"})
        assert_told_in_order(callbacks)
        message = (await client.get(f"/api/v1/messages/{message_id}")).json()
        assert message["callbackUrl"] == receiver.url

    for bad, code in [
        ("ftp://example.com/hook", "invalid_callback_url"),
        ("nope", "invalid_callback_url"),
    ]:
        refused = await client.patch("/api/v1/project", json={"callbackUrl": bad})
        assert refused.status_code == 422 and refused.json()["code"] == code, refused.text
    cleared = await client.patch("/api/v1/project", json={"callbackUrl": None})
    assert cleared.status_code == 200 and cleared.json()["callbackUrl"] is None


async def test_a_private_default_callback_url_is_refused(settings: Settings) -> None:
    strict = settings.model_copy(update={"allowed_private_hosts": ()})
    async with running_herald(strict) as h, h.client() as client:
        refused = await client.patch(
            "/api/v1/project", json={"callbackUrl": "http://127.0.0.1:9/hook"}
        )
    assert refused.status_code == 422 and refused.json()["code"] == "url_not_allowed"


async def test_a_rotated_secret_signs_the_next_callbacks_at_once(
    herald: RunningHerald, client: httpx.AsyncClient
) -> None:
    async with callback_receiver() as receiver:
        first = await send_sms(client, "+14155552671", "one", callbackUrl=receiver.url)
        before = await received_for(receiver, first, {"delivered"})
        async with herald.herald.sessions() as session, session.begin():
            rotated = await rotate_webhook_secret(session, herald.herald.vault, "test")
        assert NEW_SECRET.fullmatch(rotated) and rotated != herald.project.webhook_secret
        second = await send_sms(client, "+14155552671", "two", callbackUrl=receiver.url)
        after = await received_for(receiver, second, {"delivered"})
    assert all(Webhook(herald.project.webhook_secret).verify(c.body, c.headers) for c in before)
    for c in after:
        assert Webhook(rotated).verify(c.body, c.headers)
        assert herald_signature_ok(rotated, c)
        assert not herald_signature_ok(herald.project.webhook_secret, c)


def test_rotate_secret_from_the_command_line(tmp_path: Path) -> None:
    env = {"HERALD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    created = run(["projects", "create", "acme", "--json"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    old = created.stdout.split('"webhookSecret": "')[1].split('"')[0]
    assert NEW_SECRET.fullmatch(old)
    rotated = run(["projects", "rotate-secret", "acme", "--json"], env, tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.split('"webhookSecret": "')[1].split('"')[0]
    assert NEW_SECRET.fullmatch(new) and new != old
    assert len(base64.b64decode(new.removeprefix("whsec_"))) == 32
    unknown = run(["projects", "rotate-secret", "nobody"], env, tmp_path)
    assert unknown.returncode == 1 and "no project named 'nobody'" in unknown.stderr
