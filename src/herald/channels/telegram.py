"""Telegram through the Bot API: ``sendMessage`` / ``sendPhoto`` with an inline URL button.

Credentials: ``botToken``. ``base_url`` defaults to https://api.telegram.org. The recipient
(``to``) is a chat id: a user id, a negative group id, or ``@channelname``.

Text goes out without ``parse_mode``, so it arrives exactly as written (no HTML or Markdown
to escape). Telegram sends no delivery reports: acceptance is all we learn.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from typing import Any

import httpx

# The same list of interface types as every other adapter's: names, not logic.
from herald.channels.base import (
    OutboundMessage,
    OutcomeUnknown,
    PermanentError,
    ProviderError,
    Receipt,
    SenderAccount,
    TransientError,
    Unlisted,
)
from herald.channels.http import HttpAdapter, transport_errors

DEFAULT_BASE_URL = "https://api.telegram.org"
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024

# The token sits in the URL path: anything but this shape could change the request's target.
_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_CHAT_ID = re.compile(r"^-?\d+$")
_USERNAME = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,}$")
# Wording Telegram uses when a user cannot be written to again (reference §2).
_BLOCKED = ("blocked by the user", "user is deactivated", "can't initiate conversation")


def _retry_after(response: httpx.Response, parameters: dict[str, Any]) -> float | None:
    value = parameters.get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0.0, float(value))
    header = response.headers.get("Retry-After")
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        return max(0.0, (parsed - datetime.now(parsed.tzinfo)).total_seconds())


def error_from_response(response: httpx.Response) -> ProviderError:
    """Turn a Bot API error (``{"ok":false,"error_code","description",...}``) into ours."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    status = response.status_code
    if not isinstance(data, dict) or not isinstance(data.get("description"), str):
        # Not the Bot API's shape: its words go nowhere a tenant reads them.
        data = {
            "description": f"Telegram answered HTTP {status} with a body that is not Telegram's"
        }
    parameters = data.get("parameters")
    if not isinstance(parameters, dict):
        parameters = {}
    description = str(data["description"])
    lowered = description.lower()
    retry_after = _retry_after(response, parameters)
    more_info: str | None = None
    kind: type[ProviderError] = PermanentError
    if status == 429:
        kind, code = TransientError, "telegram_throttled"
    elif status >= 500:
        kind, code = TransientError, f"telegram_{status}"
    elif status == 403:
        code = "telegram_blocked" if any(w in lowered for w in _BLOCKED) else "telegram_forbidden"
    elif status in (401, 404):
        code = "telegram_unauthorized"
    elif "chat not found" in lowered:
        code = "telegram_chat_not_found"
    elif "message is too long" in lowered:
        code = "text_too_long"
    elif "migrate_to_chat_id" in parameters:
        code = "telegram_chat_migrated"
        more_info = f"migrate_to_chat_id={parameters['migrate_to_chat_id']}"
    elif status == 400:
        code = "telegram_bad_request"
    else:
        code = f"telegram_{status}"
    return kind(code, description, more_info=more_info, http_status=status, retry_after=retry_after)


def _chat_id(to: str) -> int | str:
    to = to.strip()
    if _CHAT_ID.match(to):
        return int(to)
    if _USERNAME.match(to):
        return to
    raise PermanentError(
        "telegram_chat_not_found", f"{to!r} is not a Telegram chat id or @channel name."
    )


def _button(message: OutboundMessage) -> dict[str, Any] | None:
    if not (message.button_url and message.button_text):
        return None
    return {"inline_keyboard": [[{"text": message.button_text, "url": message.button_url}]]}


def _text(message: OutboundMessage) -> str:
    # A link without a label cannot be a button; keep it in the text rather than lose it.
    if message.button_url and not message.button_text:
        return f"{message.body}\n\n{message.button_url}" if message.body else message.button_url
    return message.body


class TelegramBot(HttpAdapter, Unlisted):
    """The Telegram adapter: JSON posts to ``{base}/bot{token}/{method}``.

    Unlisted: the Bot API cannot list the messages a bot has sent.
    """

    name = "telegram"

    async def send(self, account: SenderAccount, message: OutboundMessage) -> Receipt:
        """Send as a message or a photo (with caption) to the chat; raise ProviderError."""
        token = account.credentials.get("botToken", "")
        if not _TOKEN.match(token):
            raise PermanentError("telegram_unauthorized", "The sender's botToken is malformed.")
        chat_id = _chat_id(message.to)
        text = _text(message)
        markup = _button(message)
        if len(text) > MAX_TEXT_LENGTH:
            raise PermanentError(
                "text_too_long", f"Telegram takes at most {MAX_TEXT_LENGTH} characters of text."
            )
        base = f"{(account.base_url or DEFAULT_BASE_URL).rstrip('/')}/bot{token}"
        if not message.image_url:
            if not text.strip():
                raise PermanentError("text_empty", "Telegram cannot send an empty message.")
            return await self._call(
                f"{base}/sendMessage", {"chat_id": chat_id, "text": text}, markup
            )
        if len(text) <= MAX_CAPTION_LENGTH:
            photo: dict[str, Any] = {"chat_id": chat_id, "photo": message.image_url}
            if text:
                photo["caption"] = text
            return await self._call(f"{base}/sendPhoto", photo, markup)
        # Captions stop at 1024 characters: the photo goes first, then the whole text with
        # the button as its own message. The receipt names that second message. Should the
        # second call fail, a retry sends the photo again.
        await self._call(f"{base}/sendPhoto", {"chat_id": chat_id, "photo": message.image_url})
        return await self._call(f"{base}/sendMessage", {"chat_id": chat_id, "text": text}, markup)

    async def _call(
        self, url: str, payload: dict[str, Any], markup: dict[str, Any] | None = None
    ) -> Receipt:
        if markup is not None:
            payload = {**payload, "reply_markup": markup}
        with transport_errors("Telegram", reveal=False):
            response = await self._client.post(url, json=payload)
        if response.status_code != 200:
            raise error_from_response(response)
        try:
            data = response.json()
            result = data["result"]
            chat = result["chat"]["id"]
            message_id = result["message_id"]
            created = result.get("date")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            # A 200 means Telegram took the message; only its id is missing.
            raise OutcomeUnknown(
                "provider_bad_response", "Telegram answered 200 without a message id"
            ) from e
        return Receipt(
            provider_message_id=f"{chat}:{message_id}",
            provider_status="accepted",
            created_at=datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None,
        )
