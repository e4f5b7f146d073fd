"""Reports that never come and answers that get lost: Herald reads the message back from Twilio.

Herald and the fake Twilio are real servers; the dispatcher is driven by hand on a
ManualClock, so each step happens when the test moves time, never on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from herald.clock import ManualClock
from herald.config import Settings
from herald.dispatch.loop import Dispatcher
from herald.domain.polling import PollSchedule
from herald.services.delivery.outcomes import PRICE_PATIENCE
from herald.store.messages import Delivery
from tests.e2e.helpers import FINAL, add_twilio_sender, send_sms
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, running_herald

PHONE = "+14155552671"


@dataclass
class World:
    herald: RunningHerald
    client: httpx.AsyncClient
    fake: FakeTwilio
    clock: ManualClock
    dispatcher: Dispatcher

    @property
    def settings(self) -> Settings:
        return self.herald.herald.settings

    async def drain(self) -> int:
        """Run the dispatcher until nothing is due at the clock's time; how many it handled."""
        total = 0
        for _ in range(50):
            handled = await self.dispatcher.run_once()
            if not handled:
                return total
            total += handled
        raise AssertionError("the dispatcher kept finding work: a loop with no backoff")

    async def view(self, message_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/messages/{message_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def delivery(self, message_id: str) -> Delivery:
        async with self.herald.herald.sessions() as session:
            query = select(Delivery).where(Delivery.message_id == message_id)
            return (await session.scalars(query)).one()

    async def follow_schedule(self, message_id: str) -> list[datetime]:
        """Move the clock to each time the delivery is due and run it; the times, in order."""
        times: list[datetime] = []
        for _ in range(30):
            due = (await self.delivery(message_id)).next_attempt_at
            if due is None:
                return times
            self.clock.set(due)
            await self.drain()
            times.append(due)
        raise AssertionError(f"still scheduled after {len(times)} runs: {times[-3:]}")


@contextlib.asynccontextmanager
async def world(settings: Settings, *, callbacks: bool, **overrides: Any) -> AsyncIterator[World]:
    with FakeTwilio(send_callbacks=callbacks) as fake:
        clock = ManualClock(datetime.now(UTC))
        async with (
            running_herald(
                settings.model_copy(update=overrides), run_workers=False, clock=clock
            ) as herald,
            herald.client() as client,
        ):
            await add_twilio_sender(client, fake)
            yield World(herald, client, fake, clock, Dispatcher(herald.herald))


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not check():
            await asyncio.sleep(0.02)


def sources(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["status"], e["source"]) for e in message["history"]]


# -- lost status callbacks (audit A1) --------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "code"), [("delivered", None), ("undelivered", 30003), ("failed", 30007)]
)
async def test_a_lost_final_report_is_read_back_from_twilio(
    settings: Settings, outcome: str, code: int | None
) -> None:
    async with world(settings, callbacks=False) as w:
        w.fake.set_outcome(PHONE, outcome, code)
        message_id = await send_sms(w.client, PHONE, "hello")
        await w.drain()
        sid = w.fake.requests[0].sid or ""
        await until(lambda: w.fake.messages[sid]["status"] == outcome)
        row = await w.delivery(message_id)
        assert row.status == "sending"
        poll_at = row.next_attempt_at
        assert poll_at == row.updated_at + timedelta(seconds=w.settings.report_poll_delay_seconds)

        w.clock.set(poll_at - timedelta(seconds=1))
        assert await w.drain() == 0
        assert w.fake.fetches == []
        w.clock.set(poll_at)
        await w.drain()
        message = await w.view(message_id)
        row = await w.delivery(message_id)

    assert message["status"] == outcome
    assert sources(message)[-1] == (outcome, "provider-poll")
    assert message["provider"]["status"] == outcome
    # One read gave both the status and, for a charged message, the price: nothing is left.
    assert w.fake.fetches == [sid]
    assert row.next_attempt_at is None
    assert message["provider"]["price"] == w.fake.messages[sid]["price"]
    if code is None:
        assert message["error"] is None
    else:
        assert message["error"]["code"] == str(code)
        assert message["error"]["message"] == w.fake.messages[sid]["error_message"]
        assert message["error"]["moreInfo"] == f"https://www.twilio.com/docs/errors/{code}"


async def test_a_message_left_sent_is_polled_with_backoff_for_12_hours_then_left_sent(
    settings: Settings,
) -> None:
    async with world(settings, callbacks=False) as w:
        w.fake.set_outcome(PHONE, "sent")  # a carrier that never returns a delivery receipt
        message_id = await send_sms(w.client, PHONE, "hello")
        await w.drain()
        sid = w.fake.requests[0].sid or ""
        await until(lambda: w.fake.messages[sid]["status"] == "sent")
        polls = await w.follow_schedule(message_id)
        message = await w.view(message_id)

    # The first poll found it sent; from then on Twilio is asked at growing intervals until
    # 12 hours after that news, then no more: "sent" may legitimately be the last word.
    assert message["status"] == "sent" and message["error"] is None
    assert sources(message)[-1] == ("sent", "provider-poll")
    schedule = PollSchedule(w.settings.report_poll_delay_seconds, 12 * 3600)
    assert len(w.fake.fetches) == len(polls) == 1 + schedule.polls()
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    assert gaps[:-1] == sorted(gaps[:-1]) and gaps[0] < gaps[-2]
    assert polls[-1] - polls[0] == timedelta(hours=12)


