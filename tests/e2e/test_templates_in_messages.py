"""Templates, variables and short links through the messages API, down to what Twilio got."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import add_twilio_sender, wait_status
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald


@pytest.fixture
async def client(herald: RunningHerald, fake: FakeTwilio) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        await add_twilio_sender(c, fake)
        yield c


async def make_template(client: httpx.AsyncClient, text: str, **extra: Any) -> str:
    response = await client.post(
        "/api/v1/templates", json={"name": "greeting", "channels": {"sms": {"text": text}}, **extra}
    )
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    return template_id


async def post(client: httpx.AsyncClient, **message: Any) -> httpx.Response:
    return await client.post("/api/v1/messages", json={"messages": [message]})


async def test_variables_per_destination_override_message_level(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    template_id = await make_template(client, "Hi {{ name }}, your code is {{ code }}")
    response = await post(
        client,
        templateId=template_id,
        variables={"code": "0000"},
        destinations=[
            {"phone": "+14155552671", "variables": {"name": "Ann"}},
            {"phone": "+14155552672", "variables": {"name": "Bob", "code": "4242"}},
        ],
    )
    assert response.status_code == 201, response.text
    first, second = (r["id"] for r in response.json())
    await wait_status(client, first, {"delivered"})
    await wait_status(client, second, {"delivered"})
    bodies = {r.params["To"][0]: r.params["Body"][0] for r in fake.requests}
    assert bodies == {
        "+14155552671": "Hi Ann, your code is 0000",
        "+14155552672": "Hi Bob, your code is 4242",
    }
    message = (await client.get(f"/api/v1/messages/{first}")).json()
    assert message["templateId"] == template_id and message["templateVersion"] == 1
    assert message["templateVariables"] == {"code": "0000", "name": "Ann"}


async def test_missing_variables_are_all_named_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    template_id = await make_template(client, "{{ greeting }} {{ name }}, order {{ order }}")
    response = await post(
        client,
        templateId=template_id,
        destinations=[{"phone": "+14155552671", "variables": {"name": "A"}}],
    )
    assert response.status_code == 422
    data = response.json()
    assert data["code"] == "missing_variables"
    assert "greeting" in data["error"] and "order" in data["error"]
    assert (await client.get("/api/v1/messages")).json()["count"] == 0


async def test_request_text_overrides_the_template(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    template_id = await make_template(client, "Template text {{ name }}")
    response = await post(
        client,
        templateId=template_id,
        destinations=[{"phone": "+14155552671", "variables": {"name": "A"}}],
        channels={"sms": {"text": "Own text for {{ name }}"}},
    )
    await wait_status(client, response.json()[0]["id"], {"delivered"})
    assert fake.requests[0].params["Body"] == ["Own text for A"]


async def test_history_keeps_the_version_it_was_rendered_from(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    template_id = await make_template(client, "Version one")
    first = (
        await post(client, templateId=template_id, destinations=[{"phone": "+14155552671"}])
    ).json()[0]["id"]
    updated = await client.put(
        f"/api/v1/templates/{template_id}",
        json={"name": "greeting", "channels": {"sms": {"text": "Two"}}},
    )
    assert updated.status_code < 300
    second = (
        await post(client, templateId=template_id, destinations=[{"phone": "+14155552671"}])
    ).json()[0]["id"]
    one = await wait_status(client, first, {"delivered"})
    two = await wait_status(client, second, {"delivered"})
    assert (one["templateVersion"], one["message"]["text"]) == (1, "Version one")
    assert (two["templateVersion"], two["message"]["text"]) == (2, "Two")
    assert one["templateName"] == two["templateName"] == "greeting"
    listed = (await client.get("/api/v1/messages", params={"id": f"{first},{second}"})).json()
    assert [item["templateName"] for item in listed["items"]] == ["greeting", "greeting"]


async def test_short_links_are_shortened_before_counting_and_redirect(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    long_url = "https://shop.example.com/orders/12345?utm_source=sms&utm_campaign=winter-sale"
    text = f"Your order shipped. Track it: {long_url}. Thanks!"
    response = await post(
        client,
        destinations=[{"phone": "+14155552671"}],
        channels={"sms": {"text": text}},
        useShortLinks=True,
    )
    message_id = response.json()[0]["id"]
    message = await wait_status(client, message_id, {"delivered"})
    body = fake.requests[0].params["Body"][0]
    match = re.search(re.escape(herald.url) + r"/([0-9A-Za-z]{8})\.", body)
    assert match, body
    assert long_url not in body
    assert message["partCount"] == 1  # the long version would take two segments
    async with httpx.AsyncClient() as browser:
        redirect = await browser.get(
            f"{herald.url}/{match.group(1)}", headers={"User-Agent": "test-phone"}
        )
        assert redirect.status_code == 302
        assert redirect.headers["location"] == long_url
        missing = await browser.get(f"{herald.url}/Zz9Zz9Zz")
        assert missing.status_code == 404
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert message["shortLinks"]["clicks"] == 1
    assert message["shortLinks"]["firstClickedAt"]
    listed = (await client.get("/api/v1/shortLinks", params={"messageId": message_id})).json()
    assert listed["count"] == 1 and listed["items"][0]["content"] == long_url
    assert listed["items"][0]["clicks"] == 1


async def test_text_too_long_after_rendering(client: httpx.AsyncClient) -> None:
    template_id = await make_template(client, "{{ blob }}")
    response = await post(
        client,
        templateId=template_id,
        destinations=[{"phone": "+14155552671", "variables": {"blob": "x" * 1700}}],
    )
    assert response.status_code == 422
    assert response.json()["code"] == "text_too_long"


async def test_smart_encoding_sender(client: httpx.AsyncClient, fake: FakeTwilio) -> None:
    sender = await client.post(
        "/api/v1/senders",
        json={
            "channel": "sms",
            "provider": "twilio",
            "from": "+15005550010",
            "accountSid": fake.account_sid,
            "authToken": fake.auth_token,
            "baseUrl": fake.base_url,
            "smartEncoding": True,
        },
    )
    assert sender.status_code == 201, sender.text
    response = await post(
        client,
        destinations=[{"phone": "+14155552671"}],
        channels={"sms": {"text": "“Smart” quotes – and more…", "from": "+15005550010"}},
    )
    await wait_status(client, response.json()[0]["id"], {"delivered"})
    assert fake.requests[0].params["Body"] == ['"Smart" quotes - and more...']


async def test_inline_variables_and_literal_braces(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    inline = await post(
        client,
        destinations=[{"phone": "+14155552671", "variables": {"name": "Ann"}}],
        channels={"sms": {"text": "Hello {{ name }}"}},
    )
    literal = await post(
        client,
        destinations=[{"phone": "+14155552672"}],
        channels={"sms": {"text": "Use {{code}} literally"}},
    )
    await wait_status(client, inline.json()[0]["id"], {"delivered"})
    await wait_status(client, literal.json()[0]["id"], {"delivered"})
    bodies = {r.params["To"][0]: r.params["Body"][0] for r in fake.requests}
    assert bodies["+14155552671"] == "Hello Ann"
    assert bodies["+14155552672"] == "Use {{code}} literally"
