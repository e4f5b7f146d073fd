"""The backoff Herald reads messages back on (lost reports, prices): bounded, never bunched."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.domain.polling import PollSchedule

TWELVE_HOURS = 12 * 3600.0


def test_on_time_polls_grow_by_the_factor_and_end_at_the_horizon() -> None:
    schedule = PollSchedule(600, TWELVE_HOURS)
    times, elapsed = [], 0.0
    while (offset := schedule.next_offset(elapsed)) is not None:
        times.append(offset)
        elapsed = offset
    assert times == [600, 2400, 9600, 38400, TWELVE_HOURS]
    assert schedule.polls() == 5


def test_a_price_schedule_asks_a_handful_of_times_a_day() -> None:
    # Before: every 5 minutes for a day, 288 requests per unpriced message.
    assert PollSchedule(60, 86400).polls() == 7


@given(
    st.floats(min_value=0.01, max_value=3600),
    st.floats(min_value=1, max_value=86400 * 2),
    st.floats(min_value=0, max_value=86400 * 2),
)
def test_the_next_poll_is_later_never_bunched_and_never_past_the_horizon(
    first: float, horizon: float, elapsed: float
) -> None:
    offset = PollSchedule(first, horizon).next_offset(elapsed)
    if elapsed >= horizon:
        assert offset is None
        return
    assert offset is not None
    assert elapsed < offset <= horizon
    # Either a full wait of at least `first`, or the last poll, at the horizon.
    assert offset - elapsed >= first * (1 - 1e-9) or offset == horizon


@given(st.floats(min_value=0.01, max_value=3600), st.floats(min_value=1, max_value=86400 * 2))
def test_any_run_of_polls_is_bounded(first: float, horizon: float) -> None:
    schedule = PollSchedule(first, horizon)
    assert schedule.polls() <= 2 + math.ceil(math.log(max(horizon / first, 1.0), 4))


@pytest.mark.parametrize(("first", "factor"), [(0, 4), (-1, 4), (60, 1)])
def test_a_schedule_that_would_never_end_is_refused(first: float, factor: float) -> None:
    with pytest.raises(ValueError):
        PollSchedule(first, 100, factor)
