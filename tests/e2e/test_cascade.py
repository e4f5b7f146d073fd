"""The channel cascade, end to end over real sockets: the fakes prove who was contacted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from herald.clock import ManualClock
from herald.config import Settings
from tests.e2e.helpers import add_twilio_sender, wait_status
from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio, twilio_signature
from tests.servers import RunningHerald, callback_receiver, running_herald

PHONE, EMAIL, CHAT = "+14155552671", "ann@example.com", "12345"
Fakes = tuple[FakeTwilio, FakeSmtp, FakeTelegram]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with FakeTwilio() as twilio, FakeSmtp() as smtp, FakeTelegram() as telegram:
        yield twilio, smtp, telegram


async def add_senders(client: httpx.AsyncClient, fakes: Fakes) -> None:
    twilio, smtp, telegram = fakes
    await add_twilio_sender(client, twilio)
    for body in (
        {
            "channel": "email",
            "provider": "smtp",
            "from": "noreply@herald.example",
            "baseUrl": smtp.base_url,
        },
        {
            "channel": "telegram",
            "provider": "telegram",
            "from": "@herald_bot",
            "botToken": telegram.token,
            "baseUrl": telegram.base_url,
        },
    ):
        response = await client.post("/api/v1/senders", json=body)
        assert response.status_code == 201, response.text


@pytest.fixture
async def client(herald: RunningHerald, fakes: Fakes) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        await add_senders(c, fakes)
        yield c


def cascade(**channel_extra: dict[str, Any]) -> dict[str, Any]:
    channels: dict[str, Any] = {
        "sms": {"text": "Your parcel arrives today"},
        "email": {"text": "Your parcel arrives today", "subject": "Parcel"},
        "telegram": {"text": "Your parcel arrives today"},
    }
    for key, extra in channel_extra.items():
        channels[key] = {**channels[key], **extra}
    return {
        "messages": [
            {
                "destinations": [{"phone": PHONE, "email": EMAIL, "messengerUserId": CHAT}],
                "channels": channels,
            }
        ]
    }


def by_channel(message: dict[str, Any]) -> dict[str, str]:
    return {d["channel"]: d["status"] for d in message["deliveries"]}


async def wait_deliveries(
    client: httpx.AsyncClient, message_id: str, wanted: dict[str, str]
) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            message = (await client.get(f"/api/v1/messages/{message_id}")).json()
            if by_channel(message) == wanted:
                return message
            await asyncio.sleep(0.05)


async def test_undelivered_sms_moves_on_to_email_and_telegram_is_never_contacted(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    twilio, smtp, telegram = fakes
    twilio.set_outcome(PHONE, "undelivered", 30003)
    response = await client.post("/api/v1/messages", json=cascade())
    assert response.status_code == 201, response.text
    message_id = response.json()[0]["id"]
    message = await wait_deliveries(
        client, message_id, {"sms": "undelivered", "email": "delivered", "telegram": "skipped"}
    )
    assert message["status"] == "delivered"
    assert len(twilio.requests) == 1
    assert len(smtp.messages) == 1 and smtp.messages[0].rcpt_tos == (EMAIL,)
    assert telegram.requests == []
    reasons = [e["detail"] for e in message["history"] if e["source"] == "cascade"]
    assert any(
        "sms ended undelivered" in r and "30003" in r and "trying email" in r for r in reasons
    ), reasons
    assert message["provider"]["name"] == "smtp"  # the channel that delivered speaks
    # TWIN's SDK reads a message through the list: the same channel speaks there.
    [item] = (await client.get("/api/v1/messages", params={"id": message_id})).json()["items"]
    assert (item["channel"], item["error"], item["provider"]["name"]) == ("email", None, "smtp")
    assert [e["status"] for e in item["history"]] == [e["status"] for e in message["history"]]
    for channel, found in [("email", 1), ("sms", 1), ("telegram", 0)]:
        listed = (await client.get("/api/v1/messages", params={"channel": channel})).json()
        assert listed["count"] == found, channel
    sms = message["deliveries"][0]
    assert sms["error"]["code"] == "30003" and sms["attempts"][0]["state"] == "accepted"


async def test_callbacks_tell_the_message_status_not_a_channel_that_failed_on_the_way(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    twilio, _smtp, _telegram = fakes
    twilio.set_outcome(PHONE, "undelivered", 30003)
    async with callback_receiver() as receiver:
        body = cascade()
        body["messages"][0]["callbackUrl"] = receiver.url
        message_id = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
        await receiver.wait_for(lambda b: b["status"] == "delivered")
    told = [c.json for c in receiver.received]
    # A TWIN client reading 'undelivered' (code 7) would take it as final: it is not.
    assert [t["status"] for t in told] == ["sending", "sent", "queued", "sending", "delivered"]
    assert [t["sequence"] for t in told] == [1, 2, 3, 4, 5]
    assert [t["previousStatus"] for t in told[1:]] == [t["status"] for t in told[:-1]]
    moved_on = told[2]
    assert (moved_on["channel"], moved_on["channelStatus"]) == ("sms", "undelivered")
    assert moved_on["statusCode"] == 1 and moved_on["error"]["code"] == "30003"
    assert (told[-1]["channel"], told[-1]["channelStatus"]) == ("email", "delivered")
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert told[-1]["status"] == message["status"]


async def test_delivered_on_the_first_channel_contacts_no_other(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    _twilio, smtp, telegram = fakes
    message_id = (await client.post("/api/v1/messages", json=cascade())).json()[0]["id"]
    message = await wait_deliveries(
        client, message_id, {"sms": "delivered", "email": "skipped", "telegram": "skipped"}
    )
    await asyncio.sleep(0.3)  # give a wrongly woken channel the time to go out
    assert smtp.messages == [] and telegram.requests == []
    assert message["status"] == "delivered"


async def test_required_channel_goes_out_regardless(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    _twilio, smtp, telegram = fakes
    body = cascade(telegram={"required": True})
    message_id = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
    await wait_deliveries(
        client, message_id, {"sms": "delivered", "email": "skipped", "telegram": "delivered"}
    )
    assert smtp.messages == []
    assert len(telegram.requests) == 1
    assert telegram.requests[0].payload["chat_id"] in (CHAT, int(CHAT))


async def test_destination_only_gets_channels_it_has_an_address_for(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    twilio, _smtp, _telegram = fakes
    body = cascade()
    body["messages"][0]["destinations"] = [{"email": EMAIL}]
    message_id = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
    message = await wait_deliveries(client, message_id, {"email": "delivered"})
    assert twilio.requests == [] and message["destination"] == {"email": EMAIL}
    nothing = cascade()
    nothing["messages"][0]["destinations"] = [{"pushRegistrationId": "x"}]
    refused = await client.post("/api/v1/messages", json=nothing)
    assert refused.status_code == 422


async def test_no_report_within_validity_moves_on(settings: Settings, fakes: Fakes) -> None:
    twilio, smtp, telegram = fakes
    twilio.set_outcome(PHONE, "sent")  # a carrier that never reports delivery
    clock = ManualClock(datetime.now(UTC))
    async with running_herald(settings, clock=clock) as herald, herald.client() as client:
        await add_senders(client, fakes)
        body = cascade(sms={"validityPeriod": 10})
        message_id = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
        await wait_status(client, message_id, {"sent"})
        assert smtp.messages == []
        clock.advance(10 * 60 + 1)
        message = await wait_deliveries(
            client, message_id, {"sms": "expired", "email": "delivered", "telegram": "skipped"}
        )
        reasons = [e["detail"] for e in message["history"] if e["source"] == "cascade"]
        assert any("no delivery report within its validity (10 min)" in r for r in reasons)
        # The carrier's report turns up after all: recorded, nothing re-triggered.
        request = twilio.requests[0]
        url = request.params["StatusCallback"][0].partition("#")[0]  # as Twilio signs it
        params = {
            "MessageSid": request.sid or "",
            "MessageStatus": "delivered",
            "AccountSid": twilio.account_sid,
            "To": PHONE,
            "From": "+15005550006",
        }
        async with httpx.AsyncClient() as http:
            late = await http.post(
                url,
                data=params,
                headers={"X-Twilio-Signature": twilio_signature(url, params, twilio.auth_token)},
            )
        assert late.status_code == 200
        after = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert by_channel(after) == {"sms": "expired", "email": "delivered", "telegram": "skipped"}
    assert any(
        (e["detail"] or "").startswith("late report, not applied: Twilio delivered")
        and e["channel"] == "sms"
        for e in after["history"]
    )
    assert len(smtp.messages) == 1 and telegram.requests == []


async def test_cancel_covers_every_channel(settings: Settings, fakes: Fakes) -> None:
    async with running_herald(settings, run_workers=False) as idle, idle.client() as client:
        await add_senders(client, fakes)
        message_id = (await client.post("/api/v1/messages", json=cascade())).json()[0]["id"]
        cancelled = await client.delete(f"/api/v1/messages/{message_id}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        message = (await client.get(f"/api/v1/messages/{message_id}")).json()
        assert set(by_channel(message).values()) == {"cancelled"}


async def report_from_twilio(twilio: FakeTwilio, to: str, status: str, code: str = "") -> None:
    """Twilio's status callback for the message sent to ``to``, signed as Twilio signs it."""
    [request] = [r for r in twilio.requests if r.params["To"][0] == to]
    url = request.params["StatusCallback"][0].partition("#")[0]
    params = {
        "MessageSid": request.sid or "",
        "MessageStatus": status,
        "AccountSid": twilio.account_sid,
        "To": to,
        "From": "+15005550006",
        **({"ErrorCode": code} if code else {}),
    }
    async with httpx.AsyncClient() as http:
        response = await http.post(
            url,
            data=params,
            headers={"X-Twilio-Signature": twilio_signature(url, params, twilio.auth_token)},
        )
    assert response.status_code == 200, response.text


