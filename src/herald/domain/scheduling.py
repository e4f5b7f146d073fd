"""When a message is due: its sendAt, allowed time ranges and validity period combined."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from herald.domain.allowed_time_ranges import TimeRange, next_allowed

MAX_VALIDITY_MINUTES = 7 * 24 * 60


class InvalidSchedule(ValueError):
    """sendAt or validityPeriod cannot be used; ``code`` says which rule it broke."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def parse_send_at(value: Any, *, now: datetime, horizon: timedelta) -> datetime | None:
    """sendAt as an aware UTC instant: ISO 8601 with an offset, or the PHP SDK's object.

    TWIN's PHP SDK serialises a DateTimeImmutable as
    ``{"date": "2024-05-01 10:00:00.000000", "timezone_type": 3, "timezone": "Europe/Moscow"}``.
    A time in the past means "now"; further ahead than ``horizon`` is refused.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        when = _from_php(value)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as e:
            raise InvalidSchedule(
                f"sendAt {value!r} is not an ISO 8601 date-time, e.g. 2026-05-01T10:00:00+03:00",
                "invalid_send_at",
            ) from e
        if when.tzinfo is None:
            raise InvalidSchedule(
                f"sendAt {value!r} has no UTC offset; add one, e.g. 2026-05-01T10:00:00+03:00",
                "invalid_send_at",
            )
    else:
        raise InvalidSchedule("sendAt must be an ISO 8601 string", "invalid_send_at")
    when = when.astimezone(UTC)
    if when > now + horizon:
        raise InvalidSchedule(
            f"sendAt is more than {horizon.days} days ahead; Herald keeps scheduled messages "
            f"for at most that long",
            "send_at_too_far",
        )
    return max(when, now)


# PHP's DateTime with timezone_type 2 carries a zone abbreviation, each a fixed UTC offset
# (hours) in PHP's own table. The common, unambiguous ones; IST and the like mean different
# offsets in different countries, so they are refused rather than guessed.
_PHP_ABBREVIATIONS: dict[str, float] = {
    "Z": 0, "UT": 0, "UTC": 0, "GMT": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1,
    "CEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "MSD": 4, "SAMT": 4, "YEKT": 5, "OMST": 6,
    "KRAT": 7, "IRKT": 8, "AWST": 8, "YAKT": 9, "JST": 9, "KST": 9, "ACST": 9.5,
    "VLAT": 10, "AEST": 10, "AEDT": 11, "MAGT": 11, "PETT": 12, "NZST": 12, "NZDT": 13,
    "HST": -10, "AKST": -9, "AKDT": -8, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6,
    "CST": -6, "CDT": -5, "EST": -5, "EDT": -4,
}  # fmt: skip


def _from_php(value: dict[str, Any]) -> datetime:
    try:
        naive = datetime.strptime(str(value["date"]), "%Y-%m-%d %H:%M:%S.%f")
        zone = str(value.get("timezone") or "UTC")
        if zone.startswith(("+", "-")):
            hours, minutes = zone[1:].split(":")
            sign = 1 if zone[0] == "+" else -1
            offset = timedelta(hours=int(hours), minutes=int(minutes)) * sign
            return naive.replace(tzinfo=UTC) - offset
        if value.get("timezone_type") == 2:
            return naive.replace(tzinfo=UTC) - timedelta(hours=_PHP_ABBREVIATIONS[zone.upper()])
        return naive.replace(tzinfo=ZoneInfo(zone))
    except (KeyError, ValueError) as e:
        raise InvalidSchedule(
            "sendAt object must look like {'date': 'YYYY-MM-DD HH:MM:SS.ffffff', "
            "'timezone': 'Europe/Moscow'} (an IANA zone, a +03:00 offset, or an unambiguous "
            "abbreviation such as UTC or MSK)",
            "invalid_send_at",
        ) from e


def validity_end(start: datetime, minutes: int | None) -> datetime | None:
    """When a message stops being worth sending, ``minutes`` after it became due."""
    if minutes is None:
        return None
    if not 1 <= minutes <= MAX_VALIDITY_MINUTES:
        raise InvalidSchedule(
            f"validityPeriod must be between 1 and {MAX_VALIDITY_MINUTES} minutes",
            "invalid_validity_period",
        )
    return start + timedelta(minutes=minutes)


@dataclass(frozen=True, slots=True)
class Due:
    at: datetime  # when the dispatcher should look at it
    held_outside_allowed_ranges: bool


def first_due(
    earliest: datetime, ranges: list[TimeRange], zone: ZoneInfo, expires_at: datetime | None
) -> Due:
    """The first allowed instant at or after ``earliest``, but never after the validity end.

    A message whose next allowed time is past its validity comes due at the validity end,
    where the dispatcher expires it.
    """
    allowed = next_allowed(earliest, ranges, zone)
    if expires_at is not None and allowed >= expires_at:
        return Due(expires_at, allowed > earliest)
    return Due(allowed, allowed > earliest)
