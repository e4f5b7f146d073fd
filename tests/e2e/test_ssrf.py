"""Tenants' URLs never lead Herald inside the network, neither when given nor when called."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from herald.config import Settings
from herald.store.callbacks import ClientCallback, ClientCallbackAttempt
from herald.store.messages import Message
from tests.e2e.helpers import add_twilio_sender, send_sms, wait_status
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, _serve, callback_receiver, free_port, running_herald

TO = "+15005550006"
SECRET = "db password is hunter2"


async def count_messages(herald: RunningHerald) -> int:
    async with herald.herald.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


def refused(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == "url_not_allowed", body
    assert f"'{field}'" in body["error"]
    return body


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://0x0a.1/",  # 10.0.0.1, spelt as inet_aton reads it
        "http://167772161/",  # 10.0.0.1 again
        "http://127.0.0.2/",  # loopback, but not the address the tests allow
        "http://user:pass@example.com/hook",
    ],
)
async def test_a_callback_url_inside_the_network_is_refused_and_nothing_stored(
    herald: RunningHerald, client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post(
        "/api/v1/messages",
        json={
            "messages": [
                {
                    "destinations": [{"phone": TO}],
                    "channels": {"sms": {"text": "hi"}},
                    "callbackUrl": url,
                }
            ]
        },
    )
    body = refused(response, "callbackUrl")
    assert body["details"]["errors"][0]["path"] == "messages[0].callbackUrl"
    assert await count_messages(herald) == 0


async def test_the_metadata_address_reads_as_such(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/messages",
        json={
            "messages": [
                {
                    "destinations": [{"phone": TO}],
                    "channels": {"sms": {"text": "hi"}},
                    "callbackUrl": "http://169.254.169.254/",
                }
            ]
        },
    )
    assert response.json()["error"] == (
        "messages[0].callbackUrl: 'callbackUrl' points to a link-local address "
        "(169.254.169.254); Herald only calls public addresses unless "
        "HERALD_ALLOWED_PRIVATE_HOSTS names it."
    )


async def test_a_task_callback_url_inside_the_network_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/tasks",
        json={"name": "x", "settings": {"callbackUrl": "http://192.168.0.1/"}},
    )
    body = refused(response, "callbackUrl")
    assert body["details"]["errors"][0]["path"] == "settings.callbackUrl"


@pytest.mark.parametrize(
    ("sender", "url"),
    [
        (
            {"provider": "twilio", "accountSid": "AC" + "0" * 32, "authToken": "t"},
            "http://10.0.0.1",
        ),
        (
            {"provider": "twilio", "accountSid": "AC" + "0" * 32, "authToken": "t"},
            "http://localhost.localhost:1/",
        ),
    ],
)
async def test_a_sender_base_url_inside_the_network_is_refused(
    client: httpx.AsyncClient, sender: dict[str, str], url: str
) -> None:
    response = await client.post(
        "/api/v1/senders",
        json={"channel": "sms", "from": "+15005550123", "baseUrl": url, **sender},
    )
    refused(response, "baseUrl")
    listed = (await client.get("/api/v1/senders")).json()
    assert all(s["baseUrl"] != url for s in listed["items"])


async def test_other_senders_bots_and_updates_are_refused_alike(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    refused(
        await client.post(
            "/api/v1/senders",
            json={
                "channel": "email",
                "provider": "smtp",
                "from": "news@example.com",
                "baseUrl": "smtp://10.1.2.3:25?starttls=off",
            },
        ),
        "baseUrl",
    )
    refused(
        await client.post(
            "/api/v1/senders",
            json={
                "channel": "telegram",
                "provider": "telegram",
                "from": "@acme_bot",
                "botToken": "123:abc",
                "baseUrl": "http://[::ffff:169.254.169.254]/",
            },
        ),
        "baseUrl",
    )
    sender = await add_twilio_sender(client, fake)
    refused(
        await client.patch(f"/api/v1/senders/{sender['id']}", json={"baseUrl": "http://10.0.0.1"}),
        "baseUrl",
    )
    bot = {
        "name": "Support",
        "accountSid": fake.account_sid,
        "authToken": fake.auth_token,
        "phone": "+15005550199",
        "baseUrl": fake.base_url,
    }
    refused(
        await client.post("/api/v1/bots", json={**bot, "webhookUrl": "http://172.16.0.1/"}),
        "webhookUrl",
    )
    refused(
        await client.post("/api/v1/bots", json={**bot, "baseUrl": "http://172.16.0.1/"}),
        "baseUrl",
    )
    created = await client.post("/api/v1/bots", json=bot)
    assert created.status_code == 201, created.text
    refused(
        await client.patch(
            f"/api/v1/bots/{created.json()['id']}", json={"webhookUrl": "http://10.9.9.9/"}
        ),
        "webhookUrl",
    )


async def test_loopback_is_refused_when_the_installation_names_no_host(
    database_url: str, secret_key: str, settings: Settings
) -> None:
    strict = settings.model_copy(update={"allowed_private_hosts": ()})
    async with running_herald(strict, run_workers=False) as herald, herald.client() as client:
        response = await client.post(
            "/api/v1/messages",
            json={
                "messages": [
                    {
                        "destinations": [{"phone": TO}],
                        "channels": {"sms": {"text": "hi"}},
                        "callbackUrl": "http://127.0.0.1:8080/hook",
                    }
                ]
            },
        )
        refused(response, "callbackUrl")
        # The sandbox is in-process: a fresh installation sends without naming any host.
        sent = await send_sms(client, TO, "hello")
        assert (await wait_status(client, sent, {"queued", "sent", "delivered"}))["id"] == sent


# -- connect time -------------------------------------------------------------------------------


async def test_a_stored_target_that_now_points_inside_is_not_connected_to(
    settings: Settings, fake: FakeTwilio
) -> None:
    """Accepted under one setting, sent under a stricter one: the check at connect time holds.

    The first Herald names ``localhost`` (so the sender's and callback's URLs, written with
    that name, are accepted); the second names only 127.0.0.2. ``localhost`` still resolves to
    127.0.0.1, which the second may not reach: neither Twilio's stand-in nor the callback
    receiver hears from it, and the message fails at once, without retries.
    """
    lenient = settings.model_copy(update={"allowed_private_hosts": ("localhost",)})
    strict = settings.model_copy(update={"allowed_private_hosts": ("127.0.0.2",)})
    twilio_port = fake.base_url.rsplit(":", 1)[1]
    async with callback_receiver() as receiver:
        hook = receiver.url.replace("127.0.0.1", "localhost")
        async with running_herald(lenient, run_workers=False) as first, first.client() as client:
            await add_twilio_sender(client, fake, base_url=f"http://localhost:{twilio_port}")
            message_id = await send_sms(client, TO, "hi", callbackUrl=hook)
            api_key = first.project.api_key
        async with running_herald(strict) as second, second.client(api_key) as client:
            message = await wait_status(client, message_id)
            async with asyncio.timeout(10):  # retried, they would wait minutes
                while "pending" in (states := await _callback_states(second)):
                    await asyncio.sleep(0.05)
            attempts = await _callback_attempts(second)
    assert message["status"] == "failed", message
    error = message["error"] or {}
    assert error["code"] == "url_not_allowed", message
    assert "localhost, which is 127.0.0.1" in error["message"]
    assert len(fake.messages) == 0
    assert receiver.received == []
    assert states and set(states) == {"failed"}  # given up at once, not retried for hours
    assert attempts == len(states)


async def _callback_states(herald: RunningHerald) -> list[str]:
    async with herald.herald.sessions() as session:
        return list(await session.scalars(select(ClientCallback.state)))


async def _callback_attempts(herald: RunningHerald) -> int:
    async with herald.herald.sessions() as session:
        return int(
            await session.scalar(select(func.count()).select_from(ClientCallbackAttempt)) or 0
        )


async def test_callbacks_do_not_follow_redirects(settings: Settings) -> None:
    """A callback endpoint answering 307 elsewhere (say, inside) is not followed."""
    async with (
        callback_receiver() as inside,
        _redirecting(inside.url) as outside,
        running_herald(settings) as herald,
        herald.client() as client,
    ):
        message_id = await send_sms(client, TO, "hi", callbackUrl=outside.url)
        await wait_status(client, message_id, {"delivered"})
        async with asyncio.timeout(10):
            while not outside.hits:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # time enough for a followed redirect to arrive
    assert outside.hits
    assert inside.received == []


# -- what tenants read --------------------------------------------------------------------------


async def test_a_non_provider_answer_never_reaches_the_message_error(
    database_url: str, secret_key: str, settings: Settings
) -> None:
    """A sender's baseUrl pointed at some other service: its answer stays out of error.message."""
    async with _internal_service() as service:
        quick = settings.model_copy(update={"max_attempts": 2})
        async with running_herald(quick) as herald, herald.client() as client:
            response = await client.post(
                "/api/v1/senders",
                json={
                    "channel": "sms",
                    "provider": "twilio",
                    "from": "+15005550123",
                    "accountSid": "AC" + "0" * 32,
                    "authToken": "t",
                    "baseUrl": service.url,
                    "default": True,
                },
            )
            assert response.status_code == 201, response.text
            message_id = await send_sms(client, TO, "hi")
            message = await wait_status(client, message_id)
            detail = (await client.get(f"/api/v1/messages/{message_id}")).text
    assert service.hits >= 1
    assert message["status"] == "failed", message
    assert message["error"]["message"] == (
        "Twilio answered HTTP 500 with a body that is not Twilio's"
    )
    assert SECRET not in detail and "hunter2" not in detail


# -- local servers ------------------------------------------------------------------------------


class _Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.hits = 0


@contextlib.asynccontextmanager
async def _internal_service() -> AsyncIterator[_Server]:
    """Some internal JSON service: answers everything with 500 and a secret."""
    port = free_port()
    server = _Server(f"http://127.0.0.1:{port}")

    async def anything(_request: Request) -> Response:
        server.hits += 1
        return JSONResponse({"message": SECRET, "detail": SECRET}, status_code=500)

    app = Starlette(
        routes=[Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "DELETE"])]
    )
    uvicorn_server, task = await _serve(app, port)
    try:
        yield server
    finally:
        uvicorn_server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def _redirecting(target: str) -> AsyncIterator[_Server]:
    port = free_port()
    server = _Server(f"http://127.0.0.1:{port}/hook")

    async def hook(_request: Request) -> Response:
        server.hits += 1
        return Response(status_code=307, headers={"Location": target})

    uvicorn_server, task = await _serve(
        Starlette(routes=[Route("/hook", hook, methods=["POST"])]), port
    )
    try:
        yield server
    finally:
        uvicorn_server.should_exit = True
        await task