async def test_cancel_mid_cascade_stops_the_channels_not_yet_with_a_provider(
    settings: Settings, fakes: Fakes
) -> None:
    """Issue 18: the SMS is with Twilio; cancel stops the e-mail and Telegram fallbacks, the SMS
    keeps its reports, and the message ends cancelled unless the SMS is delivered."""
    twilio, smtp, telegram = fakes
    later = "+14155552672"
    for phone in (PHONE, later):
        twilio.set_outcome(phone, "sent")  # the reports come when the test says
    clock = ManualClock(datetime.now(UTC))
    async with running_herald(settings, clock=clock) as herald, herald.client() as client:
        await add_senders(client, fakes)
        body = cascade(sms={"validityPeriod": 10})
        body["messages"][0]["destinations"].append({"phone": later, "email": "bo@example.com"})
        first, second = [r["id"] for r in (await client.post("/api/v1/messages", json=body)).json()]
        for message_id in (first, second):
            await wait_status(client, message_id, {"sent"})
            response = await client.delete(f"/api/v1/messages/{message_id}")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "sent"  # its SMS is still with Twilio
        message = (await client.get(f"/api/v1/messages/{first}")).json()
        assert by_channel(message) == {"sms": "sent", "email": "cancelled", "telegram": "cancelled"}
        assert message["status"] == "sent"

        await report_from_twilio(twilio, PHONE, "undelivered", "30003")
        await report_from_twilio(twilio, later, "delivered")
        ended = await wait_status(client, first, {"cancelled"})
        assert by_channel(ended) == {
            "sms": "undelivered",
            "email": "cancelled",
            "telegram": "cancelled",
        }
        delivered = await wait_status(client, second, {"delivered"})
        assert by_channel(delivered)["sms"] == "delivered"
        clock.advance(10 * 60 + 1)  # past the SMS's validity: nothing moves on either
        await asyncio.sleep(0.3)
        for message_id in (first, second):
            again = await client.delete(f"/api/v1/messages/{message_id}")
            assert again.status_code == 409 and again.json()["code"] == "not_cancellable"
        assert (await client.get(f"/api/v1/messages/{first}")).json()["status"] == "cancelled"
    assert smtp.messages == [] and telegram.requests == []
    assert len(twilio.requests) == 2


