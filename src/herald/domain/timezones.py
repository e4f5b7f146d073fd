"""Which time zone a recipient lives in, and why Herald thinks so."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

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
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_timezones.time_zones_for_number(number) if z != UNKNOWN_ZONE]
    return zones[0] if len(zones) == 1 else None


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
