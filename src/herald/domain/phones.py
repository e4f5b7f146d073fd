"""Phone number parsing: everything Herald stores is E.164."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberType


class InvalidPhone(ValueError):
    """The text is not a valid phone number."""


@dataclass(frozen=True, slots=True)
class ParsedPhone:
    """A number as ``phonenumbers`` understands it, with its (costly to compute) type."""

    e164: str
    number: PhoneNumber
    number_type: int


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    """What parsing a text gave: the number, or why it is not one."""

    phone: ParsedPhone | None
    problem: str | None


# Checks made in another process (a task file's reader) so this one need not parse again;
# bounded, oldest dropped first.
_known: dict[tuple[str, str | None], PhoneCheck] = {}
_KNOWN_LIMIT = 8192


def remember(checks: dict[tuple[str, str | None], PhoneCheck]) -> None:
    """Keep checks of (text, default region) made elsewhere, for the next parses of them."""
    _known.update(checks)
    for key in list(_known)[: max(0, len(_known) - _KNOWN_LIMIT)]:
        del _known[key]


def _digits_as_international(digits: str) -> PhoneCheck | None:
    """A number written in TWIN's way, E.164 without the ``+`` (79161234567), when valid.

    Only 11 digits or more, none leading with 0: national numbers are shorter (the US and
    India use 10 digits) or start with a trunk 0, so one is never read as another country's.
    """
    if len(digits) < 11 or not digits.isdigit() or digits[0] == "0":
        return None
    found = _parse("+" + digits, None)
    return found if found.phone is not None else None


def check(raw: str, default_region: str | None = None) -> PhoneCheck:
    """Parse ``raw`` without raising: the number, or the problem with it."""
    known = _known.get((raw, default_region))
    return known if known is not None else _parse(raw, default_region)


# Big enough to hold a whole import batch (1,000 destinations): accepting a message parses
# its number, and choosing its time zone needs the same parse moments later. Parsing and
# typing a number is the costliest step of a bulk import, so it is done once.
@lru_cache(maxsize=4096)
def _parse(raw: str, default_region: str | None) -> PhoneCheck:
    try:
        parsed = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException as e:
        if e.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            international = _digits_as_international(raw.strip())
            if international is not None:
                return international
            return PhoneCheck(
                None, f"{raw!r} has no country code; write it in E.164, like +14155550123"
            )
        return PhoneCheck(None, f"{raw!r} is not a phone number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    # number_type is UNKNOWN exactly when is_valid_number is false; computing the type
    # once serves both the validity check and the time-zone lookup.
    number_type = phonenumbers.number_type(parsed)
    if not phonenumbers.is_possible_number(parsed) or number_type == PhoneNumberType.UNKNOWN:
        # Twilio's magic test numbers (+1 500 555 00xx) are not valid in the numbering plan,
        # yet developers need them against Twilio's test credentials and our sandbox.
        if e164.startswith("+1500555"):
            return PhoneCheck(ParsedPhone(e164, parsed, number_type), None)
        return PhoneCheck(
            None,
            f"{raw!r} is not a valid phone number (checked against its country's numbering plan)",
        )
    return PhoneCheck(ParsedPhone(e164, parsed, number_type), None)


def parse_phone(raw: str, default_region: str | None = None) -> ParsedPhone:
    """Parse ``raw`` (with ``+`` or, given a default region, national format)."""
    if not raw.strip():
        raise InvalidPhone("the phone number is empty")
    outcome = check(raw, default_region)
    if outcome.phone is None:
        raise InvalidPhone(outcome.problem or f"{raw!r} is not a phone number")
    return outcome.phone


def to_e164(raw: str, default_region: str | None = None) -> str:
    """Parse ``raw`` (with ``+`` or, given a default region, national format) into E.164."""
    return parse_phone(raw, default_region).e164