async def test_group_is_delivered_when_any_member_is(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    twilio, _smtp, _telegram = fakes
    twilio.set_outcome("+14155552672", "undelivered", 30005)  # an old phone, switched off
    twilio.set_outcome("+14155552673", "sent")  # a carrier that never reports
    body = {
        "messages": [
            {
                "groupId": "ann-devices",
                "channels": {"sms": {"text": "Code 1"}},
                "destinations": [
                    {"phone": "+14155552672"},
                    {"phone": "+14155552673"},
                    {"phone": PHONE},
                ],
            }
        ]
    }
    ids = [r["id"] for r in (await client.post("/api/v1/messages", json=body)).json()]
    await wait_status(client, ids[0])
    await wait_status(client, ids[1], {"sent"})
    await wait_status(client, ids[2], {"delivered"})
    group = (await client.get("/api/v1/groups/ann-devices")).json()
    assert group["status"] == "delivered"
    assert group["deliveredMessageId"] == ids[2]
    assert sorted(m["status"] for m in group["messages"]) == ["delivered", "sent", "undelivered"]
    missing = await client.get("/api/v1/groups/nobody")
    assert missing.status_code == 404 and missing.json()["code"] == "group_not_found"


def two_devices(**message: Any) -> dict[str, Any]:
    """One message to two of a person's devices, each with an e-mail fallback."""
    return {
        "messages": [
            {
                **message,
                "channels": {
                    "sms": {"text": "Your parcel arrives today"},
                    "email": {"text": "Your parcel arrives today", "subject": "Parcel"},
                },
                "destinations": [
                    {"phone": PHONE, "email": EMAIL},
                    {"phone": "+14155552673", "email": "ann@work.example"},
                ],
            }
        ]
    }


async def test_delivered_on_one_device_skips_the_fallbacks_of_the_others(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    twilio, smtp, _telegram = fakes
    twilio.set_outcome("+14155552673", "sent")  # no report yet from the second phone
    ids = [
        r["id"]
        for r in (await client.post("/api/v1/messages", json=two_devices(groupId="ann"))).json()
    ]
    await wait_deliveries(client, ids[0], {"sms": "delivered", "email": "skipped"})
    other = await wait_deliveries(client, ids[1], {"sms": "sent", "email": "skipped"})
    [skipped] = [e for e in other["history"] if e["status"] == "skipped"]
    assert skipped["channel"] == "email" and skipped["source"] == "group"
    assert skipped["detail"].startswith("delivered_in_group")
    # The second phone's SMS, already with Twilio, still takes its report; the cascade has
    # nothing left to move on to.
    assert other["status"] == "sent"
    await asyncio.sleep(0.3)  # give a wrongly woken e-mail the time to go out
    assert smtp.messages == []


async def test_telegram_blocked_is_remembered_and_skipped_next_time(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    _twilio, smtp, telegram = fakes
    telegram.block_chat(CHAT)
    body = {
        "messages": [
            {
                "destinations": [{"email": EMAIL, "messengerUserId": CHAT}],
                "channels": {"telegram": {"text": "Hi"}, "email": {"text": "Hi"}},
            }
        ]
    }
    first = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
    message = await wait_deliveries(client, first, {"telegram": "failed", "email": "delivered"})
    assert message["deliveries"][0]["error"]["code"] == "telegram_blocked"
    assert len(telegram.requests) == 1
    second = (await client.post("/api/v1/messages", json=body)).json()[0]["id"]
    message = await wait_deliveries(client, second, {"telegram": "failed", "email": "delivered"})
    assert message["deliveries"][0]["error"]["code"] == "recipient_opted_out"
    assert len(telegram.requests) == 1  # not asked again
    assert len(smtp.messages) == 2


async def test_a_fallback_already_queued_is_skipped_when_another_device_is_delivered(
    herald: RunningHerald, fakes: Fakes
) -> None:
    """The cascade has reached the second device's e-mail, held back by the e-mail sender's
    rate limit; the first phone's delivery report cancels it before it goes out."""
    twilio, smtp, _telegram = fakes
    twilio.set_outcome(PHONE, "sent")  # its report comes when the test says
    twilio.set_outcome("+14155552673", "undelivered", 30005)
    async with herald.client() as client:
        await add_senders(client, fakes)
        slow = {
            "channel": "email",
            "provider": "smtp",
            "from": "slow@herald.example",
            "baseUrl": smtp.base_url,
            "rateLimit": 0.001,  # one e-mail in 1000 s
            "default": True,
        }
        response = await client.post("/api/v1/senders", json=slow)
        assert response.status_code == 201, response.text
        first = {
            "messages": [
                {
                    "destinations": [{"email": "bo@example.com"}],
                    "channels": {"email": {"text": "Hi"}},
                }
            ]
        }
        earlier = (await client.post("/api/v1/messages", json=first)).json()[0]["id"]
        await wait_status(client, earlier, {"delivered"})  # it takes the sender's slot

        body = two_devices(groupId="ann")
        ids = [r["id"] for r in (await client.post("/api/v1/messages", json=body)).json()]
        await wait_deliveries(client, ids[0], {"sms": "sent", "email": "pending"})
        await wait_deliveries(client, ids[1], {"sms": "undelivered", "email": "queued"})
        await asyncio.sleep(0.3)  # the dispatcher claims it and puts it off to the next slot
        assert by_channel((await client.get(f"/api/v1/messages/{ids[1]}")).json())["email"] == (
            "queued"
        )

        await report_from_twilio(twilio, PHONE, "delivered")
        await wait_deliveries(client, ids[0], {"sms": "delivered", "email": "skipped"})
        other = await wait_deliveries(client, ids[1], {"sms": "undelivered", "email": "skipped"})
    [skipped] = [e for e in other["history"] if e["status"] == "skipped"]
    assert skipped["source"] == "group"
    assert skipped["detail"].startswith("delivered_in_group: delivered on sms")
    assert [m.rcpt_tos for m in smtp.messages] == [("bo@example.com",)]


async def test_a_fallback_due_after_the_group_was_delivered_is_never_sent(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    """Another device of the person, sent to after one was delivered: its first channel goes
    out, but when that fails the dispatcher skips the fallbacks instead of sending them."""
    twilio, smtp, telegram = fakes
    twilio.set_outcome("+14155552673", "undelivered", 30005)
    one = {
        "messages": [
            {
                "groupId": "ann",
                "destinations": [{"phone": PHONE}],
                "channels": {"sms": {"text": "Your parcel arrives today"}},
            }
        ]
    }
    first = (await client.post("/api/v1/messages", json=one)).json()[0]["id"]
    await wait_status(client, first, {"delivered"})

    later = two_devices(groupId="ann")
    later["messages"][0]["destinations"] = [
        {"phone": "+14155552673", "email": "ann@work.example", "messengerUserId": CHAT}
    ]
    later["messages"][0]["channels"]["telegram"] = {"text": "Your parcel arrives today"}
    second = (await client.post("/api/v1/messages", json=later)).json()[0]["id"]
    message = await wait_deliveries(
        client, second, {"sms": "undelivered", "email": "skipped", "telegram": "skipped"}
    )
    skipped = [e for e in message["history"] if e["status"] == "skipped"]
    assert sorted(e["channel"] for e in skipped) == ["email", "telegram"]
    for event in skipped:
        assert event["source"] == "group"
        assert event["detail"] == f"delivered_in_group: delivered on sms to message {first}"
    assert message["status"] == "undelivered"
    await asyncio.sleep(0.3)  # give a wrongly sent fallback the time to arrive
    assert smtp.messages == [] and telegram.requests == []
