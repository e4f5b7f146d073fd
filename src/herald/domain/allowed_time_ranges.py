"""Allowed time ranges ("quiet hours"): when a message may be handed to a provider.

Ranges are wall-clock times in the recipient's zone, ``[start, end]`` inclusive of both ends
as TWIN writes them (``["09:00:00", "20:59:59"]``); a range whose end is before its start
crosses midnight (``["22:00:00", "06:00:00"]``). The arithmetic is done on local wall-clock
dates and converted back through the zone, so DST changes are honoured: a range start that
does not exist that day (skipped by a spring-forward) begins at the first instant after the
gap, and an ambiguous one (repeated by a fall-back) at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class InvalidTimeRange(ValueError):
    """A range is not two ``HH:MM:SS`` times."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def contains(self, t: time) -> bool:
        if self.crosses_midnight:
            return t >= self.start or t <= self.end
        return self.start <= t <= self.end


def parse_ranges(raw: list[list[str]]) -> list[TimeRange]:
    """TWIN's ``[["HH:MM:SS", "HH:MM:SS"], ...]``; seconds may be omitted."""
    ranges = []
    for i, pair in enumerate(raw):
        if len(pair) != 2:
            raise InvalidTimeRange(
                f'range {i} must have a start and an end, like ["09:00:00", "21:00:00"]'
            )
        try:
            start, end = (time.fromisoformat(v) for v in pair)
        except (TypeError, ValueError) as e:
            raise InvalidTimeRange(f"range {i} has a time that is not HH:MM:SS: {pair}") from e
        if start.tzinfo or end.tzinfo:
            raise InvalidTimeRange(f"range {i}: times are local to the recipient, without offset")
        if start == end:
            raise InvalidTimeRange(f"range {i} starts and ends at the same time")
        ranges.append(TimeRange(start, end))
    return ranges


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _local(day: date, t: time, zone: ZoneInfo) -> datetime:
    """The first instant at which ``zone``'s wall clock reads ``day t`` or later.

    Normally that is simply ``day t`` in the zone (its first occurrence when a fall-back
    repeats it). When a spring-forward skips it, the clock never reads it; the range then
    opens at the end of the gap, found by bisecting between the two offsets' readings.
    """
    naive = datetime.combine(day, t)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == naive:
        return first
    low, high = sorted((first, naive.replace(tzinfo=zone, fold=1).astimezone(UTC)))
    while high - low > timedelta(microseconds=1):  # ~32 steps over a gap of an hour
        middle = low + (high - low) / 2
        if _wall(middle, zone) >= naive:
            high = middle
        else:
            low = middle
    return high


def is_allowed(at: datetime, ranges: list[TimeRange], zone: ZoneInfo) -> bool:
    """Whether instant ``at`` falls in one of the ranges, in ``zone``'s wall-clock time."""
    if not ranges:
        return True
    local = at.astimezone(zone).time().replace(tzinfo=None)
    return any(r.contains(local) for r in ranges)


def next_allowed(at: datetime, ranges: list[TimeRange], zone: ZoneInfo) -> datetime:
    """The first instant at or after ``at`` inside a range (``at`` itself when allowed)."""
    if is_allowed(at, ranges, zone):
        return at
    today = at.astimezone(zone).date()
    best: datetime | None = None
    # Every range opens once a day, so the next opening is within the next two local days
    # (a range skipped by a DST gap pushes it one more day).
    for offset in range(0, 4):
        day = today + timedelta(days=offset)
        for r in ranges:
            opening = _local(day, r.start, zone)
            # A range lying wholly inside a spring-forward gap does not happen that day.
            if (
                opening >= at
                and (best is None or opening < best)
                and is_allowed(opening, ranges, zone)
            ):
                best = opening
        if best is not None:
            break
    assert best is not None, "a range always opens within four days"
    return best.astimezone(UTC)
