"""Twilio's wire format as the fake speaks it: signatures, segments, validation, error bodies.

Everything here follows `shared/reference/twilio.md`; nothing here holds state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from datetime import date, datetime
from email.utils import format_datetime
from typing import Final
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

API_VERSION: Final = "2010-04-01"
DEFAULT_ACCOUNT_SID: Final = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN: Final = "test-token"

# The sender Twilio's test credentials treat as valid; stands in for the number a Messaging
# Service would pick from its pool.
POOL_SENDER: Final = "+15005550006"
_MORE_INFO: Final = "https://www.twilio.com/docs/errors/"
PRICE_PER_SEGMENT: Final = 0.0075
# Twilio's own defaults for status callbacks (reference §3): connect 5 s, read 15 s.
CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 15.0

_E164: Final = re.compile(r"^(?:whatsapp:)?\+[1-9]\d{6,14}$")
# E.164, a channel address, a short code, or an alphanumeric sender ID (at least one letter).
_SENDER: Final = re.compile(
    r"^(?:(?:whatsapp:)?\+[1-9]\d{6,14}|\d{5,6}|(?=[A-Za-z0-9 ]*[A-Za-z])[A-Za-z0-9 ]{1,11})$"
)
_DAY: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")

DEFAULT_ERROR: Final = {"undelivered": 30003, "failed": 30008}
ASYNC_ERRORS: Final = {
    21610: "Attempt to send to unsubscribed recipient",
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30036: "Validity Period Expired",
    63016: "Failed to send freeform message because you are outside the allowed window.",
}

_FROM_MAGIC: Final = {
    "+15005550001": (
        21212,
        "The 'From' number +15005550001 is not a valid phone number, shortcode, "
        "or alphanumeric sender ID.",
    ),
    "+15005550007": (
        21606,
        "The 'From' phone number provided (+15005550007) is not a valid message-capable "
        "Twilio phone number for this destination.",
    ),
    "+15005550008": (
        21611,
        "This 'From' number has exceeded the maximum number of queued messages.",
    ),
}
_TO_MAGIC: Final = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (
        21612,
        "The 'To' phone number: +15005550002, is not currently reachable using the 'From' "
        "phone number via SMS.",
    ),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: +15005550003.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}

_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")


def twilio_signature(
    url: str, params: dict[str, list[str]] | dict[str, str], auth_token: str
) -> str:
    """Compute `X-Twilio-Signature` for a request to `url` carrying form `params` (reference §4)."""
    parts = [url]
    for name in sorted(params):
        value = params[name]
        # Repeated keys are deduplicated and sorted, exactly as twilio-python's validator does.
        for item in sorted({value} if isinstance(value, str) else set(value)):
            parts.append(name)
            parts.append(item)
    digest = hmac.digest(auth_token.encode(), "".join(parts).encode(), hashlib.sha1)
    return base64.b64encode(digest).decode("ascii")


def num_segments(body: str) -> int:
    """Count SMS segments: GSM-7 (160/153 septets) or, for any other character, UCS-2 (70/67)."""
    if not body:
        return 1
    septets = 0
    for char in body:
        if char in _GSM7_BASIC:
            septets += 1
        elif char in _GSM7_EXTENSION:
            septets += 2
        else:
            # Astral characters (emoji) take two UTF-16 code units.
            units = len(body.encode("utf-16-le")) // 2
            return 1 if units <= 70 else math.ceil(units / 67)
    return 1 if septets <= 160 else math.ceil(septets / 153)


def error(
    http_status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"{_MORE_INFO}{code}",
        "status": http_status,
    }
    return JSONResponse(body, status_code=http_status, headers=headers)


def not_found(path: str) -> JSONResponse:
    return error(404, 20404, f"The requested resource {path} was not found")


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return not_found(request.url.path)
    if status == 405:
        return error(405, 20004, "Method not allowed")
    return error(status, 20000 + status, "Internal Server Error")


def parse_form(content_type: str, body: bytes) -> dict[str, list[str]]:
    # Twilio reads only form bodies: a JSON body arrives as no parameters at all (hence 21604).
    if content_type.split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def basic_auth_matches(header: str, account_sid: str, token: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    username, _, password = decoded.partition(":")
    return hmac.compare_digest(username, account_sid) & hmac.compare_digest(password, token)


def validate(params: dict[str, list[str]]) -> tuple[int, str] | None:
    """Return Twilio's (code, message) for a create Twilio would refuse, else None."""
    to = first(params, "To")
    sender = first(params, "From")
    if not to:
        return 21604, "A 'To' phone number is required."
    if not sender and not first(params, "MessagingServiceSid"):
        return 21603, "A 'From' phone number is required."
    body = first(params, "Body") or ""
    if not body and not params.get("MediaUrl") and not first(params, "ContentSid"):
        return 21602, "Message body is required."
    if len(body) > 1600:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    variables = first(params, "ContentVariables")
    if variables is not None:
        # Code and wording [U]: Twilio documents ContentVariables as a JSON object string.
        try:
            decoded = json.loads(variables)
        except ValueError:
            decoded = None
        if not first(params, "ContentSid") or not isinstance(decoded, dict):
            return 21656, "The ContentVariables Parameter is invalid."
    if not _E164.match(to):
        return 21211, f"The 'To' number {to} is not a valid phone number."
    if sender:
        if not _SENDER.match(sender):
            return (
                21212,
                f"The 'From' number {sender} is not a valid phone number, shortcode, "
                "or alphanumeric sender ID.",
            )
        magic = _FROM_MAGIC.get(sender.removeprefix("whatsapp:"))
        if magic is not None:
            return magic
    return _TO_MAGIC.get(to.removeprefix("whatsapp:"))


def parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    if not _DAY.match(value):
        raise ValueError(value)
    return date.fromisoformat(value)


_last_stamp: tuple[int, str] = (-1, "")


def date_stamp(now: datetime) -> str:
    """``now`` as Twilio dates its messages (RFC 2822, whole seconds).

    Formatted once a second: email.utils' formatting was the fake's costliest single step
    in the SMS benchmark, where every message is stamped three times.
    """
    global _last_stamp
    second = int(now.timestamp())
    cached_second, text = _last_stamp
    if cached_second != second:
        text = format_datetime(now.replace(microsecond=0))
        _last_stamp = (second, text)
    return text
