"""API → dispatcher → fake Twilio (real HTTP) → signed status callbacks → client callbacks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.helpers import add_twilio_sender, send_sms, statuses, wait_status
from tests.fakes.twilio import FakeTwilio, twilio_signature
from tests.servers import RunningHerald, callback_receiver, free_port, running_herald


@pytest.fixture
async def client(herald: RunningHerald, fake: FakeTwilio) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        await add_twilio_sender(c, fake)
        yield c


async def test_delivered_end_to_end_with_signed_client_callbacks(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    async with callback_receiver() as receiver:
        message_id = await send_sms(
            client,
            "+14155552671",
            "Your code is 1234",
            callbackUrl=receiver.url,
            callbackData="order-77",
        )
        message = await wait_status(client, message_id, {"delivered"})
        callbacks = await receiver.wait_for(lambda b: b["status"] == "delivered")

    # What Twilio saw: exactly the real API's form fields, with Basic auth.
    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request.response_status == 201
    assert request.params["To"] == ["+14155552671"]
    assert request.params["From"] == ["+15005550006"]
    assert request.params["Body"] == ["Your code is 1234"]
    status_callback = request.params["StatusCallback"][0]
    assert status_callback.startswith(f"{herald.url}/webhooks/twilio/status/")
    # Twilio is asked to retry a callback Herald answered 5xx or too slowly, not only one
    # it could not connect for.
    assert status_callback.endswith("#rc=3&rp=ct,rt,5xx")

    # What the message view shows.
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["provider"]["messageId"])
    assert message["provider"]["messageId"] == request.sid
    assert message["provider"]["numSegments"] == 1
    assert message["partCount"] == 1
    assert message["provider"]["name"] == "twilio"
    assert statuses(message) == ["queued", "sending", "sent", "delivered"]
    assert [e["source"] for e in message["history"]] == [
        "api",
        "dispatcher",
        "twilio-callback",
        "twilio-callback",
    ]
    assert message["sentAt"] and message["deliveredAt"]
    assert message["attempts"][0]["state"] == "accepted"
    assert message["error"] is None

    # The client's callback: signed with the project's secret, callbackData echoed.
    delivered = callbacks[0]
    assert delivered.json["id"] == message_id
    assert delivered.json["callbackData"] == "order-77"
    assert delivered.json["provider"]["messageId"] == request.sid
    t, v1 = delivered.headers["x-herald-signature"].split(",")
    expected = hmac.new(
        herald.project.webhook_secret.encode(),
        t[2:].encode() + b"." + delivered.body,
        hashlib.sha256,
    ).hexdigest()
    assert v1 == f"v1={expected}"
    seen = [c.json["status"] for c in receiver.received]
    assert seen == ["sending", "sent", "delivered"]


async def test_twilio_error_keeps_code_message_and_more_info(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    message_id = await send_sms(client, "+15005550001", "hi")
    message = await wait_status(client, message_id)
    assert message["status"] == "failed"
    assert message["error"]["code"] == "21211"
    assert "not a valid phone number" in message["error"]["message"]
    assert message["error"]["moreInfo"] == "https://www.twilio.com/docs/errors/21211"
    assert len(message["attempts"]) == 1  # permanent: never retried
    assert len(fake.requests) == 1


async def test_server_errors_and_throttling_are_retried(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    fake.fail_next(1, http_status=500)
    fake.fail_next(1, http_status=429, code=20429, retry_after=0.2)
    message_id = await send_sms(client, "+14155552671", "retry me")
    message = await wait_status(client, message_id, {"delivered"})
    attempts = message["attempts"]
    assert [a["state"] for a in attempts] == ["failed", "failed", "accepted"]
    assert attempts[0]["httpStatus"] == 500
    assert attempts[1]["error"]["code"] == "20429"
    assert "retrying" in " ".join(e["detail"] or "" for e in message["history"])
    assert len(fake.requests) == 3


async def test_unreachable_provider_is_retried_then_failed_with_our_code(
    database_url: str, secret_key: str, fake: FakeTwilio
) -> None:
    from tests.servers import make_settings

    settings = make_settings(database_url, secret_key, max_attempts=3)
    async with running_herald(settings) as herald, herald.client() as client:
        await add_twilio_sender(client, fake, base_url=f"http://127.0.0.1:{free_port()}")
        message_id = await send_sms(client, "+14155552671", "nobody home")
        message = await wait_status(client, message_id)
    assert message["status"] == "failed"
    assert message["error"]["code"] == "provider_unreachable"
    assert "Could not connect to Twilio" in message["error"]["message"]
    assert len(message["attempts"]) == 3


async def test_dropped_connection_is_reconciled_not_resent_blindly(
    database_url: str, secret_key: str, fake: FakeTwilio
) -> None:
    from tests.servers import make_settings

    settings = make_settings(database_url, secret_key, reconcile_delay_seconds=0.2)
    async with running_herald(settings) as herald, herald.client() as client:
        await add_twilio_sender(client, fake)
        fake.set_down(True)
        message_id = await send_sms(client, "+14155552671", "are you there")
        async with asyncio.timeout(10):
            while not fake.requests:
                await asyncio.sleep(0.02)
        fake.set_down(False)
        message = await wait_status(client, message_id, {"delivered"})
    # The first call's answer was lost; Herald asked Twilio, learned it never arrived, resent.
    assert [a["state"] for a in message["attempts"]] == ["not_sent", "accepted"]
    assert message["attempts"][0]["error"]["code"] == "provider_connection_lost"
    assert len([r for r in fake.requests if r.sid]) == 1


async def _callback_target(fake: FakeTwilio) -> tuple[str, dict[str, str]]:
    """The StatusCallback URL of the fake's first message, and valid params for it."""
    request = fake.requests[0]
    url = request.params["StatusCallback"][0].partition("#")[0]  # as Twilio signs it
    params = {
        "MessageSid": request.sid or "",
        "SmsSid": request.sid or "",
        "AccountSid": fake.account_sid,
        "From": "+15005550006",
        "To": request.params["To"][0],
        "ApiVersion": "2010-04-01",
    }
    return url, params


