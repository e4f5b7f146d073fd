"""Phone number parsing: everything Herald stores is E.164."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    """The text is not a valid phone number."""


def to_e164(raw: str, default_region: str | None = None) -> str:
    """Parse ``raw`` (with ``+`` or, given a default region, national format) into E.164."""
    text = raw.strip()
    if not text:
        raise InvalidPhone("the phone number is empty")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as e:
        if e.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidPhone(
                f"{raw!r} has no country code; write it in E.164, like +15551234567"
            ) from e
        raise InvalidPhone(f"{raw!r} is not a phone number") from e
    if not phonenumbers.is_possible_number(parsed) or not phonenumbers.is_valid_number(parsed):
        # Twilio's magic test numbers (+1 500 555 00xx) are not valid in the numbering plan,
        # yet developers need them against Twilio's test credentials and our sandbox.
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if e164.startswith("+1500555"):
            return e164
        raise InvalidPhone(
            f"{raw!r} is not a valid phone number (checked against its country's numbering plan)"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
