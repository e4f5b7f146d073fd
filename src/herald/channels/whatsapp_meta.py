"""WhatsApp through Meta's Cloud API (Graph API), and the pure helpers for its webhook.

Credentials: ``accessToken`` (sending), ``appSecret`` (webhook signatures), ``verifyToken``
(webhook subscription). ``account_id`` is the phone number id; ``base_url`` defaults to
https://graph.facebook.com/v21.0 (the version is part of the base URL).

What is sent, in order of precedence: an approved template (``message.template``), an
interactive CTA-URL button (button URL and text), a file (TWIN's ``mediaUrl``: image, video,
audio or document, named by ``documentFilename``) or an image with caption, or text. Free text
is only allowed within 24 hours of the person's last message; enforcing that is the caller's
job, Meta's 131047 is the backstop. Delivery reports arrive on the webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeGuard, get_args
from urllib.parse import urlsplit

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
from herald.domain.signatures import constant_time_equal

DEFAULT_BASE_URL = "https://graph.facebook.com/v21.0"
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_INTERACTIVE_BODY_LENGTH = 1024
MAX_BUTTON_TEXT_LENGTH = 20

# Meta: rate limits (4 app, 80007 account, 130429 throughput, 131056 pair) and the codes it
# documents as temporary (1 unknown, 2 service, 131000 something went wrong, 131016 service
# unavailable, 133004 server temporarily unavailable).
TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 133004})
AUTH_CODES = frozenset({0, 190})
OUTSIDE_WINDOW_CODE = 131047

_PHONE_NUMBER_ID = re.compile(r"^\d{1,32}$")
_URL = re.compile(r"https?://", re.IGNORECASE)
StatusName = Literal["sent", "delivered", "read", "failed"]
# A tuple, not a set: a webhook may put a list where the status goes, which a set
# cannot even look up.
_STATUSES: tuple[str, ...] = get_args(StatusName)
# The longest message id (a delivery's provider_message_id) and WhatsApp id (a phone
# number's digits, kept as an address) a webhook item may carry.
MAX_WAMID, MAX_WA_ID = 100, 32


def error_from_response(response: httpx.Response) -> ProviderError:
    """Turn a Graph API error (``{"error":{"code","message",...}}``) into ours."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    error = data.get("error") if isinstance(data, dict) else None
    status = response.status_code
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        # Not the Graph API's shape: its words go nowhere a tenant reads them.
        error = {"message": f"Meta answered HTTP {status} with a body that is not Meta's"}
    raw_code = error.get("code")
    meta_code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    message = str(error["message"])
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    info = [f"Meta error {meta_code}" if meta_code is not None else f"HTTP {status}"]
    if error.get("error_subcode") is not None:
        info.append(f"subcode {error['error_subcode']}")
    if details:
        info.append(f"details: {details}")
    if error.get("fbtrace_id"):
        info.append(f"fbtrace_id: {error['fbtrace_id']}")
    code = str(meta_code) if meta_code is not None else f"http_{status}"
    kind: type[ProviderError]
    if status == 401 or meta_code in AUTH_CODES:
        kind, code = PermanentError, "whatsapp_auth"
    elif meta_code == OUTSIDE_WINDOW_CODE:
        kind, code = PermanentError, "whatsapp_outside_window"
    elif status == 429 or status >= 500 or meta_code in TRANSIENT_CODES:
        kind = TransientError
    else:
        kind = PermanentError
    retry_after: float | None = None
    header = response.headers.get("Retry-After")
    if header is not None:
        try:
            retry_after = max(0.0, float(header))
        except ValueError:
            retry_after = None
    return kind(
        code, message, more_info="; ".join(info), http_status=status, retry_after=retry_after
    )


def _recipient(to: str) -> str:
    digits = to.strip().removeprefix("whatsapp:").removeprefix("+")
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise PermanentError("invalid_phone", f"{to!r} is not a phone number in E.164.")
    return digits


def _too_long(what: str, limit: int) -> PermanentError:
    return PermanentError("text_too_long", f"WhatsApp takes at most {limit} characters of {what}.")


def _template_parameters(variables: dict[str, str]) -> list[dict[str, str]]:
    # Positional ({{1}}, {{2}}) templates take their values in number order; templates with
    # named parameters take them by name.
    numbered = sorted((int(k), v) for k, v in variables.items() if k.isdigit())
    named = [(k, v) for k, v in variables.items() if not k.isdigit()]
    parameters = [{"type": "text", "text": value} for _, value in numbered]
    parameters += [{"type": "text", "parameter_name": k, "text": v} for k, v in named]
    return parameters


_IMAGE = re.compile(r"\.(jpe?g|png|webp)$", re.IGNORECASE)
_VIDEO = re.compile(r"\.(mp4|3gpp?)$", re.IGNORECASE)
_AUDIO = re.compile(r"\.(aac|amr|mp3|m4a|ogg|opus)$", re.IGNORECASE)


