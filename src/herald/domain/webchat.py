"""The web chat's rules: who a visitor is, and what the widget may say over its socket.

A visitor is identified by an id the site chooses (its own user id) or Herald makes (an
anonymous visitor). Either way the widget must also present a token, ``{exp}.{hmac}``: when it
expires (Unix seconds) and an HMAC of the bot, the visitor id and that time under the
project's webhook secret. A site computes it on its server for a logged-in user, so nobody
can read another person's chat by typing their id; a token that leaked (it travels in the
socket's URL) stops working once it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from herald.domain.signatures import constant_time_equal

_VISITOR_ID = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")
MAX_TEXT = 4000
MAX_ID = 2**63 - 1
RECEIPTS = ("delivered", "read")


class FrameError(ValueError):
    """A widget frame Herald cannot act on; ``code`` is sent back to the widget."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def valid_visitor_id(visitor_id: str) -> bool:
    """Ids are short and URL-safe, so they travel in query strings and data attributes."""
    return _VISITOR_ID.fullmatch(visitor_id) is not None


def visitor_token(secret: str, bot_id: str, visitor_id: str, expires: int) -> str:
    """The token that proves the widget may act as ``visitor_id`` on ``bot_id`` until
    ``expires`` (Unix seconds)."""
    message = f"webchat:{bot_id}:{visitor_id}:{expires}".encode()
    return f"{expires}.{hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()}"


class TokenCheck(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    EXPIRED = "expired"


def check_token(secret: str, bot_id: str, visitor_id: str, token: str, now: int) -> TokenCheck:
    """Whether a presented visitor token is ours for this visitor, and still valid at ``now``.

    The signature is checked before the time, so a forged token never learns it is "expired".
    """
    expires, _, _ = token.partition(".")
    if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        return TokenCheck.INVALID
    if not constant_time_equal(visitor_token(secret, bot_id, visitor_id, int(expires)), token):
        return TokenCheck.INVALID
    return TokenCheck.VALID if now < int(expires) else TokenCheck.EXPIRED


@dataclass(frozen=True, slots=True)
class VisitorText:
    """The visitor typed a message; ``client_id`` makes a resend after a reconnect harmless."""

    text: str
    client_id: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """The widget showed (``delivered``) or the visitor saw (``read``) message ``id``."""

    id: int
    status: str


def parse_frame(data: Any) -> VisitorText | Receipt:
    """One JSON frame from the widget, checked."""
    if not isinstance(data, dict):
        raise FrameError("A frame must be a JSON object with a 'type'.", "invalid_frame")
    kind = data.get("type")
    if kind == "text":
        text, client_id = data.get("text"), data.get("clientId")
        if not isinstance(text, str) or not text.strip():
            raise FrameError("A text frame needs a non-empty 'text'.", "empty_text")
        if "\x00" in text:  # no database column takes it (PostgreSQL refuses NUL in text)
            raise FrameError("A message cannot contain the NUL character.", "invalid_text")
        if len(text) > MAX_TEXT:
            raise FrameError(f"A message may be at most {MAX_TEXT} characters.", "text_too_long")
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64 or "\x00" in client_id:
            raise FrameError(
                "A text frame needs a 'clientId' (1-64 characters) unique to the message.",
                "invalid_client_id",
            )
        return VisitorText(text.strip(), client_id)
    if kind == "receipt":
        message_id, status = data.get("id"), data.get("status")
        if (
            not isinstance(message_id, int)
            or isinstance(message_id, bool)
            or not 1 <= message_id <= MAX_ID  # a larger one fits no database
        ):
            raise FrameError("A receipt needs the message's integer 'id'.", "invalid_receipt")
        if status not in RECEIPTS:
            raise FrameError("A receipt's 'status' is 'delivered' or 'read'.", "invalid_receipt")
        return Receipt(message_id, status)
    raise FrameError(f"Unknown frame type {kind!r}; use 'text' or 'receipt'.", "invalid_frame")


def receipt_moves(current: str | None, new: str) -> bool:
    """Receipts only move forward: sent, then delivered, then read."""
    order = {None: 0, "sent": 1, "delivered": 2, "read": 3}
    return order.get(new, 0) > order.get(current, 0)
