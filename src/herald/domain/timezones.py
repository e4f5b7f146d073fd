"""Which time zone a recipient lives in, and why Herald thinks so."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import PhoneNumberType, is_number_type_geographical
from phonenumbers import timezone as phone_timezones

from herald.domain.phones import InvalidPhone, parse_phone

UNKNOWN_ZONE = "Etc/Unknown"


class InvalidTimeZone(ValueError):
    """Not an IANA time zone name."""


@dataclass(frozen=True, slots=True)
class ResolvedZone:
    name: str
    source: str  # "explicit" | "phone" | "project default"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.name)


def load_zone(name: str) -> ZoneInfo:
    """An IANA zone by name, or InvalidTimeZone with a helpful message."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise InvalidTimeZone(
            f"{name!r} is not an IANA time zone name; use one like 'Europe/Moscow' or "
            "'America/New_York'"
        ) from e


@lru_cache(maxsize=65536)  # parsing dominates bulk imports; the answer never changes
def zone_of_phone(e164: str) -> str | None:
    """The number's time zone when its numbering data names exactly one, else None.

    US and Russian numbers usually map to several zones (or a whole country's list), so
    they fall through to the explicit or project default zone.
    """
    try:
        # The parse (and the number's type) is usually cached from accepting the number.
        phone = parse_phone(e164)
    except InvalidPhone:
        return _zone_of_unchecked(e164)
    if phone.number_type == PhoneNumberType.UNKNOWN:
        zones: Sequence[str] = ()  # Twilio's magic test numbers: no zone
    elif is_number_type_geographical(phone.number_type, phone.number.country_code or 0):
        zones = phone_timezones.time_zones_for_geographical_number(phone.number)
    else:
        zones = phone_timezones.time_zones_for_number(phone.number)
    return _single(zones)


def _zone_of_unchecked(text: str) -> str | None:
    try:
        number = phonenumbers.parse(text)
    except phonenumbers.NumberParseException:
        return None
    return _single(phone_timezones.time_zones_for_number(number))


def _single(zones: Sequence[str]) -> str | None:
    known = [z for z in zones if z != UNKNOWN_ZONE]
    return known[0] if len(known) == 1 else None


def resolve_zone(explicit: str | None, phone: str | None, project_default: str) -> ResolvedZone:
    """Explicit zone, else the phone number's single zone, else the project's default."""
    if explicit:
        load_zone(explicit)
        return ResolvedZone(explicit, "explicit")
    if phone:
        from_phone = zone_of_phone(phone)
        if from_phone:
            return ResolvedZone(from_phone, "phone")
    return ResolvedZone(project_default, "project default")
