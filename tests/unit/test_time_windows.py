"""Allowed time ranges: exact cases around midnight and DST, and properties (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.domain.allowed_time_ranges import (
    InvalidTimeRange,
    TimeRange,
    is_allowed,
    next_allowed,
    parse_ranges,
)
from herald.domain.timezones import InvalidTimeZone, load_zone, resolve_zone, zone_of_phone

NY = ZoneInfo("America/New_York")
MSK = ZoneInfo("Europe/Moscow")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # DST shifts by 30 minutes
ZONES = [NY, MSK, LONDON, LORD_HOWE, ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata")]
DAY = [["09:00:00", "21:00:00"]]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_inside_a_range_is_now() -> None:
    at = utc(2026, 6, 1, 12, 0)
    assert next_allowed(at, parse_ranges(DAY), MSK) == at


def test_night_in_moscow_moves_to_nine_local() -> None:
    at = utc(2026, 1, 1, 20, 30)  # 23:30 in Moscow
    assert next_allowed(at, parse_ranges(DAY), MSK) == utc(2026, 1, 2, 6, 0)


def test_range_crossing_midnight() -> None:
    ranges = parse_ranges([["22:00:00", "06:00:00"]])
    assert is_allowed(utc(2026, 1, 1, 23, 0), ranges, ZoneInfo("UTC"))
    assert is_allowed(utc(2026, 1, 1, 5, 59), ranges, ZoneInfo("UTC"))
    assert not is_allowed(utc(2026, 1, 1, 12, 0), ranges, ZoneInfo("UTC"))
    assert next_allowed(utc(2026, 1, 1, 12, 0), ranges, ZoneInfo("UTC")) == utc(2026, 1, 1, 22)


def test_several_ranges_pick_the_next_opening() -> None:
    ranges = parse_ranges([["00:00:00", "03:59:59"], ["06:00:00", "13:59:59"]])
    assert next_allowed(utc(2026, 1, 1, 4, 30), ranges, ZoneInfo("UTC")) == utc(2026, 1, 1, 6)
    assert next_allowed(utc(2026, 1, 1, 15), ranges, ZoneInfo("UTC")) == utc(2026, 1, 2, 0)


def test_end_second_is_inclusive() -> None:
    ranges = parse_ranges([["09:00:00", "20:59:59"]])
    assert is_allowed(utc(2026, 1, 1, 20, 59, 59), ranges, ZoneInfo("UTC"))
    assert not is_allowed(utc(2026, 1, 1, 21, 0, 0), ranges, ZoneInfo("UTC"))


def test_opening_inside_a_spring_forward_gap_opens_when_the_gap_ends() -> None:
    # 2026-03-08: New York clocks jump from 02:00 EST to 03:00 EDT; 02:30 never happens.
    ranges = parse_ranges([["02:30:00", "05:00:00"]])
    at = utc(2026, 3, 8, 5, 0)  # 00:00 EST
    assert next_allowed(at, ranges, NY) == utc(2026, 3, 8, 7, 0)  # 03:00 EDT


def test_opening_in_a_repeated_hour_uses_its_first_occurrence() -> None:
    # 2026-11-01: New York repeats 01:00-02:00 (EDT, then EST).
    ranges = parse_ranges([["01:30:00", "01:45:00"]])
    at = utc(2026, 11, 1, 4, 0)  # 00:00 EDT
    assert next_allowed(at, ranges, NY) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT


def test_nine_am_stays_nine_am_across_a_dst_change() -> None:
    ranges = parse_ranges(DAY)
    before = next_allowed(utc(2026, 3, 27, 23, 0), ranges, LONDON)  # Saturday 09:00 GMT
    after = next_allowed(utc(2026, 3, 29, 23, 0), ranges, LONDON)  # Monday 09:00 BST
    assert before.astimezone(LONDON).time() == time(9) == after.astimezone(LONDON).time()
    assert before == utc(2026, 3, 28, 9, 0)
    assert after == utc(2026, 3, 30, 8, 0)


def test_a_range_inside_a_dst_gap_is_skipped_that_day() -> None:
    ranges = parse_ranges([["02:10:00", "02:40:00"]])  # never happens on 2026-03-08 in NY
    result = next_allowed(utc(2026, 3, 8, 5, 0), ranges, NY)
    assert result == utc(2026, 3, 9, 6, 10)  # 02:10 EDT the next day


@pytest.mark.parametrize(
    "raw",
    [
        [["09:00:00"]],
        [["9am", "5pm"]],
        [["09:00:00", "09:00:00"]],
        [["25:00:00", "26:00:00"]],
        [["09:00:00+03:00", "10:00:00"]],
    ],
)
def test_bad_ranges_are_refused(raw: list[list[str]]) -> None:
    with pytest.raises(InvalidTimeRange):
        parse_ranges(raw)


def test_seconds_are_optional() -> None:
    assert parse_ranges([["09:00", "21:00"]]) == [TimeRange(time(9), time(21))]


times = st.times().map(lambda t: t.replace(microsecond=0))
range_lists = st.lists(
    st.tuples(times, times).filter(lambda p: p[0] != p[1]), min_size=1, max_size=3
).map(lambda ps: [TimeRange(a, b) for a, b in ps])
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(instants, range_lists, st.sampled_from(ZONES))
def test_next_allowed_is_allowed_and_not_before(
    at: datetime, ranges: list[TimeRange], zone: ZoneInfo
) -> None:
    result = next_allowed(at, ranges, zone)
    assert result >= at
    assert result - at < timedelta(days=3)
    assert is_allowed(result, ranges, zone)


@settings(max_examples=150, deadline=None)
@given(instants, range_lists, st.sampled_from(ZONES))
def test_nothing_allowed_is_skipped(at: datetime, ranges: list[TimeRange], zone: ZoneInfo) -> None:
    result = next_allowed(at, ranges, zone)
    probe = at
    step = timedelta(minutes=7)
    while probe + step < result:
        probe += step
        assert not is_allowed(probe, ranges, zone), (probe, result)


def test_zone_from_phone_only_when_unambiguous() -> None:
    assert zone_of_phone("+33612345678") == "Europe/Paris"
    assert zone_of_phone("+79161234567") is None  # Russia spans eleven zones
    assert zone_of_phone("+12025550123") in (None, "America/New_York")


def test_zone_resolution_order_and_reason() -> None:
    assert resolve_zone("Asia/Tokyo", "+33612345678", "UTC").source == "explicit"
    paris = resolve_zone(None, "+33612345678", "UTC")
    assert (paris.name, paris.source) == ("Europe/Paris", "phone")
    russia = resolve_zone(None, "+79161234567", "Europe/Moscow")
    assert (russia.name, russia.source) == ("Europe/Moscow", "project default")
    toll_free = resolve_zone(None, "+18005550199", "America/Chicago")  # spans every US zone
    assert (toll_free.name, toll_free.source) == ("America/Chicago", "project default")
    explicit = resolve_zone("America/Denver", "+18005550199", "UTC")
    assert (explicit.name, explicit.source) == ("America/Denver", "explicit")


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(InvalidTimeZone):
        load_zone("Mars/Olympus_Mons")
    with pytest.raises(InvalidTimeZone):
        resolve_zone("Not/AZone", None, "UTC")
