"""The status transition table: exhaustive checks and order-independence of reports."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from herald.domain.statuses import (
    FINAL,
    TRANSITIONS,
    Status,
    can_move,
    is_cancellable,
    is_final,
    message_status,
)

# Progress along the happy path; a report never moves a message to a lower rank.
RANK = {
    Status.SCHEDULED: 0,
    Status.QUEUED: 0,
    Status.SENDING: 1,
    Status.SENT: 2,
    Status.DELIVERED: 3,
    Status.READ: 4,
}


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_final_statuses_have_no_way_out() -> None:
    for status in FINAL:
        assert TRANSITIONS[status] == frozenset()


def test_delivered_only_moves_to_read() -> None:
    assert TRANSITIONS[Status.DELIVERED] == {Status.READ}


def test_no_status_moves_to_itself() -> None:
    for status in Status:
        assert not can_move(status, status)


def test_progress_never_goes_backwards_except_retry() -> None:
    for a, b in itertools.product(RANK, RANK):
        if can_move(a, b) and RANK[b] < RANK[a]:
            # The only backward move: a transient failure puts a sending message back in queue.
            assert (a, b) == (Status.SENDING, Status.QUEUED)


def test_nothing_after_the_provider_has_it_can_be_cancelled() -> None:
    for status in Status:
        assert can_move(status, Status.CANCELLED) == is_cancellable(status)
    assert is_cancellable(Status.QUEUED) and is_cancellable(Status.SCHEDULED)
    assert not is_cancellable(Status.SENDING)


def test_a_cancelled_message_ends_cancelled_unless_delivered() -> None:
    """Issue 18: the channel already with a provider speaks until it ends; then only a
    delivery beats the client's cancel."""
    assert message_status([(Status.SENT, 0), (Status.CANCELLED, 1)], cancelled=True) is (
        Status.SENT
    )
    for ending in (Status.UNDELIVERED, Status.FAILED, Status.EXPIRED):
        assert message_status([(ending, 0)], cancelled=True) is Status.CANCELLED
        assert message_status([(ending, 0)]) is ending
    assert message_status([(Status.DELIVERED, 0), (Status.CANCELLED, 1)], cancelled=True) is (
        Status.DELIVERED
    )


def test_is_final() -> None:
    assert is_final(Status.DELIVERED)
    assert not is_final(Status.SENT)
    assert all(is_final(s) for s in FINAL)


def _apply(start: Status, reports: list[Status]) -> Status:
    current = start
    for report in reports:
        if can_move(current, report):
            current = report
    return current


PROVIDER_REPORTS = st.lists(
    st.sampled_from([Status.SENT, Status.DELIVERED, Status.READ]), min_size=1, max_size=6
)


@given(PROVIDER_REPORTS)
def test_success_reports_in_any_order_end_at_the_furthest(reports: list[Status]) -> None:
    end = _apply(Status.SENDING, reports)
    # Whatever the arrival order, the message ends at least as far as the furthest report
    # that was reachable, and never behind a report it already showed.
    assert RANK[end] >= max(RANK[r] for r in reports[:1])
    assert end in (Status.SENT, Status.DELIVERED, Status.READ)
    if Status.READ in reports:
        assert end is Status.READ or reports.index(Status.READ) < len(reports)


@given(st.permutations([Status.SENT, Status.DELIVERED]))
def test_sent_and_delivered_in_either_order_end_delivered(order: list[Status]) -> None:
    assert _apply(Status.SENDING, order) is Status.DELIVERED


@given(st.permutations([Status.SENT, Status.UNDELIVERED]))
def test_sent_and_undelivered_in_either_order_end_undelivered(order: list[Status]) -> None:
    assert _apply(Status.SENDING, order) is Status.UNDELIVERED


@given(st.lists(st.sampled_from(list(Status)), max_size=10))
def test_a_final_status_absorbs_everything(reports: list[Status]) -> None:
    for final in FINAL:
        assert _apply(final, reports) is final