async def _post_callback(url: str, params: dict[str, str], signature: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(url, data=params, headers={"X-Twilio-Signature": signature})


async def test_forged_callback_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    fake.set_outcome("+14155552671", "sent")  # stays sent: no final callback from the fake
    message_id = await send_sms(client, "+14155552671", "hello")
    await wait_status(client, message_id, {"sent"})
    url, params = await _callback_target(fake)
    params = {**params, "MessageStatus": "delivered", "SmsStatus": "delivered"}
    forged = twilio_signature(url, params, "not-the-token")
    response = await _post_callback(url, params, forged)
    assert response.status_code == 403
    assert response.json()["code"] == "invalid_signature"
    async with httpx.AsyncClient() as http:
        missing = await http.post(url, data=params)
    assert missing.status_code == 403
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert message["status"] == "sent"
    assert "delivered" not in statuses(message)


async def test_late_and_duplicate_callbacks_never_move_backwards(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    fake.callback_order("reversed")  # delivered arrives before sent
    message_id = await send_sms(client, "+14155552671", "out of order")
    await wait_status(client, message_id, {"delivered"})
    await asyncio.to_thread(fake.wait_for_callbacks, 2)
    url, params = await _callback_target(fake)
    for status in ("sent", "delivered", "queued"):
        late = {**params, "MessageStatus": status, "SmsStatus": status}
        response = await _post_callback(url, late, twilio_signature(url, late, fake.auth_token))
        assert response.status_code == 200
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert message["status"] == "delivered"
    assert statuses(message).count("delivered") == 1
    assert "sent" not in statuses(message)[statuses(message).index("delivered") :]
    # Twilio's own word for it does not go back either.
    assert message["provider"]["status"] == "delivered"


async def test_late_reports_leave_an_undelivered_message_undelivered(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    fake.set_outcome("+14155552671", "undelivered", 30003)
    message_id = await send_sms(client, "+14155552671", "hello")
    await wait_status(client, message_id, {"undelivered"})
    await asyncio.to_thread(fake.wait_for_callbacks, 2)
    url, params = await _callback_target(fake)
    for status in ("sent", "delivered"):
        late = {**params, "MessageStatus": status, "SmsStatus": status}
        response = await _post_callback(url, late, twilio_signature(url, late, fake.auth_token))
        assert response.status_code == 200
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert (message["status"], message["provider"]["status"]) == ("undelivered", "undelivered")


async def test_callbacks_for_unknown_attempts_or_sids(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    fake.set_outcome("+14155552671", "sent")
    message_id = await send_sms(client, "+14155552671", "hello")
    await wait_status(client, message_id, {"sent"})
    url, params = await _callback_target(fake)

    wrong_sid = {**params, "MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    response = await _post_callback(
        url, wrong_sid, twilio_signature(url, wrong_sid, fake.auth_token)
    )
    assert response.status_code == 409
    assert response.json()["code"] == "unknown_sid"

    unknown = f"{herald.url}/webhooks/twilio/status/00000000-0000-0000-0000-000000000000"
    response = await _post_callback(
        unknown, params, twilio_signature(unknown, params, fake.auth_token)
    )
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_attempt"
    # Without a valid signature, an unknown attempt looks like a known one: 403, not 404.
    forged = twilio_signature(unknown, params, "not-the-token")
    response = await _post_callback(unknown, params, forged)
    assert response.status_code == 403
    assert response.json()["code"] == "invalid_signature"
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert message["status"] == "sent"


async def test_callback_endpoint_refuses_what_twilio_never_sends(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    message_id = await send_sms(client, "+14155552671", "hello")
    await wait_status(client, message_id, {"delivered"})
    url, params = await _callback_target(fake)

    huge = {**params, "Body": "x" * 100_000}
    response = await _post_callback(url, huge, twilio_signature(url, huge, fake.auth_token))
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert isinstance(response.json()["error"], str)

    async with httpx.AsyncClient() as plain:
        response = await plain.get(url)
    assert response.status_code in (404, 405)
    assert response.json()["code"] in ("not_found", "method_not_allowed")
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert statuses(message) == ["queued", "sending", "sent", "delivered"]


async def test_undelivered_report_keeps_twilio_error(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    fake.set_outcome("+14155552671", "undelivered", 30003)
    message_id = await send_sms(client, "+14155552671", "hello")
    message = await wait_status(client, message_id)
    assert message["status"] == "undelivered"
    assert message["error"]["code"] == "30003"
    assert (
        message["error"]["message"] == "Unreachable destination handset"
        or message["error"]["message"]
    )
    assert message["error"]["moreInfo"] == "https://www.twilio.com/docs/errors/30003"
    assert urlsplit(message["error"]["moreInfo"]).hostname == "www.twilio.com"


async def test_an_unsubscribed_report_suppresses_the_recipient(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    # Twilio may report 21610 after accepting the message (reference §5), with or without
    # an ErrorMessage: Herald words it itself when there is none.
    fake.set_outcome("+14155552671", "sent")
    message_id = await send_sms(client, "+14155552671", "hello")
    await wait_status(client, message_id, {"sent"})
    url, params = await _callback_target(fake)
    failed = {**params, "MessageStatus": "failed", "SmsStatus": "failed", "ErrorCode": "21610"}
    response = await _post_callback(url, failed, twilio_signature(url, failed, fake.auth_token))
    assert response.status_code == 200
    message = (await client.get(f"/api/v1/messages/{message_id}")).json()
    assert message["status"] == "failed"
    assert message["error"]["code"] == "21610"
    assert "unsubscribed" in message["error"]["message"]
    assert message["error"]["message"] != "Delivery failed"

    listed = (await client.get("/api/v1/suppressions", params={"to": "+14155552671"})).json()
    assert [(s["from"], s["source"]) for s in listed["items"]] == [("+15005550006", "twilio-21610")]
    again = await wait_status(client, await send_sms(client, "+14155552671", "hello again"))
    assert again["status"] == "failed" and again["error"]["code"] == "recipient_opted_out"
    assert len(fake.requests) == 1  # the second message never reached Twilio


async def test_twilio_expiring_a_message_reads_as_expired(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    fake.set_outcome("+14155552671", "failed", 30036)
    message_id = await send_sms(client, "+14155552671", "too late")
    message = await wait_status(client, message_id)
    # The same event as Herald's own expiry at the validity end, so the same outcome.
    assert message["status"] == "expired"
    assert message["error"]["code"] == "30036"
    assert message["provider"]["status"] == "failed"


async def test_sandbox_provider_status_follows_its_reports(herald: RunningHerald) -> None:
    async with herald.client() as sandbox_client:
        message_id = await send_sms(sandbox_client, "+14155552671", "hello")
        message = await wait_status(sandbox_client, message_id, {"delivered"})
    assert message["provider"]["name"] == "sandbox"
    assert message["provider"]["status"] == "delivered"


async def test_client_callbacks_are_retried_and_every_attempt_logged(
    herald: RunningHerald, client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    from sqlalchemy import select

    from herald.store.callbacks import ClientCallback, ClientCallbackAttempt

    async with callback_receiver(fail_first=2) as receiver:
        message_id = await send_sms(client, "+14155552671", "hello", callbackUrl=receiver.url)
        await wait_status(client, message_id, {"delivered"})
        # Retries back off (5 s base), so skip the wait by making them due now.
        async with herald.herald.sessions() as session, session.begin():
            for cb in await session.scalars(select(ClientCallback)):
                if cb.state == "pending":
                    cb.next_attempt_at = herald.herald.clock.now()
        await receiver.wait_for(lambda b: b["status"] == "delivered", timeout=20)
    async with herald.herald.sessions() as session:
        attempts = list(await session.scalars(select(ClientCallbackAttempt)))
    failed = [a for a in attempts if a.http_status == 500]
    assert len(failed) == 2
    assert all(a.response_excerpt == "not now" for a in failed)


async def test_price_is_fetched_after_the_final_report(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    message_id = await send_sms(client, "+14155552671", "x" * 200)  # two segments
    await wait_status(client, message_id, {"delivered"})
    async with asyncio.timeout(10):
        while True:
            provider = (await client.get(f"/api/v1/messages/{message_id}")).json()["provider"]
            if provider["price"] is not None:
                break
            await asyncio.sleep(0.1)
    assert provider["numSegments"] == 2
    assert provider["price"] == fake.messages[provider["messageId"]]["price"]
    assert provider["priceUnit"] == "USD"


async def test_reports_for_a_removed_sender_still_apply(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    fake.callback_delay = 0.5
    message_id = await send_sms(client, "+14155552671", "on its way")
    await wait_status(client, message_id, {"sending"})
    sender_id = (await client.get("/api/v1/senders")).json()["items"][-1]["id"]
    assert (await client.delete(f"/api/v1/senders/{sender_id}")).status_code == 204
    # Twilio's reports come after the removal; they are checked with the kept credentials.
    message = await wait_status(client, message_id, {"delivered"})
    assert statuses(message) == ["queued", "sending", "sent", "delivered"]


async def test_a_rotated_auth_token_is_the_one_sent(
    client: httpx.AsyncClient, fake: FakeTwilio
) -> None:
    sender_id = (await client.get("/api/v1/senders")).json()["items"][-1]["id"]
    path = f"/api/v1/senders/{sender_id}"
    assert (await client.patch(path, json={"authToken": "not-the-token"})).status_code == 200
    refused = await wait_status(client, await send_sms(client, "+14155552671", "one"))
    assert refused["status"] == "failed" and refused["error"]["code"] == "20003"
    assert (await client.patch(path, json={"authToken": fake.auth_token})).status_code == 200
    sent = await wait_status(client, await send_sms(client, "+14155552671", "two"), {"delivered"})
    assert sent["status"] == "delivered"


async def test_sender_list_takes_twins_sort_and_fields(client: httpx.AsyncClient) -> None:
    # The project's sandbox sender came first, the Twilio one of the fixture second.
    oldest = (await client.get("/api/v1/senders")).json()["items"]
    assert [s["provider"] for s in oldest] == ["SANDBOX", "TWILIO"]
    newest = (await client.get("/api/v1/senders", params={"sort": "-createdAt"})).json()
    assert [s["id"] for s in newest["items"]] == [s["id"] for s in reversed(oldest)]
    ascending = (await client.get("/api/v1/senders", params={"sort": "createdAt"})).json()
    assert [s["id"] for s in ascending["items"]] == [s["id"] for s in oldest]

    cut = (await client.get("/api/v1/senders", params={"fields": "from,channel"})).json()
    assert cut["count"] == 2
    assert all(set(item) == {"from", "channel"} for item in cut["items"])

    by_status = await client.get("/api/v1/senders", params={"sort": "status"})
    assert by_status.status_code == 422 and by_status.json()["code"] == "invalid_sort"
    unknown = await client.get("/api/v1/senders", params={"fields": "colour"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_field"
