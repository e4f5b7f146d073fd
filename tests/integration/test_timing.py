"""Scheduling, cancel races, allowed time ranges, validity and retries on real databases.

The clock is a ManualClock: tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from herald.bootstrap import Herald, build
from herald.clock import ManualClock
from herald.config import Settings
from herald.dispatch.loop import Dispatcher
from herald.errors import Conflict, ValidationFailed
from herald.schemas.messages import CancelMessagesIn, CreateMessagesIn
from herald.services.messages.accepting import CreationPolicy, create_messages
from herald.services.messages.reading import cancel_messages, get_message
from herald.services.projects import create_project
from herald.services.sender_accounts import NewSender
from herald.services.senders import add_sender
from herald.store.db import read_snapshot
from herald.store.messages import Delivery, Message
from tests.fakes.twilio import FakeTwilio
from tests.servers import free_port

START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(send_callbacks=False) as twilio:
        yield twilio


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[Herald]:
    graph = build(settings, clock=ManualClock(START))
    yield graph
    await graph.aclose()


async def project_on(graph: Herald, fake: FakeTwilio, name: str) -> str:
    """A new project whose SMS sender is the fake Twilio; its id."""
    async with graph.sessions() as session, session.begin():
        created = await create_project(session, graph.vault, name)
        await add_sender(
            session,
            graph.vault,
            created.project_id,
            NewSender(
                channel="sms",
                provider="twilio",
                from_address="+15005550006",
                account_sid=fake.account_sid,
                auth_token=fake.auth_token,
                base_url=fake.base_url,
            ),
            urls=graph.settings.url_policy,
        )
    return created.project_id


@pytest.fixture
async def project(herald: Herald, fake: FakeTwilio) -> str:
    return await project_on(herald, fake, "timing")


def clock(herald: Herald) -> ManualClock:
    assert isinstance(herald.clock, ManualClock)
    return herald.clock


async def send(
    herald: Herald,
    project: str,
    *,
    phone: str = "+33612345678",
    text: str = "hi",
    sms: dict[str, Any] | None = None,
    **message: Any,
) -> list[dict[str, Any]]:
    body = {
        "messages": [
            {
                "destinations": [{"phone": phone}],
                "channels": {"sms": {"text": text, **(sms or {})}},
                **message,
            }
        ]
    }
    async with herald.sessions() as session, session.begin():
        return await create_messages(
            session,
            project,
            CreateMessagesIn.model_validate(body),
            now=herald.clock.now(),
            policy=CreationPolicy.from_settings(herald.settings),
        )


async def view(herald: Herald, project: str, message_id: str) -> dict[str, Any]:
    async with herald.sessions() as session:
        return await get_message(session, project, message_id)


async def drain(dispatcher: Dispatcher) -> int:
    total = 0
    for _ in range(50):
        handled = await dispatcher.run_once()
        if not handled:
            return total
        total += handled
    return total


async def test_scheduled_message_waits_for_its_time(
    herald: Herald, project: str, fake: FakeTwilio
) -> None:
    send_at = (START + timedelta(minutes=10)).isoformat()
    [result] = await send(herald, project, sendAt=send_at)
    assert result["status"] == "scheduled"
    dispatcher = Dispatcher(herald)
    assert await drain(dispatcher) == 0
    clock(herald).advance(9 * 60)
    assert await drain(dispatcher) == 0
    assert fake.requests == []
    clock(herald).advance(61)
    await drain(dispatcher)
    assert len(fake.requests) == 1
    message = await view(herald, project, result["id"])
    assert message["status"] == "sending"
    assert message["sendAt"] == (START + timedelta(minutes=10)).isoformat()


async def test_send_at_forms_and_limits(herald: Herald, project: str) -> None:
    php = {"date": "2026-01-15 18:00:00.000000", "timezone_type": 3, "timezone": "Europe/Moscow"}
    [result] = await send(herald, project, sendAt=php)
    message = await view(herald, project, result["id"])
    assert message["sendAt"] == datetime(2026, 1, 15, 15, 0, tzinfo=UTC).isoformat()
    # PHP writes a date parsed from "…T18:00:00Z" or "… MSK" with an abbreviation (type 2).
    for zone, utc_hour in [("Z", 18), ("MSK", 15), ("EST", 23)]:
        abbreviated = {**php, "timezone_type": 2, "timezone": zone}
        [result] = await send(herald, project, sendAt=abbreviated)
        message = await view(herald, project, result["id"])
        assert message["sendAt"] == datetime(2026, 1, 15, utc_hour, 0, tzinfo=UTC).isoformat()
    with pytest.raises(ValidationFailed) as ambiguous:  # India's, Ireland's or Israel's?
        await send(herald, project, sendAt={**php, "timezone_type": 2, "timezone": "IST"})
    assert ambiguous.value.code == "invalid_send_at"
    [past] = await send(herald, project, sendAt="2020-01-01T00:00:00Z")
    assert past["status"] == "queued"
    for bad, code in [
        ("2026-02-01T10:00:00", "invalid_send_at"),
        ("tomorrow", "invalid_send_at"),
        ((START + timedelta(days=36)).isoformat(), "send_at_too_far"),
    ]:
        with pytest.raises(ValidationFailed) as e:
            await send(herald, project, sendAt=bad)
        assert e.value.code == code


async def test_cancel_scheduled_by_id_group_and_task(
    herald: Herald, project: str, fake: FakeTwilio
) -> None:
    later = (START + timedelta(hours=1)).isoformat()
    [one] = await send(herald, project, sendAt=later)
    await send(herald, project, sendAt=later, groupId="g")
    await send(herald, project, sendAt=later, groupId="g")
    async with herald.sessions() as session, session.begin():
        by_group = await cancel_messages(
            session, project, CancelMessagesIn(groupId="g"), now=herald.clock.now()
        )
    assert [r["status"] for r in by_group] == ["cancelled", "cancelled"]
    async with herald.sessions() as session, session.begin():
        [by_id] = await cancel_messages(
            session, project, CancelMessagesIn(id=one["id"]), now=herald.clock.now()
        )
    assert by_id["status"] == "cancelled"
    clock(herald).advance(2 * 3600)
    await drain(Dispatcher(herald))
    assert fake.requests == []


async def test_cancel_racing_a_claim_is_never_both(
    herald: Herald, project: str, fake: FakeTwilio
) -> None:
    """Cancel at the moment workers claim: each message is sent xor cancelled; one a worker
    took first is with the provider, and the cancel says so (its status is not cancelled)."""
    ids = [r["id"] for _ in range(40) for r in await send(herald, project, text=f"race {_}")]
    outcomes: dict[str, str] = {}

    async def cancel(message_id: str) -> None:
        try:
            async with herald.sessions() as session, session.begin():
                [result] = await cancel_messages(
                    session, project, CancelMessagesIn(id=message_id), now=herald.clock.now()
                )
            outcomes[message_id] = result["status"]
        except Conflict:
            outcomes[message_id] = "409"

    workers = [Dispatcher(herald) for _ in range(2)]
    await asyncio.gather(*(w.run_once() for w in workers), *(cancel(i) for i in ids))
    for w in workers:
        await drain(w)
    sent_texts = {r.params["Body"][0] for r in fake.requests}
    for i, message_id in enumerate(ids):
        message = await view(herald, project, message_id)
        was_sent = f"race {i}" in sent_texts
        if outcomes[message_id] == "cancelled":
            assert message["status"] == "cancelled" and not was_sent
        else:
            assert message["status"] != "cancelled" and was_sent
    assert len(fake.requests) == len(sent_texts)


async def test_allowed_time_ranges_in_the_recipients_zone(
    herald: Herald, project: str, fake: FakeTwilio
) -> None:
    # 12:00 UTC is 15:00 in Moscow and 21:00 in Tokyo.
    ranges = [["09:00:00", "20:00:00"]]
    [tokyo] = await send(herald, project, allowedTimeRanges=ranges, timezone="Asia/Tokyo")
    [paris] = await send(herald, project, allowedTimeRanges=ranges)  # zone from +33 number
    [moscow] = await send(
        herald, project, phone="+79161234567", allowedTimeRanges=ranges, timezone="Europe/Moscow"
    )
    assert tokyo["status"] == "scheduled"
    assert paris["status"] == "queued" and moscow["status"] == "queued"
    await drain(Dispatcher(herald))
    assert len(fake.requests) == 2
    message = await view(herald, project, tokyo["id"])
    assert "09:00" in message["history"][0]["detail"]
    assert "Asia/Tokyo" in message["history"][0]["detail"]
    paris_view = await view(herald, project, paris["id"])
    assert paris_view["timezone"] == {"name": "Europe/Paris", "source": "phone"}
    clock(herald).set(datetime(2026, 1, 16, 0, 0, tzinfo=UTC))  # 09:00 in Tokyo
    await drain(Dispatcher(herald))
    assert len(fake.requests) == 3


async def test_ambiguous_number_uses_the_project_default_zone(herald: Herald, project: str) -> None:
    ranges = [["09:00:00", "20:00:00"]]
    [russia] = await send(herald, project, phone="+79161234567", allowedTimeRanges=ranges)
    message = await view(herald, project, russia["id"])
    assert message["timezone"] == {"name": "UTC", "source": "project default"}
    assert russia["status"] == "queued"  # 12:00 UTC is inside 09-20 UTC


async def test_validity_expires_during_an_outage_and_is_never_sent_after(
    herald: Herald, project: str, settings: Settings
) -> None:
    async with herald.sessions() as session, session.begin():
        await add_sender(
            session,
            herald.vault,
            project,
            NewSender(
                channel="sms",
                provider="twilio",
                from_address="+15005550010",
                account_sid="AC" + "1" * 32,
                auth_token="x",
                base_url=f"http://127.0.0.1:{free_port()}",
                default=False,
            ),
            urls=herald.settings.url_policy,
        )
    [result] = await send(herald, project, sms={"validityPeriod": 2, "from": "+15005550010"})
    dispatcher = Dispatcher(herald)
    dispatcher.policy = type(dispatcher.policy)(max_attempts=50, base_seconds=20, max_seconds=20)
    for _ in range(30):
        await drain(dispatcher)
        clock(herald).advance(25)
    message = await view(herald, project, result["id"])
    assert message["status"] == "expired"
    assert message["error"]["code"] == "validity_expired"  # a final status with its own reason
    assert {a["error"]["code"] for a in message["attempts"]} == {"provider_unreachable"}
    last_attempt = max(datetime.fromisoformat(a["startedAt"]) for a in message["attempts"])
    assert last_attempt < START + timedelta(minutes=2)
    assert "validity" in message["history"][-1]["detail"]


async def test_quiet_night_longer_than_validity_expires(
    herald: Herald, project: str, fake: FakeTwilio
) -> None:
    [result] = await send(
        herald,
        project,
        allowedTimeRanges=[["01:00:00", "02:00:00"]],
        timezone="UTC",
        sms={"validityPeriod": 60},
    )
    clock(herald).advance(3600)
    await drain(Dispatcher(herald))
    message = await view(herald, project, result["id"])
    assert message["status"] == "expired"
    assert message["error"]["code"] == "validity_expired"
    assert fake.requests == []


async def test_validity_is_passed_to_twilio(herald: Herald, project: str, fake: FakeTwilio) -> None:
    await send(herald, project, sms={"validityPeriod": 30})
    await drain(Dispatcher(herald))
    assert fake.requests[0].params["ValidityPeriod"] == ["1800"]
    await send(herald, project, sms={"validityPeriod": 24 * 60})
    await drain(Dispatcher(herald))
    assert fake.requests[1].params["ValidityPeriod"] == ["36000"]  # Twilio's cap


async def test_retry_after_is_honoured(herald: Herald, project: str, fake: FakeTwilio) -> None:
    fake.fail_next(1, http_status=429, code=20429, retry_after=30)
    [result] = await send(herald, project)
    await drain(Dispatcher(herald))
    async with herald.sessions() as session:
        due = await session.scalar(
            select(Delivery.next_attempt_at).where(Delivery.message_id == result["id"])
        )
    assert due is not None and due >= START + timedelta(seconds=30)
    clock(herald).advance(29)
    await drain(Dispatcher(herald))
    assert len(fake.requests) == 1
    clock(herald).set(due)
    await drain(Dispatcher(herald))
    assert len(fake.requests) == 2
    message = await view(herald, project, result["id"])
    assert [a["state"] for a in message["attempts"]] == ["failed", "accepted"]


async def test_catch_up_after_downtime_in_due_order_once(
    herald: Herald, project: str, fake: FakeTwilio
) -> None:
    for minute in (50, 10, 30, 20, 40):
        await send(
            herald,
            project,
            text=f"due at {minute}",
            sendAt=(START + timedelta(minutes=minute)).isoformat(),
        )
    clock(herald).advance(3600)  # Herald was down for an hour
    dispatcher = Dispatcher(herald)
    dispatcher.settings = dispatcher.settings.model_copy(update={"dispatch_batch_size": 2})
    await drain(dispatcher)
    assert [r.params["Body"][0] for r in fake.requests] == [
        f"due at {m}" for m in (10, 20, 30, 40, 50)
    ]
    await drain(dispatcher)
    assert len(fake.requests) == 5


@pytest.fixture
async def paused(settings: Settings, fake: FakeTwilio) -> AsyncIterator[tuple[Herald, str]]:
    """A Herald whose allowed time ranges pause validity, sending through the fake."""
    graph = build(
        settings.model_copy(update={"allowed_time_ranges_pause_validity": True}),
        clock=ManualClock(START),
    )
    try:
        yield graph, await project_on(graph, fake, "night")
    finally:
        await graph.aclose()


async def test_allowed_time_ranges_can_be_configured_to_pause_validity(
    paused: tuple[Herald, str], fake: FakeTwilio
) -> None:
    graph, project_id = paused
    # Allowed from 14:00 UTC, two hours away; valid for one hour: without the option it
    # would expire during the wait (see the test above), with it the hour starts at 14:00.
    [result] = await send(
        graph,
        project_id,
        timezone="UTC",
        allowedTimeRanges=[["14:00:00", "20:00:00"]],
        sms={"validityPeriod": 60},
    )
    clock(graph).advance(2 * 3600)
    await drain(Dispatcher(graph))
    message = await view(graph, project_id, result["id"])
    assert message["status"] == "sending"
    assert message["expiresAt"] == (START + timedelta(hours=3)).isoformat()
    assert len(fake.requests) == 1


async def test_a_retry_held_overnight_keeps_its_paused_validity(
    paused: tuple[Herald, str], fake: FakeTwilio
) -> None:
    graph, project_id = paused
    # Sent at 12:00 inside a 12:00-12:20 window, valid an hour; Twilio says "retry in 30
    # minutes", which falls after the window: the retry waits for tomorrow's window and,
    # with validity paused, the remaining half hour of validity waits with it.
    fake.fail_next(1, http_status=429, code=20429, retry_after=1800)
    [result] = await send(
        graph,
        project_id,
        timezone="UTC",
        allowedTimeRanges=[["12:00:00", "12:20:00"]],
        sms={"validityPeriod": 60},
    )
    await drain(Dispatcher(graph))
    async with graph.sessions() as session:
        retry_at = await session.scalar(
            select(Delivery.next_attempt_at).where(Delivery.message_id == result["id"])
        )
    assert retry_at is not None
    clock(graph).set(retry_at)
    await drain(Dispatcher(graph))
    tomorrow = START + timedelta(days=1)
    async with graph.sessions() as session:
        delivery = await session.scalar(select(Delivery).where(Delivery.message_id == result["id"]))
    assert delivery is not None
    assert delivery.next_attempt_at == tomorrow
    assert delivery.expires_at == START + timedelta(hours=1) + (tomorrow - retry_at)

    clock(graph).set(tomorrow)
    await drain(Dispatcher(graph))
    message = await view(graph, project_id, result["id"])
    assert message["status"] == "sending"
    assert len(fake.requests) == 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_views_read_one_snapshot_on_postgresql(herald: Herald, project: str) -> None:
    # SQLite needs no test: a reader holds the database's one connection (and its lock), so
    # no commit can land between its queries. PostgreSQL's READ COMMITTED would let one in.
    [result] = await send(herald, project)
    status_of = select(Message.status).where(Message.id == result["id"])
    async with herald.sessions() as reader:
        await read_snapshot(reader)
        before = await reader.scalar(status_of)
        async with herald.sessions() as writer, writer.begin():
            await writer.execute(
                update(Message).where(Message.id == result["id"]).values(status="sent")
            )
        assert await reader.scalar(status_of) == before == "queued"
    async with herald.sessions() as fresh:
        assert await fresh.scalar(status_of) == "sent"