def _media(message: OutboundMessage) -> tuple[str, dict[str, Any]]:
    """TWIN's mediaUrl as Meta's media object: its kind from the file's extension.

    A ``documentFilename`` makes it a document (the name the person sees); a file of no
    known kind is sent as a document too, which WhatsApp shows whatever it is.
    """
    link = message.media_url or ""
    path = urlsplit(link).path
    if message.document_filename is None:
        for kind, pattern in (("image", _IMAGE), ("video", _VIDEO), ("audio", _AUDIO)):
            if pattern.search(path):
                return kind, {"link": link}
    document: dict[str, Any] = {"link": link}
    name = message.document_filename or path.rsplit("/", 1)[-1]
    if name:
        document["filename"] = name
    return "document", document


def build_payload(message: OutboundMessage) -> dict[str, Any]:
    """The ``/messages`` JSON body for ``message`` (reference §4); PermanentError if it can't be."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": _recipient(message.to),
    }
    body = message.body
    template = message.template
    if template is not None:
        if not template.name or not template.language:
            raise PermanentError(
                "template_incomplete", "A WhatsApp template needs its name and language."
            )
        content: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
        if template.namespace:
            content["namespace"] = template.namespace
        components: list[dict[str, Any]] = []
        if message.media_url:
            # A template's media header takes its file as a parameter.
            kind, media = _media(message)
            components.append({"type": "header", "parameters": [{"type": kind, kind: media}]})
        if template.variables:
            components.append(
                {"type": "body", "parameters": _template_parameters(template.variables)}
            )
        if components:
            content["components"] = components
        return {**payload, "type": "template", "template": content}
    if message.button_url and message.button_text:
        if len(message.button_text) > MAX_BUTTON_TEXT_LENGTH:
            raise _too_long("button text", MAX_BUTTON_TEXT_LENGTH)
        if not body.strip():
            raise PermanentError("text_empty", "A WhatsApp button needs a message text.")
        if len(body) > MAX_INTERACTIVE_BODY_LENGTH:
            raise _too_long("text with a button", MAX_INTERACTIVE_BODY_LENGTH)
        interactive: dict[str, Any] = {
            "type": "cta_url",
            "body": {"text": body},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": message.button_text, "url": message.button_url},
            },
        }
        if message.image_url:
            interactive["header"] = {"type": "image", "image": {"link": message.image_url}}
        return {**payload, "type": "interactive", "interactive": interactive}
    if message.button_url:
        # A link without a label cannot be a button; keep it in the text rather than lose it.
        body = f"{body}\n\n{message.button_url}" if body else message.button_url
    if message.media_url or message.image_url:
        if len(body) > MAX_CAPTION_LENGTH:
            raise _too_long("caption", MAX_CAPTION_LENGTH)
        kind, media = (
            _media(message) if message.media_url else ("image", {"link": message.image_url})
        )
        if body and kind != "audio":  # audio is the one kind without a caption
            media["caption"] = body
        return {**payload, "type": kind, kind: media}
    if not body.strip():
        raise PermanentError("text_empty", "WhatsApp cannot send an empty message.")
    if len(body) > MAX_TEXT_LENGTH:
        raise _too_long("text", MAX_TEXT_LENGTH)
    text = {"body": body, "preview_url": bool(_URL.search(body))}
    return {**payload, "type": "text", "text": text}


class MetaWhatsApp(HttpAdapter, Unlisted):
    """The Cloud API adapter: JSON posts to ``{base}/{phone_number_id}/messages``.

    Unlisted: the Cloud API cannot list sent messages; the webhook is the record.
    """

    name = "meta-whatsapp"

    async def send(self, account: SenderAccount, message: OutboundMessage) -> Receipt:
        """Post the message to ``/{phone_number_id}/messages``; the receipt holds the wamid."""
        token = account.credentials.get("accessToken", "")
        if not token:
            raise PermanentError("whatsapp_auth", "The sender has no accessToken.")
        phone_number_id = account.account_id or ""
        if not _PHONE_NUMBER_ID.match(phone_number_id):
            raise PermanentError(
                "whatsapp_config_invalid", "The sender's phone number id must be digits."
            )
        payload = build_payload(message)
        url = f"{(account.base_url or DEFAULT_BASE_URL).rstrip('/')}/{phone_number_id}/messages"
        with transport_errors("WhatsApp"):
            response = await self._client.post(
                url, json=payload, headers={"Authorization": f"Bearer {token}"}
            )
        if response.status_code != 200:
            raise error_from_response(response)
        try:
            wamid = str(response.json()["messages"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError) as e:
            # A 200 means Meta took the message; only its id is missing.
            raise OutcomeUnknown(
                "provider_bad_response", "WhatsApp answered 200 without a message id"
            ) from e
        return Receipt(provider_message_id=wamid, provider_status="accepted")


# -- webhook helpers (pure) ------------------------------------------------------------------


# A field list, alike in shape only with channels.base's records.
@dataclass(frozen=True, slots=True)
class MetaStatus:
    """One delivery report from a webhook: sent, delivered, read or failed."""

    wamid: str
    status: StatusName
    timestamp: datetime
    recipient_id: str | None
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None
    phone_number_id: str | None = None


@dataclass(frozen=True, slots=True)
class MetaInbound:
    """One message a person sent to the business number (it opens the 24-hour window)."""

    wa_id: str
    text: str | None
    timestamp: datetime
    wamid: str | None = None
    kind: str | None = None
    phone_number_id: str | None = None


def verify_subscription(
    mode: str | None, token: str | None, challenge: str | None, expected_token: str
) -> str | None:
    """The challenge to echo for a valid ``hub.mode=subscribe`` GET, else None (answer 403)."""
    if mode != "subscribe" or token is None or challenge is None or not expected_token:
        return None
    if not constant_time_equal(expected_token, token):
        return None
    return challenge


def signature_for(app_secret: str, raw_body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``raw_body``."""
    digest = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(app_secret: str, raw_body: bytes, header_value: str | None) -> bool:
    """Whether ``X-Hub-Signature-256`` is the HMAC-SHA256 of the raw body under the app secret."""
    if not app_secret or not header_value:
        return False
    scheme, _, given = header_value.strip().partition("=")
    if scheme.lower() != "sha256" or not given:
        return False
    expected = signature_for(app_secret, raw_body).partition("=")[2]
    return constant_time_equal(expected, given.lower())


