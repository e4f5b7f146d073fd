"""TWIN's clients as they really send (issue 18, items 16-18): provider names Herald has no
adapter for, a template's delivery settings, TWIN's list parameters and channel fields."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from herald.store.bots import record_inbound_activity
from tests.e2e.helpers import add_meta_sender, add_twilio_sender, wait_status
from tests.fakes.smtp import FakeSmtp
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp_meta import FakeMetaWhatsApp
from tests.servers import RunningHerald

PHONE = "+14155552671"


@pytest.fixture
async def client(herald: RunningHerald, fake: FakeTwilio) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        await add_twilio_sender(c, fake)
        yield c


async def post(client: httpx.AsyncClient, **message: Any) -> httpx.Response:
    return await client.post("/api/v1/messages", json={"messages": [message]})


async def test_a_twin_provider_name_maps_through_the_projects_aliases(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    sms = {"text": "Hello", "provider": "INFOBIP"}  # TWIN's SDK example
    refused = await post(client, destinations=[{"phone": PHONE}], channels={"sms": sms})
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "unknown_provider"
    assert "providerAliases" in refused.json()["error"]

    patched = await client.patch(
        "/api/v1/project", json={"providerAliases": {"infobip": "Twilio", "RAPPORTO": "sandbox"}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["providerAliases"] == {"INFOBIP": "twilio", "RAPPORTO": "sandbox"}
    shown = (await client.get("/api/v1/project")).json()
    assert shown["providerAliases"] == {"INFOBIP": "twilio", "RAPPORTO": "sandbox"}

    accepted = await post(client, destinations=[{"phone": PHONE}], channels={"sms": sms})
    assert accepted.status_code == 201, accepted.text
    await wait_status(client, accepted.json()[0]["id"], {"delivered"})
    assert [r.params["Body"][0] for r in fake.requests] == ["Hello"]

    # An alias maps the name; it does not make the default sender another provider's.
    other = {"text": "Hello", "provider": "RAPPORTO"}
    mismatch = await post(client, destinations=[{"phone": PHONE}], channels={"sms": other})
    assert mismatch.status_code == 422 and mismatch.json()["code"] == "provider_mismatch"
    assert "RAPPORTO maps to sandbox" in mismatch.json()["error"]


async def test_provider_aliases_are_checked_and_cleared(client: httpx.AsyncClient) -> None:
    for aliases in ({"INFOBIP": "infobip"}, {"TWILIO": "sandbox"}, {"": "twilio"}):
        bad = await client.patch("/api/v1/project", json={"providerAliases": aliases})
        assert bad.status_code == 422, bad.text
        assert bad.json()["code"] == "invalid_provider_alias"
    await client.patch("/api/v1/project", json={"providerAliases": {"INFOBIP": "twilio"}})
    # Another setting leaves the aliases alone; null clears them.
    kept = await client.patch("/api/v1/project", json={"defaultTimezone": "Europe/Berlin"})
    assert kept.json()["providerAliases"] == {"INFOBIP": "twilio"}
    cleared = await client.patch("/api/v1/project", json={"providerAliases": None})
    assert cleared.json()["providerAliases"] == {}


async def test_a_templates_from_provider_and_validity_apply_like_the_messages_own(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    await add_twilio_sender(client, fake, from_="+14155550123")
    template = {
        "name": "twin",
        "channels": {
            "sms": {
                "text": "Code {{ code }}",
                "from": "+14155550123",
                "provider": "twilio",
                "validityPeriod": 10,
            }
        },
    }
    template_id = (await client.post("/api/v1/templates", json=template)).json()["id"]
    response = await post(
        client, templateId=template_id, destinations=[{"phone": PHONE}], variables={"code": "7"}
    )
    assert response.status_code == 201, response.text
    await wait_status(client, response.json()[0]["id"], {"delivered"})
    (sent,) = fake.requests
    assert sent.params["From"] == ["+14155550123"]  # not the default sender
    assert 540 <= int(sent.params["ValidityPeriod"][0]) <= 600  # 10 minutes, as it stands
    assert sent.params["Body"] == ["Code 7"]

    # The message's own setting wins, field by field.
    own = await post(
        client,
        templateId=template_id,
        destinations=[{"phone": PHONE}],
        variables={"code": "8"},
        channels={"sms": {"from": "+15005550006"}},
    )
    assert own.status_code == 201, own.text
    await wait_status(client, own.json()[0]["id"], {"delivered"})
    assert fake.requests[-1].params["From"] == ["+15005550006"]
    assert 540 <= int(fake.requests[-1].params["ValidityPeriod"][0]) <= 600

    # A template's provider and sender are checked exactly like a message's.
    for settings, code in (
        ({"provider": "INFOBIP"}, "unknown_provider"),
        ({"from": "Twin24"}, "unknown_sender"),
    ):
        bad = {"name": "bad", "channels": {"sms": {"text": "Hi", **settings}}}
        bad_id = (await client.post("/api/v1/templates", json=bad)).json()["id"]
        refused = await post(client, templateId=bad_id, destinations=[{"phone": PHONE}])
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == code


# --- TWIN's channel fields (item 18) -------------------------------------------------------

EMAIL = "ann@example.com"


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake_smtp:
        yield fake_smtp


async def test_email_from_email_from_name_and_reply_to_reach_the_smtp_server(
    client: httpx.AsyncClient, smtp: FakeSmtp
) -> None:
    sender = {
        "channel": "email",
        "provider": "smtp",
        "from": "noreply@herald.example",
        "baseUrl": smtp.base_url,
    }
    assert (await client.post("/api/v1/senders", json=sender)).status_code == 201
    email = {
        "subject": "Your order",
        "text": "Shipped",
        "fromEmail": "shop@herald.example",
        "fromName": "The Shop",
        "replyTo": "help@herald.example",
    }
    response = await post(client, destinations=[{"email": EMAIL}], channels={"email": email})
    assert response.status_code == 201, response.text
    await wait_status(client, response.json()[0]["id"], {"delivered"})
    (mail,) = smtp.messages
    assert mail.message["From"] == "The Shop <shop@herald.example>"
    assert mail.message["Reply-To"] == "help@herald.example"
    assert mail.mail_from == "noreply@herald.example"  # the envelope stays the sender's

    bad = await post(
        client,
        destinations=[{"email": EMAIL}],
        channels={"email": {"text": "x", "replyTo": "not an address"}},
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["code"] == "invalid_email"
    assert "replyTo" in bad.json()["details"]["errors"][0]["path"]


@pytest.fixture
def meta() -> Iterator[FakeMetaWhatsApp]:
    with FakeMetaWhatsApp() as fake_meta:
        yield fake_meta


async def open_window(herald: RunningHerald) -> None:
    async with herald.herald.sessions() as session, session.begin():
        await record_inbound_activity(
            session, herald.project.project_id, "whatsapp", PHONE, herald.herald.clock.now()
        )


async def test_whatsapp_media_and_document_name_reach_meta(
    herald: RunningHerald, client: httpx.AsyncClient, meta: FakeMetaWhatsApp
) -> None:
    await add_meta_sender(client, meta, herald.url)
    await open_window(herald)
    whatsapp = {
        "text": "Your invoice",
        "mediaUrl": "https://files.herald.example/inv/4711",
        "documentFilename": "invoice-4711.pdf",
    }
    response = await post(client, destinations=[{"phone": PHONE}], channels={"whatsapp": whatsapp})
    assert response.status_code == 201, response.text
    await wait_status(client, response.json()[0]["id"], {"delivered", "read"})
    (request,) = meta.requests
    assert request.payload["type"] == "document"
    assert request.payload["document"] == {
        "link": "https://files.herald.example/inv/4711",
        "filename": "invoice-4711.pdf",
        "caption": "Your invoice",
    }


async def test_whatsapp_template_namespace_reaches_meta(
    herald: RunningHerald, client: httpx.AsyncClient, meta: FakeMetaWhatsApp
) -> None:
    await add_meta_sender(client, meta, herald.url)
    whatsapp = {
        "text": "Table for two",
        "templateName": "table_ready",
        "templateNamespace": "b1a2c3d4_e5f6",
        "language": "en",
        "templateData": {"1": "two"},
    }
    response = await post(client, destinations=[{"phone": PHONE}], channels={"whatsapp": whatsapp})
    assert response.status_code == 201, response.text
    await wait_status(client, response.json()[0]["id"], {"delivered", "read"})
    (request,) = meta.requests  # outside the 24-hour window: the approved template
    assert request.payload["template"]["namespace"] == "b1a2c3d4_e5f6"
    assert request.payload["template"]["name"] == "table_ready"


async def test_whatsapp_through_twilio_sends_the_media_and_refuses_what_it_cannot_carry(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    await add_twilio_sender(client, fake, channel="whatsapp", provider="twilio-whatsapp")
    await open_window(herald)
    media = {"text": "Your invoice", "mediaUrl": "https://files.herald.example/inv.pdf"}
    response = await post(client, destinations=[{"phone": PHONE}], channels={"whatsapp": media})
    assert response.status_code == 201, response.text
    await wait_status(client, response.json()[0]["id"], {"delivered", "read"})
    (request,) = fake.requests
    assert request.params["MediaUrl"] == ["https://files.herald.example/inv.pdf"]
    assert request.params["Body"] == ["Your invoice"]

    for extra in ({"documentFilename": "inv.pdf"}, {"templateNamespace": "ns"}):
        refused = await post(
            client, destinations=[{"phone": PHONE}], channels={"whatsapp": {**media, **extra}}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "unsupported_field"
        assert next(iter(extra)) in refused.json()["error"]


# --- TWIN's list parameters (item 17) -------------------------------------------------------


async def two_messages(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """A delivered message, then a scheduled one (created later)."""
    sent = await post(client, destinations=[{"phone": PHONE}], channels={"sms": {"text": "a"}})
    first = await wait_status(client, sent.json()[0]["id"], {"delivered"})
    later = await post(
        client,
        destinations=[{"phone": PHONE}],
        channels={"sms": {"text": "b"}},
        sendAt=(datetime.now(UTC) + timedelta(days=3)).isoformat(),
    )
    assert later.status_code == 201, later.text
    second = (await client.get(f"/api/v1/messages/{later.json()[0]['id']}")).json()
    assert first["status"] == "delivered" and second["status"] == "scheduled"
    return first, second


async def test_message_list_sorts_as_twin_asks(client: httpx.AsyncClient) -> None:
    first, second = await two_messages(client)

    async def order(sort: str | None) -> list[str]:
        params = {"sort": sort} if sort else {}
        response = await client.get("/api/v1/messages", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await order(None) == await order("-createdAt") == [second["id"], first["id"]]
    assert await order("createdAt") == [first["id"], second["id"]]
    assert await order("status") == [first["id"], second["id"]]  # delivered < scheduled
    assert await order("-status") == [second["id"], first["id"]]
    bad = await client.get("/api/v1/messages", params={"sort": "price"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_sort"
    assert "-createdAt" in bad.json()["error"]


async def test_message_list_returns_only_the_fields_asked(client: httpx.AsyncClient) -> None:
    first, second = await two_messages(client)
    for query in ("fields=id,status", "fields[0]=id&fields[1]=status"):
        response = await client.get(f"/api/v1/messages?{query}")
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["count"] == 2  # TWIN's SDK needs count and items whatever it asked
        assert data["items"] == [
            {"id": second["id"], "status": "scheduled"},
            {"id": first["id"], "status": "delivered"},
        ]
    bad = await client.get("/api/v1/messages", params={"fields": "id,colour"})
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_field"
    assert "colour" in bad.json()["error"]


async def test_dates_without_an_offset_are_read_in_twins_timezone_or_the_projects(
    client: httpx.AsyncClient,
) -> None:
    first, _ = await two_messages(client)
    created = datetime.fromisoformat(first["createdAt"]).astimezone(UTC)
    # A minute before the first message, as a clock five hours east of UTC reads it.
    east = (created + timedelta(hours=5) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")

    async def count(**params: Any) -> int:
        response = await client.get("/api/v1/messages", params={"from": east, **params})
        assert response.status_code == 200, response.text  # never a 400 for a date like that
        listed: int = response.json()["count"]
        return listed

    assert await count(timezone=5) == 2
    assert await count(timezone=0) == 0
    assert await count() == 0  # the project's zone: UTC by default
    await client.patch("/api/v1/project", json={"defaultTimezone": "Asia/Karachi"})  # UTC+5
    assert await count() == 2
    old = await client.get("/api/v1/messages", params={"from": "2020-01-01 00:00:00"})
    assert old.status_code == 200 and old.json()["count"] == 2
    assert await count(timezone="") == 2  # PHP's unset option: nothing asked
    for hours in ("15", "Europe/Berlin"):
        bad = await client.get("/api/v1/messages", params={"timezone": hours})
        assert bad.status_code == 422, bad.text


async def test_task_list_reads_dates_in_twins_timezone(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/tasks", json={"name": "spring sale"})
    assert created.status_code in (200, 201), created.text
    task = (await client.get("/api/v1/tasks")).json()["items"][0]
    at = datetime.fromisoformat(task["createdAt"]).astimezone(UTC)
    east = (at + timedelta(hours=5) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    for hours, count in ((5, 1), (0, 0)):
        response = await client.get("/api/v1/tasks", params={"from": east, "timezone": hours})
        assert response.status_code == 200, response.text
        assert response.json()["count"] == count
