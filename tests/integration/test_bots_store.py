"""Bots, suppressions and contact activity on both databases, through services and the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from herald.config import Settings
from herald.services.delivery.suppressions import (
    is_suppressed,
    record_suppression,
    refuse_suppressed,
    suppressed_pairs,
)
from herald.store.bots import last_inbound_at, record_inbound_activity
from tests.servers import RunningHerald, running_herald

BOT_NUMBER = "+15005550006"
PERSON = "+14155552671"
SID = "AC" + "1" * 32


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings, run_workers=False) as running:
        yield running


@pytest.fixture
async def client(herald: RunningHerald) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        yield c


def bot_body(**extra: object) -> dict[str, object]:
    return {
        "name": "Support",
        "accountSid": SID,
        "authToken": "secret-token",
        "phone": BOT_NUMBER,
        **extra,
    }


async def test_suppression_checks_single_batch_and_claimed(herald: RunningHerald) -> None:
    project = herald.project.project_id
    other = (await herald.new_project()).project_id
    async with herald.herald.sessions() as session, session.begin():
        assert await record_suppression(session, project, "sms", BOT_NUMBER, PERSON, "keyword:STOP")
        # Confirmed once: the second STOP is not new.
        assert not await record_suppression(
            session, project, "sms", BOT_NUMBER, PERSON, "keyword:STOP"
        )
        await record_suppression(
            session, project, "whatsapp", "whatsapp:+15550001111", "whatsapp:+15550002222", "x"
        )
    async with herald.herald.sessions() as session:
        assert await is_suppressed(session, project, "sms", BOT_NUMBER, PERSON)
        assert await is_suppressed(session, project, "SMS", BOT_NUMBER, PERSON)
        # Another sender, another channel or another project may still text them.
        assert not await is_suppressed(session, project, "sms", "+15005550007", PERSON)
        assert not await is_suppressed(session, project, "whatsapp", BOT_NUMBER, PERSON)
        assert not await is_suppressed(session, other, "sms", BOT_NUMBER, PERSON)
        # Prefixed and bare forms are the same person.
        assert await is_suppressed(session, project, "whatsapp", "+15550001111", "+15550002222")
        pairs = [(BOT_NUMBER, PERSON), (BOT_NUMBER, "+14155550000"), (BOT_NUMBER, PERSON)]
        assert await suppressed_pairs(session, project, "sms", pairs) == {(BOT_NUMBER, PERSON)}
        claimed = [
            (project, "sms", BOT_NUMBER, "+14155550000"),
            (project, "sms", BOT_NUMBER, PERSON),
            (other, "sms", BOT_NUMBER, PERSON),
            (project, "whatsapp", "whatsapp:+15550001111", "whatsapp:+15550002222"),
        ]
        assert await refuse_suppressed(session, claimed) == {1, 3}
        assert await refuse_suppressed(session, []) == set()


async def test_suppressions_api_lists_adds_and_removes(
    herald: RunningHerald, client: httpx.AsyncClient
) -> None:
    added = await client.post("/api/v1/suppressions", json={"from": BOT_NUMBER, "to": PERSON})
    assert added.status_code == 201, added.text
    assert added.json()["source"] == "api"
    async with herald.herald.sessions() as session, session.begin():
        await record_suppression(
            session, herald.project.project_id, "sms", BOT_NUMBER, "+14155550000", "twilio-21610"
        )
    listed = (await client.get("/api/v1/suppressions")).json()
    assert listed["count"] == 2
    only = (await client.get("/api/v1/suppressions", params={"to": PERSON})).json()
    assert [s["to"] for s in only["items"]] == [PERSON]
    # Other projects see nothing and cannot remove it.
    other = await herald.new_project()
    async with herald.client(other.api_key) as stranger:
        assert (await stranger.get("/api/v1/suppressions")).json()["count"] == 0
        gone = await stranger.delete(f"/api/v1/suppressions/{added.json()['id']}")
        assert gone.status_code == 404
        assert gone.json()["code"] == "suppression_not_found"
    removed = await client.delete(f"/api/v1/suppressions/{added.json()['id']}")
    assert removed.status_code == 204
    assert (await client.get("/api/v1/suppressions")).json()["count"] == 1
    bad = await client.post("/api/v1/suppressions", json={"to": PERSON})
    assert bad.status_code == 422
    assert bad.json()["code"] == "missing_field"


async def test_last_inbound_at_moves_only_forward(herald: RunningHerald) -> None:
    project = herald.project.project_id
    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    async with herald.herald.sessions() as session, session.begin():
        assert await last_inbound_at(session, project, "whatsapp", PERSON) is None
        await record_inbound_activity(session, project, "whatsapp", f"whatsapp:{PERSON}", t0)
        await record_inbound_activity(session, project, "whatsapp", PERSON, t0 - timedelta(hours=1))
    async with herald.herald.sessions() as session, session.begin():
        assert await last_inbound_at(session, project, "whatsapp", f"whatsapp:{PERSON}") == t0
        assert await last_inbound_at(session, project, "sms", PERSON) is None
        await record_inbound_activity(session, project, "whatsapp", PERSON, t0 + timedelta(hours=2))
    async with herald.herald.sessions() as session:
        assert await last_inbound_at(session, project, "whatsapp", PERSON) == t0 + timedelta(
            hours=2
        )


async def test_bot_crud_never_returns_the_token(
    herald: RunningHerald, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/api/v1/bots",
        json=bot_body(
            rules=[{"match": "exact", "pattern": "hours", "reply": "9 to 5"}],
            defaultReply="Thanks, we will get back to you.",
        ),
    )
    assert created.status_code == 201, created.text
    bot = created.json()
    assert "authToken" not in bot and "secret-token" not in created.text
    assert bot["phone"] == BOT_NUMBER
    assert bot["inboundWebhookUrl"] == f"{herald.url}/webhooks/twilio/inbound/{bot['id']}"
    # The number became a Twilio SMS sender, not replacing the default sandbox one.
    senders = (await client.get("/api/v1/senders")).json()["items"]
    twilio = [s for s in senders if s["from"] == BOT_NUMBER]
    assert len(twilio) == 1 and twilio[0]["provider"] == "TWILIO" and not twilio[0]["default"]

    # Update any field, like seed 002's update call; fields left out are kept.
    updated = await client.put(
        f"/api/v1/bots/{bot['id']}",
        json={"name": "Helpdesk", "webhookUrl": "https://bots.example.com/hook", "rules": []},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Helpdesk"
    assert updated.json()["rules"] == []
    assert updated.json()["defaultReply"] == "Thanks, we will get back to you."
    cleared = await client.patch(f"/api/v1/bots/{bot['id']}", json={"webhookUrl": None})
    assert cleared.json()["webhookUrl"] is None

    listed = (await client.get("/api/v1/bots")).json()
    assert [b["id"] for b in listed["items"]] == [bot["id"]]
    other = await herald.new_project()
    async with herald.client(other.api_key) as stranger:
        assert (await stranger.get(f"/api/v1/bots/{bot['id']}")).status_code == 404
        assert (await stranger.get("/api/v1/bots")).json()["count"] == 0
    duplicate = await client.post("/api/v1/bots", json=bot_body())
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "bot_exists"
    assert (await client.delete(f"/api/v1/bots/{bot['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/bots/{bot['id']}")).json()["code"] == "bot_not_found"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (bot_body(phone="555"), "invalid_phone", "phone"),
        (bot_body(accountSid="AC123"), "invalid_bot", "accountSid"),
        (bot_body(webhookUrl="ftp://x"), "invalid_bot", "webhookUrl"),
        (bot_body(replyTimeout=60), "invalid_bot", "replyTimeout"),
        (bot_body(rules=[{"match": "regex", "pattern": "(", "reply": "x"}]), "invalid_rule",
         "rules[0].pattern"),
        ({"name": "x", "accountSid": SID, "phone": BOT_NUMBER}, "missing_field", "authToken"),
    ],
)  # fmt: skip
async def test_bad_bots_are_422_with_a_code(
    client: httpx.AsyncClient, body: dict[str, object], code: str, field: str
) -> None:
    response = await client.post("/api/v1/bots", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["details"]["field"] == field
    assert (await client.get("/api/v1/bots")).json()["count"] == 0


async def test_seed_002_create_and_update_calls(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/bots",
        json={
            "user-type": "machine",
            "twilio-account-sid": SID,
            "twilio-auth-token": "AUTH_TOKEN",
            "main-phone-number": "+14154567890",
            "name": "Botwi",
        },
    )
    assert created.status_code == 201, created.text
    bot = created.json()
    assert (bot["name"], bot["accountSid"]) == ("Botwi", SID)
    # The seed's update: POST with (quoted) query parameters.
    other_sid = "AC" + "3" * 32
    updated = await client.post(
        f"/api/v1/bots/{bot['id']}",
        params={
            "twilio-account-sid": f'"{other_sid}"',
            "twilio-auth-token": '"NEW_TOKEN"',
            "main-phone-number": '"+14155550123"',
        },
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["accountSid"], updated.json()["phone"]) == (other_sid, "+14155550123")
    assert updated.json()["name"] == "Botwi"
    # The new number is a sender too, with the new account.
    senders = (await client.get("/api/v1/senders")).json()["items"]
    assert {s["from"]: s["accountSid"] for s in senders if s["provider"] == "TWILIO"} == {
        "+14155550123": other_sid,
        "+14154567890": SID,
    }
    refused = await client.post("/api/v1/bots", json={"user-type": "human", "name": "x"})
    assert refused.status_code == 422
