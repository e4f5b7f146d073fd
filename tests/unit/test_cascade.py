"""The cascade's decisions, on plain channels: no database, no servers, no fakes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from herald.domain.cascade import (
    FAILURES,
    decide,
    group_skip_detail,
    handover_deadline,
    handover_detail,
    next_channel,
    starts_at_once,
    validities,
    waiting_fallbacks,
)
from herald.domain.statuses import FINAL, SUCCESS, Status

AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@dataclass
class Ch:
    step: int
    channel: str
    status: str
    required: bool = False
    error_code: str | None = None
    error_message: str | None = None


def cascade(*statuses: Status, required: tuple[int, ...] = ()) -> list[Ch]:
    names = ("sms", "whatsapp", "telegram", "email", "chat")
    return [Ch(i, names[i % 5], s, i in required) for i, s in enumerate(statuses)]


def test_a_failure_hands_over_to_the_next_pending_channel() -> None:
    sms, whatsapp, email = cascade(Status.FAILED, Status.PENDING, Status.PENDING)
    sms.error_code, sms.error_message = "30003", "Unreachable destination handset"
    decision = decide(sms, Status.FAILED, [sms, whatsapp, email], group_given=False)
    assert decision.next is whatsapp
    assert decision.handover_detail == (
        "sms ended failed (30003 Unreachable destination handset); trying whatsapp"
    )
    assert decision.skipped == ()
    assert not decision.group_delivered


def test_undelivered_hands_over_too() -> None:
    sms, whatsapp = cascade(Status.UNDELIVERED, Status.PENDING)
    assert decide(sms, Status.UNDELIVERED, [sms, whatsapp], group_given=False).next is whatsapp


def test_expiry_hands_over_when_no_report_came_in_time() -> None:
    sms, whatsapp = cascade(Status.EXPIRED, Status.PENDING)
    decision = decide(sms, Status.EXPIRED, [sms, whatsapp], group_given=False)
    assert decision.next is whatsapp
    assert decision.handover_detail == "sms ended expired (expired); trying whatsapp"


def test_the_reason_names_the_code_once() -> None:
    failed, following = cascade(Status.FAILED, Status.PENDING)
    failed.error_code, failed.error_message = "21610", "21610 unsubscribed recipient"
    assert handover_detail(failed, Status.FAILED, following) == (
        "sms ended failed (21610 unsubscribed recipient); trying whatsapp"
    )
    failed.error_message = None
    assert handover_detail(failed, Status.FAILED, following) == (
        "sms ended failed (21610 failed); trying whatsapp"
    )


def test_nothing_left_to_try_ends_the_cascade() -> None:
    sms, whatsapp = cascade(Status.SKIPPED, Status.FAILED)
    decision = decide(whatsapp, Status.FAILED, [sms, whatsapp], group_given=True)
    assert decision.next is None
    assert decision.handover_detail is None
    assert decision.skipped == ()
    assert not decision.group_delivered


def test_the_hand_over_takes_the_lowest_pending_step_whatever_the_order_given() -> None:
    first, second, third = cascade(Status.FAILED, Status.PENDING, Status.PENDING)
    assert decide(first, Status.FAILED, [third, second, first], group_given=False).next is second


def test_a_required_channel_failing_moves_nothing_on() -> None:
    sms, email, whatsapp = cascade(Status.QUEUED, Status.FAILED, Status.PENDING, required=(1,))
    assert decide(email, Status.FAILED, [sms, email, whatsapp], group_given=False).next is None


def test_a_required_channel_is_never_handed_over_to() -> None:
    sms, email, whatsapp = cascade(Status.FAILED, Status.PENDING, Status.PENDING, required=(1,))
    assert decide(sms, Status.FAILED, [sms, email, whatsapp], group_given=False).next is whatsapp
    assert next_channel([email]) is None


def test_delivered_leaves_the_pending_channels_unused() -> None:
    sms, whatsapp, email = cascade(Status.DELIVERED, Status.PENDING, Status.PENDING)
    decision = decide(sms, Status.DELIVERED, [sms, whatsapp, email], group_given=False)
    assert decision.next is None
    assert decision.skipped == (whatsapp, email)
    assert decision.skip_detail == "not needed: delivered on sms"
    assert not decision.group_delivered


def test_read_stops_the_cascade_like_delivered() -> None:
    sms, whatsapp = cascade(Status.SENT, Status.PENDING)
    sms.channel = "whatsapp"
    decision = decide(sms, Status.READ, [sms, whatsapp], group_given=False)
    assert decision.skipped == (whatsapp,)
    assert decision.skip_detail == "not needed: delivered on whatsapp"


def test_delivered_leaves_channels_already_reached_alone() -> None:
    sms, whatsapp, email = cascade(Status.EXPIRED, Status.DELIVERED, Status.PENDING)
    required = Ch(3, "email", Status.SENDING, required=True)
    decision = decide(
        whatsapp, Status.DELIVERED, [sms, whatsapp, email, required], group_given=True
    )
    assert decision.skipped == (email,)


def test_delivered_in_a_client_given_group_skips_the_group() -> None:
    (sms,) = cascade(Status.DELIVERED)
    assert decide(sms, Status.DELIVERED, [sms], group_given=True).group_delivered
    assert not decide(sms, Status.DELIVERED, [sms], group_given=False).group_delivered
    assert group_skip_detail("sms", "m1") == "delivered_in_group: delivered on sms to message m1"


def test_other_moves_leave_the_cascade_alone() -> None:
    for new in (Status.QUEUED, Status.SENDING, Status.SENT, Status.CANCELLED, Status.SKIPPED):
        sms, whatsapp = cascade(new, Status.PENDING)
        decision = decide(sms, new, [sms, whatsapp], group_given=True)
        assert decision.next is None and decision.skipped == ()
        assert not decision.group_delivered


def test_failures_are_final_endings_other_than_cancelled_and_skipped() -> None:
    assert FINAL - SUCCESS - {Status.CANCELLED, Status.SKIPPED} == FAILURES


def test_waiting_fallbacks_are_the_pending_unrequired_channels_in_step_order() -> None:
    chans = cascade(Status.SENT, Status.PENDING, Status.PENDING, Status.PENDING, required=(2,))
    assert waiting_fallbacks(reversed(chans)) == [chans[1], chans[3]]


def test_the_channel_handed_over_to_gets_its_own_validity_from_now() -> None:
    assert handover_deadline(AT, 30) == AT + timedelta(minutes=30)
    assert handover_deadline(AT, None) is None


def test_the_first_unrequired_channel_and_every_required_one_start_at_once() -> None:
    assert starts_at_once([False, False, False]) == [True, False, False]
    assert starts_at_once([True, False, True, False]) == [True, True, True, False]
    assert starts_at_once([True, True]) == [True, True]
    assert starts_at_once([]) == []


def test_a_channel_the_cascade_may_leave_waits_the_default() -> None:
    assert validities([None, None, None], [False, False, False], 60) == [60, 60, None]
    assert validities([5, None, None], [False, False, False], 60) == [5, 60, None]
    # The last unrequired channel and the required ones wait as long as they are told.
    assert validities([None, None, None], [False, True, False], 60) == [60, None, None]
    assert validities([None, 10], [False, True], 60) == [None, 10]


statuses = st.sampled_from(list(Status))


@given(st.lists(st.tuples(statuses, st.booleans()), min_size=1, max_size=6), st.data())
def test_decisions_hold_for_any_cascade(
    spec: list[tuple[Status, bool]], data: st.DataObject
) -> None:
    chans = [Ch(i, f"c{i}", s, r) for i, (s, r) in enumerate(spec)]
    changed = data.draw(st.sampled_from(chans))
    new = data.draw(statuses)
    decision = decide(changed, new, chans, group_given=True)
    pending = [c for c in chans if c is not changed and c.status == Status.PENDING]
    if new in FAILURES and not changed.required:
        unrequired = [c for c in pending if not c.required]
        assert decision.next is (unrequired[0] if unrequired else None)
        assert decision.skipped == ()
    elif new in SUCCESS:
        assert decision.next is None
        assert list(decision.skipped) == pending
        assert decision.group_delivered
    else:
        assert decision.next is None and decision.skipped == ()
    assert changed is not decision.next and changed not in decision.skipped


@given(st.lists(st.booleans(), max_size=8))
def test_exactly_one_unrequired_channel_starts(required: list[bool]) -> None:
    started = starts_at_once(required)
    unrequired_started = [
        i for i, (r, s) in enumerate(zip(required, started, strict=True)) if s and not r
    ]
    assert unrequired_started == ([required.index(False)] if False in required else [])
    assert all(s for r, s in zip(required, started, strict=True) if r)
