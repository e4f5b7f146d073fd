"""WhatsApp adapters over real HTTP: Meta's Cloud API against its fake (payloads, errors,
signed webhooks and their parsing) and Twilio's WhatsApp against the fake Twilio."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from herald.channels.base import (
    OutboundMessage,
    PermanentError,
    ProviderError,
    ProviderTemplate,
    SenderAccount,
    TransientError,
)
from herald.channels.http import provider_http_client
from herald.channels.twilio import STATUS_MAP
from herald.channels.whatsapp_meta import (
    MetaWhatsApp,
    build_payload,
    error_from_response,
    parse_inbound,
    parse_statuses,
    signature_for,
    verify_signature,
    verify_subscription,
)
from herald.channels.whatsapp_twilio import TwilioWhatsApp
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp_meta import FakeMetaWhatsApp
from tests.servers import LOOPBACK_POLICY, Hit
from tests.servers import ThreadedReceiver as Receiver

TO = "+15551234567"
WA_ID = "15551234567"
VERIFY_TOKEN = "verify-me"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture(scope="module")
def module_meta(receiver: Receiver) -> Iterator[FakeMetaWhatsApp]:
    with FakeMetaWhatsApp(webhook_url=f"{receiver.url}/webhooks/meta") as fake:
        yield fake


@pytest.fixture
def meta(module_meta: FakeMetaWhatsApp, receiver: Receiver) -> FakeMetaWhatsApp:
    module_meta.reset()
    module_meta.read_receipts = False
    receiver.hits.clear()
    return module_meta


@pytest.fixture
async def cloud() -> AsyncIterator[MetaWhatsApp]:
    adapter = MetaWhatsApp(httpx.AsyncClient(timeout=5.0, trust_env=False))
    yield adapter
    await adapter.aclose()


def meta_account(fake: FakeMetaWhatsApp, token: str | None = None) -> SenderAccount:
    return SenderAccount(
        id="sender-wa",
        provider="meta-whatsapp",
        from_address="+15550783881",
        account_id=fake.phone_number_id,
        credentials={
            "accessToken": token or fake.access_token,
            "appSecret": fake.app_secret,
            "verifyToken": VERIFY_TOKEN,
        },
        base_url=fake.base_url,
    )


def sent_payloads(fake: FakeMetaWhatsApp) -> list[dict[str, Any] | None]:
    return [r.payload for r in fake.requests]


BASE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID}


# -- Meta Cloud API: payloads -------------------------------------------------------------------


async def test_text_with_url_previews(meta: FakeMetaWhatsApp, cloud: MetaWhatsApp) -> None:
    receipt = await cloud.send(
        meta_account(meta), OutboundMessage(to=TO, body="See https://ex.com")
    )

    assert sent_payloads(meta) == [
        {**BASE, "type": "text", "text": {"body": "See https://ex.com", "preview_url": True}}
    ]
    [request] = meta.requests
    assert request.authorization == f"Bearer {meta.access_token}"
    assert (request.version, request.phone_number_id) == ("v21.0", meta.phone_number_id)
    assert receipt.provider_message_id == request.wamid
    assert receipt.provider_message_id.startswith("wamid.")
    assert receipt.provider_status == "accepted"


async def test_plain_text_does_not_preview(meta: FakeMetaWhatsApp, cloud: MetaWhatsApp) -> None:
    await cloud.send(meta_account(meta), OutboundMessage(to=TO, body="Your code is 1234"))

    assert sent_payloads(meta) == [
        {**BASE, "type": "text", "text": {"body": "Your code is 1234", "preview_url": False}}
    ]


async def test_image_with_caption(meta: FakeMetaWhatsApp, cloud: MetaWhatsApp) -> None:
    message = OutboundMessage(to=TO, body="New arrivals", image_url="https://cdn.ex.com/a.jpg")
    await cloud.send(meta_account(meta), message)

    assert sent_payloads(meta) == [
        {
            **BASE,
            "type": "image",
            "image": {"link": "https://cdn.ex.com/a.jpg", "caption": "New arrivals"},
        }
    ]


async def test_cta_url_button_with_image_header(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp
) -> None:
    message = OutboundMessage(
        to=TO,
        body="Your order shipped",
        image_url="https://cdn.ex.com/box.jpg",
        button_url="https://ex.com/track/42",
        button_text="Track",
    )
    await cloud.send(meta_account(meta), message)

    assert sent_payloads(meta) == [
        {
            **BASE,
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "Your order shipped"},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": "Track", "url": "https://ex.com/track/42"},
                },
                "header": {"type": "image", "image": {"link": "https://cdn.ex.com/box.jpg"}},
            },
        }
    ]


async def test_template_with_ordered_body_parameters(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp
) -> None:
    template = ProviderTemplate(
        name="order_shipped", language="ru", variables={"2": "42", "10": "tenth", "1": "Анна"}
    )
    message = OutboundMessage(to=TO, body="ignored for templates", template=template)
    await cloud.send(meta_account(meta), message)

    assert sent_payloads(meta) == [
        {
            **BASE,
            "type": "template",
            "template": {
                "name": "order_shipped",
                "language": {"code": "ru"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Анна"},
                            {"type": "text", "text": "42"},
                            {"type": "text", "text": "tenth"},
                        ],
                    }
                ],
            },
        }
    ]


def test_template_without_variables_has_no_components() -> None:
    template = ProviderTemplate(name="hello_world", language="en_US")
    payload = build_payload(OutboundMessage(to=TO, body="", template=template))
    assert payload["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


def test_named_template_parameters_keep_their_names() -> None:
    template = ProviderTemplate(name="t", language="en", variables={"first_name": "Ann"})
    payload = build_payload(OutboundMessage(to=TO, body="", template=template))
    assert payload["template"]["components"][0]["parameters"] == [
        {"type": "text", "parameter_name": "first_name", "text": "Ann"}
    ]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (OutboundMessage(to=TO, body="x" * 4097), "text_too_long"),
        (
            OutboundMessage(to=TO, body="x" * 1025, image_url="https://ex.com/a.jpg"),
            "text_too_long",
        ),
        (
            OutboundMessage(
                to=TO,
                body="x",
                button_url="https://ex.com",
                button_text="A label longer than twenty",
            ),
            "text_too_long",
        ),
        (OutboundMessage(to=TO, body=" "), "text_empty"),
        (OutboundMessage(to="12ab", body="x"), "invalid_phone"),
        (
            OutboundMessage(to=TO, body="x", template=ProviderTemplate(name="t")),
            "template_incomplete",
        ),
    ],
)
async def test_refused_before_calling(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp, message: OutboundMessage, code: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        await cloud.send(meta_account(meta), message)
    assert caught.value.code == code
    assert meta.requests == []


# -- Meta Cloud API: error mapping through the fake ---------------------------------------------


async def test_bad_token_is_permanent_auth(meta: FakeMetaWhatsApp, cloud: MetaWhatsApp) -> None:
    with pytest.raises(PermanentError) as caught:
        await cloud.send(meta_account(meta, "EAAexpired"), OutboundMessage(to=TO, body="Hi"))

    assert caught.value.code == "whatsapp_auth"
    assert caught.value.http_status == 401
    assert caught.value.more_info is not None
    assert "Meta error 190" in caught.value.more_info
    assert "fbtrace_id" in caught.value.more_info


@pytest.mark.parametrize("code", [130429, 131056, 80007, 4])
async def test_rate_limits_are_transient(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp, code: int
) -> None:
    meta.throttle_next(1, code=code)
    with pytest.raises(TransientError) as caught:
        await cloud.send(meta_account(meta), OutboundMessage(to=TO, body="Hi"))

    assert caught.value.code == str(code)
    assert caught.value.http_status == (429 if code == 4 else 400)
    assert caught.value.message.startswith(f"(#{code})")
    await cloud.send(meta_account(meta), OutboundMessage(to=TO, body="Hi"))


@pytest.mark.parametrize(("status", "code"), [(500, "1"), (503, "2")])
async def test_server_errors_are_transient(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp, status: int, code: str
) -> None:
    meta.fail_next(1, http_status=status)
    with pytest.raises(TransientError) as caught:
        await cloud.send(meta_account(meta), OutboundMessage(to=TO, body="Hi"))
    assert caught.value.code == code


async def test_outside_window_refused_synchronously(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp
) -> None:
    meta.outside_window(TO, synchronous=True)
    with pytest.raises(PermanentError) as caught:
        await cloud.send(meta_account(meta), OutboundMessage(to=TO, body="Hi"))

    assert caught.value.code == "whatsapp_outside_window"
    assert caught.value.more_info is not None and "24 hours" in caught.value.more_info
    # A template is what may be sent outside the window.
    template = ProviderTemplate(name="hello_world", language="en_US")
    await cloud.send(meta_account(meta), OutboundMessage(to=TO, body="", template=template))


async def test_unknown_phone_number_id_is_permanent(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp
) -> None:
    acc = meta_account(meta)
    wrong = SenderAccount(
        acc.id, acc.provider, acc.from_address, "999", acc.credentials, acc.base_url
    )
    with pytest.raises(PermanentError) as caught:
        await cloud.send(wrong, OutboundMessage(to=TO, body="Hi"))
    assert caught.value.code == "100"


async def test_fake_rejects_bad_shapes_with_code_100(meta: FakeMetaWhatsApp) -> None:
    async with httpx.AsyncClient(
        base_url=meta.base_url,
        headers={"Authorization": f"Bearer {meta.access_token}"},
        trust_env=False,
    ) as client:
        response = await client.post(
            f"/{meta.phone_number_id}/messages",
            json={**BASE, "type": "interactive", "interactive": {"type": "cta_url"}},
        )
    assert response.status_code == 400
    error = error_from_response(response)
    assert isinstance(error, PermanentError) and error.code == "100"
    assert error.more_info is not None and "interactive.body.text" in error.more_info


def graph_error(status: int, code: int | None, **extra: Any) -> httpx.Response:
    error: dict[str, Any] = {"message": f"(#{code}) test", "type": "OAuthException"}
    if code is not None:
        error["code"] = code
    error.update(extra)
    return httpx.Response(status, json={"error": error})


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (graph_error(401, 190), PermanentError, "whatsapp_auth"),
        (graph_error(401, 0), PermanentError, "whatsapp_auth"),
        (graph_error(400, 190), PermanentError, "whatsapp_auth"),
        (graph_error(400, 130429), TransientError, "130429"),
        (graph_error(400, 131056), TransientError, "131056"),
        (graph_error(400, 80007), TransientError, "80007"),
        (graph_error(429, 4), TransientError, "4"),
        (graph_error(400, 131047), PermanentError, "whatsapp_outside_window"),
        (graph_error(400, 131026), PermanentError, "131026"),
        (graph_error(400, 131030), PermanentError, "131030"),
        (graph_error(400, 100, error_subcode=2494010), PermanentError, "100"),
        (graph_error(500, 1), TransientError, "1"),
        (graph_error(503, 2), TransientError, "2"),
        (httpx.Response(502, text="Bad Gateway"), TransientError, "http_502"),
        (httpx.Response(429, text=""), TransientError, "http_429"),
    ],
)
def test_error_mapping(response: httpx.Response, kind: type[ProviderError], code: str) -> None:
    error = error_from_response(response)
    assert type(error) is kind
    assert error.code == code


def test_error_keeps_details_and_trace_id() -> None:
    response = graph_error(
        400,
        131026,
        error_data={"messaging_product": "whatsapp", "details": "Receiver is incapable"},
        fbtrace_id="AbC123",
    )
    error = error_from_response(response)
    assert error.message == "(#131026) test"
    assert (
        error.more_info == "Meta error 131026; details: Receiver is incapable; fbtrace_id: AbC123"
    )


# -- Meta Cloud API: webhooks -------------------------------------------------------------------


async def wait_hits(receiver: Receiver, n: int, timeout: float = 10.0) -> list[Hit]:
    for _ in range(int(timeout / 0.02)):
        if len(receiver.hits) >= n:
            return list(receiver.hits)
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{len(receiver.hits)} of {n} webhooks arrived")


def verified_payload(fake: FakeMetaWhatsApp, hit: Hit) -> dict[str, Any]:
    assert verify_signature(fake.app_secret, hit.body, hit.headers["X-Hub-Signature-256"])
    payload: dict[str, Any] = json.loads(hit.body)
    return payload


@pytest.mark.parametrize("read_receipts", [False, True])
async def test_signed_status_webhooks_parse_in_order(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp, receiver: Receiver, read_receipts: bool
) -> None:
    meta.read_receipts = read_receipts
    before = datetime.now(UTC) - timedelta(seconds=1)
    receipt = await cloud.send(meta_account(meta), OutboundMessage(to=TO, body="Hi"))
    expected = ["sent", "delivered", *(["read"] if read_receipts else [])]
    hits = await wait_hits(receiver, len(expected))

    statuses = [s for hit in hits for s in parse_statuses(verified_payload(meta, hit))]
    assert [s.status for s in statuses] == expected
    assert {s.wamid for s in statuses} == {receipt.provider_message_id}
    assert all(s.recipient_id == WA_ID and s.error_code is None for s in statuses)
    assert all(s.phone_number_id == meta.phone_number_id for s in statuses)
    assert all(before <= s.timestamp <= datetime.now(UTC) + timedelta(seconds=1) for s in statuses)
    assert all(STATUS_MAP[s.status] == s.status for s in statuses)
    assert all(hit.path == "/webhooks/meta" for hit in hits)


async def test_outside_window_fails_later_with_errors(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp, receiver: Receiver
) -> None:
    meta.outside_window(TO)
    receipt = await cloud.send(meta_account(meta), OutboundMessage(to=TO, body="Hi"))
    [hit] = await wait_hits(receiver, 1)

    [status] = parse_statuses(verified_payload(meta, hit))
    assert status.wamid == receipt.provider_message_id
    assert status.status == "failed"
    assert status.error_code == 131047
    assert status.error_title == "Re-engagement message"
    assert status.error_details is not None and "24 hours" in status.error_details


async def test_inbound_message_reopens_the_window(
    meta: FakeMetaWhatsApp, cloud: MetaWhatsApp, receiver: Receiver
) -> None:
    meta.outside_window(TO, synchronous=True)
    record = await asyncio.to_thread(meta.send_inbound, WA_ID, "Где мой заказ?")

    assert record.status_code == 200
    [hit] = receiver.hits
    payload = verified_payload(meta, hit)
    assert parse_statuses(payload) == []
    [inbound] = parse_inbound(payload)
    assert (inbound.wa_id, inbound.text, inbound.kind) == (WA_ID, "Где мой заказ?", "text")
    assert inbound.wamid is not None and inbound.wamid.startswith("wamid.")
    assert abs((datetime.now(UTC) - inbound.timestamp).total_seconds()) < 5
    assert inbound.phone_number_id == meta.phone_number_id
    # Free text goes through again.
    await cloud.send(meta_account(meta), OutboundMessage(to=TO, body="On its way"))


def test_signature_verification() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    good = signature_for("app-secret", body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert verify_signature("app-secret", body, good)
    assert verify_signature("app-secret", body, good.upper().replace("SHA256=", "sha256="))
    assert not verify_signature("app-secret", body + b" ", good)
    assert not verify_signature("other-secret", body, good)
    assert not verify_signature("app-secret", body, None)
    assert not verify_signature("app-secret", body, "")
    assert not verify_signature("app-secret", body, good.replace("sha256=", "sha1="))
    assert not verify_signature("app-secret", body, good.removeprefix("sha256="))
    assert not verify_signature("", body, signature_for("", body))


def test_subscription_challenge() -> None:
    assert (
        verify_subscription("subscribe", VERIFY_TOKEN, "1158201444", VERIFY_TOKEN) == "1158201444"
    )
    assert verify_subscription("subscribe", "wrong", "1158201444", VERIFY_TOKEN) is None
    assert verify_subscription("unsubscribe", VERIFY_TOKEN, "1158201444", VERIFY_TOKEN) is None
    assert verify_subscription("subscribe", VERIFY_TOKEN, None, VERIFY_TOKEN) is None
    assert verify_subscription(None, None, None, VERIFY_TOKEN) is None
    assert verify_subscription("subscribe", "", "1", "") is None


def test_parsers_skip_what_they_do_not_understand() -> None:
    payload: dict[str, Any] = {
        "object": "whatsapp_business_account",
        "entry": [
            "junk",
            {"changes": [{"field": "account_update", "value": {"statuses": [{"id": "x"}]}}]},
            {
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "statuses": [
                                {"id": "wamid.A", "status": "deleted", "timestamp": "1"},
                                {"status": "sent", "timestamp": "1"},
                                {"id": "wamid.B", "status": "sent", "timestamp": "soon"},
                                {
                                    "id": "wamid.C",
                                    "status": "failed",
                                    "timestamp": "1733170072",
                                    "recipient_id": "9188",
                                    "errors": [{"code": 131026, "title": "Message undeliverable"}],
                                },
                            ],
                            "messages": [
                                {"from": "9188", "timestamp": "1733170000", "type": "image",
                                 "image": {"caption": "look"}},
                                {"from": "9188", "timestamp": "1733170001", "type": "interactive",
                                 "interactive": {"button_reply": {"id": "b1", "title": "Yes"}}},
                                {"timestamp": "1733170002", "type": "text"},
                            ],
                        },
                    }
                ]
            },
        ],
    }  # fmt: skip
    [status] = parse_statuses(payload)
    assert (status.wamid, status.status, status.error_code) == ("wamid.C", "failed", 131026)
    assert status.error_title == "Message undeliverable"
    assert status.timestamp == datetime(2024, 12, 2, 20, 7, 52, tzinfo=UTC)
    assert [(m.kind, m.text) for m in parse_inbound(payload)] == [
        ("image", "look"),
        ("interactive", "Yes"),
    ]
    assert parse_statuses({}) == [] and parse_inbound({"entry": "nope"}) == []


async def test_find_sent_cannot_ask_meta(meta: FakeMetaWhatsApp, cloud: MetaWhatsApp) -> None:
    message = OutboundMessage(to=TO, body="Hi")
    assert await cloud.find_sent(meta_account(meta), message, datetime.now(UTC)) == []


# -- WhatsApp through Twilio --------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def twilio(module_twilio: FakeTwilio, receiver: Receiver) -> FakeTwilio:
    module_twilio.reset()
    receiver.hits.clear()
    return module_twilio


@pytest.fixture
async def via_twilio() -> AsyncIterator[TwilioWhatsApp]:
    adapter = TwilioWhatsApp(provider_http_client(timeout=5.0, urls=LOOPBACK_POLICY))
    yield adapter
    await adapter.aclose()


def twilio_account(fake: FakeTwilio) -> SenderAccount:
    return SenderAccount(
        id="sender-twa",
        provider="twilio-whatsapp",
        from_address="+14155238886",
        account_id=fake.account_sid,
        credentials={"authToken": fake.auth_token},
        base_url=fake.base_url,
    )


def params(fake: FakeTwilio, index: int = 0) -> dict[str, list[str]]:
    return fake.requests[index].params


async def test_twilio_free_text_with_image(twilio: FakeTwilio, via_twilio: TwilioWhatsApp) -> None:
    message = OutboundMessage(
        to=TO, body="New arrivals", image_url="https://cdn.ex.com/a.jpg", validity_seconds=600
    )
    receipt = await via_twilio.send(twilio_account(twilio), message)

    assert params(twilio) == {
        "To": [f"whatsapp:{TO}"],
        "From": ["whatsapp:+14155238886"],
        "Body": ["New arrivals"],
        "MediaUrl": ["https://cdn.ex.com/a.jpg"],
        "ValidityPeriod": ["600"],
    }
    assert receipt.provider_message_id.startswith("MM")
    assert receipt.provider_status == "queued"


async def test_twilio_template_sends_content_sid_and_no_body(
    twilio: FakeTwilio, via_twilio: TwilioWhatsApp
) -> None:
    template = ProviderTemplate(
        content_sid="HX" + "b" * 32, variables={"1": "Анна", "2": "12/1", "3": "3pm"}
    )
    message = OutboundMessage(
        to=f"whatsapp:{TO}", body="fallback text", image_url="https://x/a.jpg", template=template
    )
    await via_twilio.send(twilio_account(twilio), message)

    sent = params(twilio)
    assert set(sent) == {"To", "From", "ContentSid", "ContentVariables"}
    assert sent["To"] == [f"whatsapp:{TO}"]
    assert sent["ContentSid"] == ["HX" + "b" * 32]
    assert json.loads(sent["ContentVariables"][0]) == {"1": "Анна", "2": "12/1", "3": "3pm"}
    assert twilio.requests[0].response_status == 201


async def test_twilio_template_needs_a_content_sid(
    twilio: FakeTwilio, via_twilio: TwilioWhatsApp
) -> None:
    template = ProviderTemplate(name="hello_world", language="en")
    with pytest.raises(PermanentError) as caught:
        await via_twilio.send(
            twilio_account(twilio), OutboundMessage(to=TO, body="", template=template)
        )
    assert caught.value.code == "template_incomplete"
    assert twilio.requests == []


async def test_twilio_button_link_goes_into_the_body(
    twilio: FakeTwilio, via_twilio: TwilioWhatsApp
) -> None:
    message = OutboundMessage(
        to=TO, body="Shipped", button_url="https://ex.com/t", button_text="Track"
    )
    await via_twilio.send(twilio_account(twilio), message)
    assert params(twilio)["Body"] == ["Shipped\n\nTrack: https://ex.com/t"]


async def test_twilio_read_receipts_arrive_on_the_status_callback(
    twilio: FakeTwilio, via_twilio: TwilioWhatsApp, receiver: Receiver
) -> None:
    twilio.set_outcome(f"whatsapp:{TO}", "read")
    message = OutboundMessage(to=TO, body="Hi", status_callback=f"{receiver.url}/twilio/status")
    receipt = await via_twilio.send(twilio_account(twilio), message)
    await asyncio.to_thread(twilio.wait_for_callbacks, 3)

    callbacks = [{k: v[0] for k, v in parse_qs(h.body.decode()).items()} for h in receiver.hits]
    assert [c["MessageStatus"] for c in callbacks] == ["sent", "delivered", "read"]
    assert {c["MessageSid"] for c in callbacks} == {receipt.provider_message_id}
    assert all(c["ChannelPrefix"] == "whatsapp" for c in callbacks)
    assert callbacks[-1]["EventType"] == "READ"
    assert [STATUS_MAP[c["MessageStatus"]] for c in callbacks] == ["sent", "delivered", "read"]


async def test_twilio_find_sent_lists_by_whatsapp_addresses(
    twilio: FakeTwilio, via_twilio: TwilioWhatsApp
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    account = twilio_account(twilio)
    text = OutboundMessage(to=TO, body="Hi", button_url="https://ex.com")
    template = OutboundMessage(
        to=TO, body="", template=ProviderTemplate(content_sid="HX" + "c" * 32)
    )
    sent_text = await via_twilio.send(account, text)
    sent_template = await via_twilio.send(account, template)

    found_text = await via_twilio.find_sent(account, text, since)
    assert sent_text.provider_message_id in {r.provider_message_id for r in found_text}
    assert sent_template.provider_message_id not in {r.provider_message_id for r in found_text}
    found_template = await via_twilio.find_sent(account, template, since)
    assert sent_template.provider_message_id in {r.provider_message_id for r in found_template}


@pytest.mark.parametrize(
    ("to", "kind", "code"),
    [("+15005550009", PermanentError, "21614"), ("+15005550004", PermanentError, "21610")],
)
async def test_twilio_errors_map_like_sms(
    twilio: FakeTwilio,
    via_twilio: TwilioWhatsApp,
    to: str,
    kind: type[ProviderError],
    code: str,
) -> None:
    with pytest.raises(ProviderError) as caught:
        await via_twilio.send(twilio_account(twilio), OutboundMessage(to=to, body="Hi"))
    assert type(caught.value) is kind
    assert caught.value.code == code


async def test_twilio_throttling_is_transient_with_retry_after(
    twilio: FakeTwilio, via_twilio: TwilioWhatsApp
) -> None:
    twilio.fail_next(1, http_status=429, code=20429, retry_after=3)
    with pytest.raises(TransientError) as caught:
        await via_twilio.send(twilio_account(twilio), OutboundMessage(to=TO, body="Hi"))
    assert caught.value.code == "20429"
    assert caught.value.retry_after == 3.0


async def test_fake_twilio_checks_content_variables(twilio: FakeTwilio) -> None:
    async with httpx.AsyncClient(
        base_url=twilio.base_url, auth=(twilio.account_sid, twilio.auth_token), trust_env=False
    ) as client:
        response = await client.post(
            f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json",
            data={
                "To": f"whatsapp:{TO}",
                "From": "whatsapp:+14155238886",
                "ContentSid": "HX" + "d" * 32,
                "ContentVariables": "not json",
            },
        )
    assert response.status_code == 400
    assert response.json()["code"] == 21656