def _values(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``value`` objects of every ``messages`` change in a webhook payload."""
    found: list[dict[str, Any]] = []
    entries = payload.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict) or change.get("field") != "messages":
                continue
            value = change.get("value")
            if isinstance(value, dict):
                found.append(value)
    return found


def _list(value: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = value.get(key)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _fits(value: Any, longest: int) -> TypeGuard[str]:
    """A non-empty string short enough for the column that keeps it, with no NUL (which
    PostgreSQL refuses in text): else the item is skipped like any other malformed one."""
    return isinstance(value, str) and 0 < len(value) <= longest and "\x00" not in value


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _phone_number_id(value: dict[str, Any]) -> str | None:
    metadata = value.get("metadata")
    found = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return str(found) if found is not None else None


def _items(payload: dict[str, Any], key: str) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """Each ``key`` item (``statuses``, ``messages``) of a payload, with its phone number id."""
    for value in _values(payload):
        phone_number_id = _phone_number_id(value)
        for item in _list(value, key):
            yield phone_number_id, item


def parse_statuses(payload: dict[str, Any]) -> list[MetaStatus]:
    """Delivery reports in a webhook payload; malformed or unknown items are skipped."""
    statuses: list[MetaStatus] = []
    for phone_number_id, item in _items(payload, "statuses"):
        status = item.get("status")
        wamid = item.get("id")
        timestamp = _timestamp(item.get("timestamp"))
        if status not in _STATUSES or not _fits(wamid, MAX_WAMID) or timestamp is None:
            continue
        errors = _list(item, "errors")
        first = errors[0] if errors else {}
        code = first.get("code")
        error_data = first.get("error_data")
        details = error_data.get("details") if isinstance(error_data, dict) else None
        title = first.get("title") or first.get("message")
        recipient = item.get("recipient_id")
        statuses.append(
            MetaStatus(
                wamid=wamid,
                status=status,
                timestamp=timestamp,
                recipient_id=str(recipient) if recipient is not None else None,
                error_code=code if isinstance(code, int) else None,
                error_title=str(title) if title else None,
                error_details=str(details) if details else None,
                phone_number_id=phone_number_id,
            )
        )
    return statuses


def _inbound_text(item: dict[str, Any]) -> str | None:
    kind = item.get("type")
    part = item.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return None
    if kind == "text":
        text = part.get("body")
    elif kind == "button":
        text = part.get("text")
    elif kind == "interactive":
        reply = part.get("button_reply") or part.get("list_reply")
        text = reply.get("title") if isinstance(reply, dict) else None
    else:
        # Media: the caption, if any.
        text = part.get("caption")
    return str(text) if text is not None else None


def parse_inbound(payload: dict[str, Any]) -> list[MetaInbound]:
    """Messages people sent, from a webhook payload; malformed items are skipped."""
    inbound: list[MetaInbound] = []
    for phone_number_id, item in _items(payload, "messages"):
        sender = item.get("from")
        timestamp = _timestamp(item.get("timestamp"))
        if not _fits(sender, MAX_WA_ID) or timestamp is None:
            continue
        wamid = item.get("id")
        kind = item.get("type")
        inbound.append(
            MetaInbound(
                wa_id=sender,
                text=_inbound_text(item),
                timestamp=timestamp,
                wamid=wamid if isinstance(wamid, str) else None,
                kind=kind if isinstance(kind, str) else None,
                phone_number_id=phone_number_id,
            )
        )
    return inbound


# Meta's statuses in Herald's terms (the same names as Twilio's STATUS_MAP values).
STATUS_MAP: dict[str, str] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}