async def test_reports_that_arrive_cost_no_poll_and_no_extra_request(
    settings: Settings,
) -> None:
    async with world(settings, callbacks=True) as w:
        message_id = await send_sms(w.client, PHONE, "hello")
        await w.drain()
        await asyncio.to_thread(w.fake.wait_for_callbacks, 2)
        delivered = await w.view(message_id)
        assert delivered["status"] == "delivered"
        # The final report replaced the poll with the price fetch, which every message had.
        row = await w.delivery(message_id)
        assert row.next_attempt_at == w.clock.now() + timedelta(
            seconds=w.settings.price_fetch_delay_seconds
        )
        fetched_at = await w.follow_schedule(message_id)
        w.clock.advance(PRICE_PATIENCE.total_seconds() * 2)
        assert await w.drain() == 0
        message = await w.view(message_id)

    assert len(fetched_at) == 1
    assert w.fake.fetches == [message["provider"]["messageId"]]
    assert message["provider"]["price"] is not None
    assert [s for _, s in sources(message)] == [
        "api",
        "dispatcher",
        "twilio-callback",
        "twilio-callback",
    ]


# -- crash reconciliation (audit A2, A6) -----------------------------------------------------


async def test_a_lost_answer_for_a_message_still_queued_at_twilio_is_found_not_resent(
    settings: Settings,
) -> None:
    async with world(settings, callbacks=False) as w:
        w.fake.set_outcome(PHONE, "queued")  # Twilio's queue for the sender is backed up
        w.fake.lose_answers(True)
        message_id = await send_sms(w.client, PHONE, "are you there")
        await w.drain()
        w.fake.lose_answers(False)
        w.clock.advance(w.settings.reconcile_delay_seconds)
        await w.drain()
        message = await w.view(message_id)

    # Not sent yet, so no date_sent: a DateSent filter would have missed it and sent it twice.
    [created] = w.fake.requests
    assert w.fake.messages[created.sid or ""]["date_sent"] is None
    assert [a["state"] for a in message["attempts"]] == ["accepted"]
    assert message["attempts"][0]["providerMessageId"] == created.sid
    assert message["status"] == "sending"
    assert message["provider"]["status"] == "queued"
    [query] = w.fake.lists
    assert set(query) == {"To", "From", "PageSize"}
    assert (query["To"], query["From"]) == ([PHONE], ["+15005550006"])


async def test_resends_after_a_reconciliation_back_off_and_stop_at_max_attempts(
    settings: Settings,
) -> None:
    async with world(settings, callbacks=False, max_attempts=3) as w:
        w.fake.set_down(True)  # every create is read and dropped: nothing reaches Twilio
        message_id = await send_sms(w.client, PHONE, "nobody home")
        step = max(w.settings.reconcile_delay_seconds, w.settings.retry_max_seconds)
        for _ in range(10):
            await w.drain()
            message = await w.view(message_id)
            if message["status"] in FINAL:
                break
            w.clock.advance(step)

    assert message["status"] == "failed"
    assert len(w.fake.requests) == 3
    assert [a["state"] for a in message["attempts"]] == ["not_sent"] * 3
    assert message["error"]["code"] == "provider_connection_lost"
    details = [e["detail"] or "" for e in message["history"] if e["source"] == "dispatcher"]
    retries = [d for d in details if "never reached the provider; retrying in" in d]
    assert len(retries) == 2
    assert details[-1] == "gave up after 3 attempts"


async def test_reconciliation_keeps_twilios_error_and_fetches_no_price_for_a_failure(
    settings: Settings,
) -> None:
    async with world(settings, callbacks=False) as w:
        w.fake.set_outcome(PHONE, "failed", 30007)
        w.fake.lose_answers(True)
        message_id = await send_sms(w.client, PHONE, "filtered")
        await w.drain()
        w.fake.lose_answers(False)
        sid = w.fake.requests[0].sid or ""
        await until(lambda: w.fake.messages[sid]["status"] == "failed")
        w.clock.advance(w.settings.reconcile_delay_seconds)
        await w.drain()
        message = await w.view(message_id)
        row = await w.delivery(message_id)

    assert message["status"] == "failed"
    assert message["error"] == {
        "code": "30007",
        "message": w.fake.messages[sid]["error_message"],
        "moreInfo": "https://www.twilio.com/docs/errors/30007",
    }
    assert message["attempts"][0]["error"]["code"] == "30007"
    # Twilio does not price a failed message: nothing is scheduled to ask.
    assert row.next_attempt_at is None
    assert w.fake.fetches == []


# -- price fetches (audit A7) ----------------------------------------------------------------


async def test_a_price_that_never_comes_is_asked_for_a_bounded_number_of_times(
    settings: Settings,
) -> None:
    async with world(settings, callbacks=True) as w:
        w.fake.set_priced(False)
        message_id = await send_sms(w.client, PHONE, "hello")
        await w.drain()
        await asyncio.to_thread(w.fake.wait_for_callbacks, 2)
        fetched_at = await w.follow_schedule(message_id)
        message = await w.view(message_id)

    schedule = PollSchedule(w.settings.price_fetch_delay_seconds, PRICE_PATIENCE.total_seconds())
    assert len(w.fake.fetches) == len(fetched_at) == schedule.polls()
    assert fetched_at[-1] - fetched_at[0] < PRICE_PATIENCE
    assert message["status"] == "delivered" and message["provider"]["price"] is None
