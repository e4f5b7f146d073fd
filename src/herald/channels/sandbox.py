"""The sandbox SMS provider: behaves like Twilio's test credentials, sends nothing anywhere.

It answers Twilio's magic test numbers with Twilio's own error codes, and accepts anything
else as sent and delivered at once, so Herald can be tried without any account.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from herald.channels.base import OutboundMessage, PermanentError, Receipt, SenderAccount, Unlisted
from herald.domain.segments import count_segments

SANDBOX_FROM = "Sandbox"

_FROM_ERRORS = {
    "+15005550001": ("21212", "The 'From' number +15005550001 is not a valid phone number"),
    "+15005550007": (
        "21606",
        "The 'From' phone number provided is not a valid message-capable "
        "Twilio phone number for this destination/account",
    ),
    "+15005550008": (
        "21611",
        "This 'From' number has exceeded the maximum number of queued messages",
    ),
}
_TO_ERRORS = {
    "+15005550001": ("21211", "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": ("21612", "The 'To' phone number is not currently reachable via SMS"),
    "+15005550003": (
        "21408",
        "Permission to send an SMS has not been enabled for the region "
        "indicated by the 'To' number",
    ),
    "+15005550004": ("21610", "Attempt to send to unsubscribed recipient"),
    "+15005550009": ("21614", "'To' number is not a valid mobile number"),
}


def _error(code: str, message: str) -> PermanentError:
    return PermanentError(
        code, message, more_info=f"https://www.twilio.com/docs/errors/{code}", http_status=400
    )


class SandboxSms(Unlisted):
    """Twilio's test behaviour in process. Unlisted: nothing leaves the process, so an
    interrupted sandbox attempt never reached anyone."""

    name = "sandbox"

    async def send(self, account: SenderAccount, message: OutboundMessage) -> Receipt:
        if account.from_address in _FROM_ERRORS:
            raise _error(*_FROM_ERRORS[account.from_address])
        if message.to in _TO_ERRORS:
            raise _error(*_TO_ERRORS[message.to])
        return Receipt(
            provider_message_id="SM" + secrets.token_hex(16),
            provider_status="queued",
            num_segments=count_segments(message.body),
            price="0.00000",
            price_unit="USD",
            created_at=datetime.now(UTC),
            reports=("sent", "delivered"),
        )
