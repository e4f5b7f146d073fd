"""Two-way SMS bots: the bot resource, inbound texts, conversations, replies.

An inbound text is handled in three steps so that no database transaction is held while a
bot's backend thinks: (1) verify, store idempotently and decide (opt-out keywords, keyword
rules); commit; (2) if the bot has a webhook, POST the text and its history to it, with a
short timeout; (3) store the replies it gave, which go back to Twilio as TwiML. A backend
that answers later replies through the API, and those replies travel the normal messages
pipeline (status callbacks, retries, history).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.domain.keywords import (
    DEFAULT_HELP,
    OPT_IN_REPLY,
    OPT_OUT_REPLY,
    InvalidRule,
    Keyword,
    classify,
    match_rule,
    parse_rules,
)
from herald.domain.phones import InvalidPhone, to_e164
from herald.domain.signatures import herald_signature, verify_twilio_signature
from herald.domain.urls import PUBLIC_ONLY, UrlPolicy
from herald.errors import Conflict, Forbidden, NotFound, ValidationFailed
from herald.schemas.messages import CreateMessagesIn
from herald.services.bots.conversations import add_message, conversation_for, inbound_seen
from herald.services.delivery.suppressions import (
    bare,
    is_suppressed,
    lift_suppression,
    record_suppression,
)
from herald.services.messages.accepting import CreationPolicy, create_messages
from herald.services.projects import UNSET, Unset
from herald.services.senders import NewSender, add_sender
from herald.services.url_checks import refuse_url
from herald.services.vault import Vault
from herald.store.bots import Bot, ContactActivity, Conversation, ConversationMessage
from herald.store.messages import Message
from herald.store.projects import Project
from herald.store.senders import Sender

log = logging.getLogger("herald.bots")

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
HISTORY_LENGTH = 20
MAX_REPLIES = 10
MAX_TEXT = 1600
MAX_MEDIA = 10
# A conversation's channel -> the chat session messenger that replies on it.
_MESSENGER = {"sms": "SMS", "whatsapp": "WHATSAPP", "chat": "WEB", "telegram": "TELEGRAM"}
# Twilio waits 15 s for the TwiML; a bot's backend gets a fraction of it.
MIN_TIMEOUT, MAX_TIMEOUT = 0.1, 10.0


def _invalid(message: str, field: str, code: str = "invalid_bot") -> ValidationFailed:
    return ValidationFailed(message, code=code, details={"field": field})


# -- the bot resource ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BotFields:
    """A bot as given by a client; ``UNSET`` fields are left as they are on update."""

    name: str | Unset = UNSET
    account_sid: str | Unset = UNSET
    auth_token: str | Unset = UNSET
    phone: str | Unset = UNSET
    base_url: str | Unset | None = UNSET
    webhook_url: str | Unset | None = UNSET
    reply_timeout: float | Unset | None = UNSET
    rules: Sequence[Mapping[str, Any]] | Unset | None = UNSET
    default_reply: str | Unset | None = UNSET
    help_text: str | Unset | None = UNSET


def _http_url(value: str | None, field: str, urls: UrlPolicy) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(f"'{field}' must be an absolute http(s) URL.", field)
    refuse_url(urls, value, field)
    return value


def _text(value: str | None, field: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > MAX_TEXT:
        raise _invalid(f"'{field}' must be at most {MAX_TEXT} characters.", field)
    return value


def _apply(bot: Bot, fields: BotFields, vault: Vault, urls: UrlPolicy) -> None:
    """Validate and set every given field."""
    if not isinstance(fields.name, Unset):
        name = fields.name.strip()
        if not name or len(name) > 200:
            raise _invalid("'name' must be 1 to 200 characters long.", "name")
        bot.name = name
    if not isinstance(fields.account_sid, Unset):
        if not _ACCOUNT_SID.match(fields.account_sid):
            raise _invalid(
                "'accountSid' must be a Twilio Account SID: AC followed by 32 hex digits.",
                "accountSid",
            )
        bot.account_sid = fields.account_sid
    if not isinstance(fields.auth_token, Unset):
        if not fields.auth_token or len(fields.auth_token) > 200:
            raise _invalid(
                "'authToken' is required (the Twilio account's auth token).", "authToken"
            )
        bot.credentials_encrypted = vault.encrypt_json({"authToken": fields.auth_token})
    if not isinstance(fields.phone, Unset):
        try:
            bot.phone = to_e164(fields.phone)
        except InvalidPhone as e:
            raise _invalid(
                f"'phone' must be the bot's Twilio number in E.164, like +14155550123: {e}.",
                "phone",
                "invalid_phone",
            ) from e
    if not isinstance(fields.base_url, Unset):
        bot.base_url = _http_url(fields.base_url, "baseUrl", urls)
    if not isinstance(fields.webhook_url, Unset):
        bot.webhook_url = _http_url(fields.webhook_url, "webhookUrl", urls)
    if not isinstance(fields.reply_timeout, Unset):
        timeout = 3.0 if fields.reply_timeout is None else fields.reply_timeout
        if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
            raise _invalid(
                f"'replyTimeout' must be between {MIN_TIMEOUT} and {MAX_TIMEOUT} seconds.",
                "replyTimeout",
            )
        bot.reply_timeout = timeout
    if not isinstance(fields.rules, Unset):
        try:
            rules = parse_rules(fields.rules or [])
        except InvalidRule as e:
            raise _invalid(
                f"rules[{e.index}].{e.field}: {e.message}",
                f"rules[{e.index}].{e.field}",
                "invalid_rule",
            ) from e
        bot.rules = [{"match": r.match, "pattern": r.pattern, "reply": r.reply} for r in rules]
    if not isinstance(fields.default_reply, Unset):
        bot.default_reply = _text(fields.default_reply, "defaultReply")
    if not isinstance(fields.help_text, Unset):
        bot.help_text = _text(fields.help_text, "helpText")


async def _ensure_sender(
    session: AsyncSession, vault: Vault, bot: Bot, auth_token: str | None, urls: UrlPolicy
) -> None:
    """Register the bot's number as a Twilio SMS sender of the project, unless one exists,
    so replies sent later go through the normal pipeline with status callbacks."""
    existing = await session.scalar(
        select(Sender).where(
            Sender.project_id == bot.project_id,
            Sender.channel == "sms",
            Sender.from_address == bot.phone,
            Sender.removed_at.is_(None),  # a removed one is brought back by add_sender
        )
    )
    token = auth_token or vault.decrypt_json(bot.credentials_encrypted).get("authToken", "")
    if existing is None:
        await add_sender(
            session,
            vault,
            bot.project_id,
            NewSender(
                channel="sms",
                provider="twilio",
                from_address=bot.phone,
                account_sid=bot.account_sid,
                auth_token=token,
                base_url=bot.base_url,
                default=False,
            ),
            urls=urls,
        )
    elif existing.provider == "twilio" and auth_token is not None:
        # The bot's credentials changed: the sender for its number follows them.
        existing.account_id = bot.account_sid
        existing.credentials_encrypted = vault.encrypt_json({"authToken": token})
        if bot.base_url:
            existing.base_url = bot.base_url


async def create_bot(
    session: AsyncSession,
    vault: Vault,
    project_id: str,
    fields: BotFields,
    *,
    now: datetime,
    urls: UrlPolicy = PUBLIC_ONLY,
) -> Bot:
    """A new bot; its number also becomes an SMS sender of the project (if it is not one).

    ``urls`` names the private hosts its webhookUrl and baseUrl may point at (none by default).
    """
    missing = [
        wire
        for wire, value in (
            ("name", fields.name),
            ("accountSid", fields.account_sid),
            ("authToken", fields.auth_token),
            ("phone", fields.phone),
        )
        if isinstance(value, Unset)
    ]
    if missing:
        raise _invalid(f"'{missing[0]}' is required.", missing[0], "missing_field")
    bot = Bot(project_id=project_id, rules=[], reply_timeout=3.0, created_at=now, updated_at=now)
    _apply(bot, fields, vault, urls)
    session.add(bot)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as e:
        raise Conflict(f"This project already has a bot on {bot.phone}.", code="bot_exists") from e
    token = fields.auth_token if isinstance(fields.auth_token, str) else None
    await _ensure_sender(session, vault, bot, token, urls)
    return bot


async def get_bot(session: AsyncSession, project_id: str, bot_id: str) -> Bot:
    bot = await session.get(Bot, bot_id)
    if bot is None or bot.project_id != project_id:
        raise NotFound(f"No bot with id {bot_id}.", code="bot_not_found")
    return bot


async def update_bot(
    session: AsyncSession,
    vault: Vault,
    project_id: str,
    bot_id: str,
    fields: BotFields,
    *,
    now: datetime,
    urls: UrlPolicy = PUBLIC_ONLY,
) -> Bot:
    """Change any of a bot's fields; those left out keep their values."""
    bot = await get_bot(session, project_id, bot_id)
    _apply(bot, fields, vault, urls)
    bot.updated_at = now
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as e:
        raise Conflict(f"This project already has a bot on {bot.phone}.", code="bot_exists") from e
    credentials_changed = any(
        not isinstance(v, Unset)
        for v in (fields.account_sid, fields.auth_token, fields.phone, fields.base_url)
    )
    if credentials_changed:
        token = vault.decrypt_json(bot.credentials_encrypted).get("authToken", "")
        await _ensure_sender(session, vault, bot, token, urls)
    return bot


async def list_bots(session: AsyncSession, project_id: str) -> list[Bot]:
    query = select(Bot).where(Bot.project_id == project_id).order_by(Bot.created_at, Bot.id)
    return list(await session.scalars(query))


async def delete_bot(session: AsyncSession, project_id: str, bot_id: str) -> None:
    """Delete a bot with its conversations; its sender stays (messages refer to it)."""
    bot = await get_bot(session, project_id, bot_id)
    await session.delete(bot)


# -- contact activity (the WhatsApp 24-hour window) ------------------------------------------


async def record_inbound_activity(
    session: AsyncSession, project_id: str, channel: str, address: str, at: datetime
) -> None:
    """Remember that the person wrote to the project on ``channel`` at ``at``."""
    channel, address = channel.lower(), bare(address)
    where = (
        ContactActivity.project_id == project_id,
        ContactActivity.channel == channel,
        ContactActivity.address == address,
    )
    result = await session.execute(
        update(ContactActivity)
        .where(*where, ContactActivity.last_inbound_at < at)
        .values(last_inbound_at=at)
    )
    if getattr(result, "rowcount", 0):
        return
    if await session.scalar(select(ContactActivity.address).where(*where)) is not None:
        return  # already as recent
    try:
        async with session.begin_nested():
            session.add(
                ContactActivity(
                    project_id=project_id, channel=channel, address=address, last_inbound_at=at
                )
            )
            await session.flush()
    except IntegrityError:
        await session.execute(
            update(ContactActivity)
            .where(*where, ContactActivity.last_inbound_at < at)
            .values(last_inbound_at=at)
        )


async def last_inbound_at(
    session: AsyncSession, project_id: str, channel: str, address: str
) -> datetime | None:
    """When the person last wrote to the project on ``channel`` (any prefix form), if ever."""
    return await session.scalar(
        select(ContactActivity.last_inbound_at).where(
            ContactActivity.project_id == project_id,
            ContactActivity.channel == channel.lower(),
            ContactActivity.address == bare(address),
        )
    )


# -- inbound texts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundText:
    """One Twilio inbound-message webhook as received."""

    bot_id: str
    url: str
    params: Mapping[str, Sequence[str]]
    signature: str | None
    received_at: datetime


@dataclass(slots=True)
class Decision:
    conversation_id: str
    project_id: str
    replies: list[str] = field(default_factory=list)
    backend: BackendCall | None = None


@dataclass(frozen=True, slots=True)
class BackendCall:
    url: str
    secret: str
    body: bytes
    timeout: float


def _first(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _media(params: Mapping[str, Sequence[str]]) -> list[str]:
    try:
        count = int(_first(params, "NumMedia") or "0")
    except ValueError:
        count = 0
    urls = [_first(params, f"MediaUrl{i}") for i in range(min(max(count, 0), MAX_MEDIA))]
    # Some senders leave NumMedia out; take what is there.
    urls += [
        _first(params, f"MediaUrl{i}")
        for i in range(len(urls), MAX_MEDIA)
        if f"MediaUrl{i}" in params
    ]
    return [u for u in urls if u]


def _channel_of(address: str) -> str:
    return "whatsapp" if address.lower().startswith("whatsapp:") else "sms"


def message_out(m: ConversationMessage, status: str | None = None) -> dict[str, Any]:
    """A conversation message on the wire."""
    return {
        "id": m.id,
        "direction": m.direction,
        "text": m.body,
        "media": m.media or [],
        "via": m.via,
        "messageId": m.message_id,
        "providerMessageId": m.provider_sid,
        "status": status or m.status or ("received" if m.direction == "inbound" else "sent"),
        **(m.content or {}),
        "createdAt": m.created_at.isoformat(),
    }


async def _history(
    session: AsyncSession, conversation_id: str, before: int
) -> list[dict[str, Any]]:
    rows = list(
        await session.scalars(
            select(ConversationMessage)
            .where(
                ConversationMessage.conversation_id == conversation_id,
                ConversationMessage.id < before,
            )
            .order_by(ConversationMessage.id.desc())
            .limit(HISTORY_LENGTH)
        )
    )
    return [message_out(m) for m in reversed(rows)]


def _forbidden() -> Forbidden:
    return Forbidden(
        "The X-Twilio-Signature header does not match this request.", code="invalid_signature"
    )


async def _decide(session: AsyncSession, vault: Vault, inbound: InboundText) -> Decision | None:
    """Verify, store and decide. None: a repeated delivery of a text already handled."""
    bot = await session.get(Bot, inbound.bot_id)
    if bot is None:
        raise NotFound("This inbound webhook is for no bot Herald knows.", code="bot_not_found")
    token = vault.decrypt_json(bot.credentials_encrypted).get("authToken", "")
    params = inbound.params
    if (
        not inbound.signature
        or not token
        or not verify_twilio_signature(inbound.url, params, token, inbound.signature)
    ):
        raise _forbidden()
    account = _first(params, "AccountSid")
    if account and account != bot.account_sid:
        raise _forbidden()
    sid = (
        _first(params, "MessageSid") or _first(params, "SmsMessageSid") or _first(params, "SmsSid")
    )
    sender = _first(params, "From")
    if not sid or not sender:
        raise ValidationFailed(
            "The inbound message has no MessageSid or From.", code="incomplete_webhook"
        )
    if await inbound_seen(session, sid) is not None:
        return None
    channel, address, now = _channel_of(sender), bare(sender), inbound.received_at
    body = _first(params, "Body") or ""
    conversation = await conversation_for(session, bot, channel, address, now)
    message = add_message(
        session,
        conversation,
        "inbound",
        body,
        "received",
        now,
        media=_media(params),
        provider_sid=sid,
    )
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        return None  # Twilio's retry raced the first delivery; that one answers
    await record_inbound_activity(session, bot.project_id, channel, address, now)
    decision = Decision(conversation.id, bot.project_id)
    # With Advanced Opt-Out, Twilio has already answered the keyword itself.
    twilio_answered = bool(_first(params, "OptOutType"))
    keyword = classify(body)
    if keyword is Keyword.OPT_OUT:
        new = await record_suppression(
            session,
            bot.project_id,
            channel,
            bot.phone,
            address,
            f"keyword:{body.strip().rstrip('.!').upper()}",
            at=now,
        )
        if new and not twilio_answered:
            decision.replies = [OPT_OUT_REPLY]
        return decision
    if keyword is Keyword.OPT_IN:
        lifted = await lift_suppression(session, bot.project_id, channel, bot.phone, address)
        if lifted and not twilio_answered:
            decision.replies = [OPT_IN_REPLY]
        return decision
    if await is_suppressed(session, bot.project_id, channel, bot.phone, address):
        return decision  # carriers forbid texting an opted-out person, even HELP answers
    if keyword is Keyword.HELP:
        if not twilio_answered:
            decision.replies = [bot.help_text or DEFAULT_HELP]
        return decision
    await plan_answer(session, vault, bot, conversation, message, decision)
    return decision


async def plan_answer(
    session: AsyncSession,
    vault: Vault,
    bot: Bot,
    conversation: Conversation,
    message: ConversationMessage,
    decision: Decision,
) -> None:
    """How the bot answers a stored inbound text: a keyword rule, its backend, or its
    default reply (the same on every channel)."""
    reply = match_rule(parse_rules(bot.rules or []), message.body)
    if reply is not None:
        decision.replies = [reply]
    elif bot.webhook_url:
        project = await session.get(Project, bot.project_id)
        assert project is not None
        payload = {
            "event": "bot.message",
            "bot": {"id": bot.id, "name": bot.name, "phone": bot.phone},
            "conversation": {
                "id": conversation.id,
                "channel": conversation.channel,
                "address": conversation.address,
                "status": conversation.status,
            },
            "message": message_out(message),
            "history": await _history(session, conversation.id, message.id),
        }
        decision.backend = BackendCall(
            url=bot.webhook_url,
            secret=vault.decrypt(project.webhook_secret_encrypted),
            body=json.dumps(payload).encode(),
            timeout=bot.reply_timeout,
        )
    elif bot.default_reply:
        decision.replies = [bot.default_reply]


def _replies_of(data: Any) -> list[str]:
    """``{"reply": "text"}`` or ``{"replies": [...]}``; anything else is no reply now."""
    if not isinstance(data, dict):
        return []
    raw = data.get("replies")
    items = raw if isinstance(raw, list) else [data.get("reply")]
    return [item[:MAX_TEXT] for item in items if isinstance(item, str) and item.strip()][
        :MAX_REPLIES
    ]


async def call_backend(client: httpx.AsyncClient, call: BackendCall) -> list[str]:
    """POST the text to the bot's backend, signed like client callbacks; its replies, or none
    when it is slow, failing or answers ``{"reply": null}`` (it may reply later via the API)."""
    headers = {
        "Content-Type": "application/json",
        "X-Herald-Signature": herald_signature(call.secret, int(time.time()), call.body),
    }
    try:
        response = await client.post(
            call.url, content=call.body, headers=headers, timeout=call.timeout
        )
    except httpx.HTTPError as e:
        log.info("bot backend %s gave no answer in time: %s", call.url, e)
        return []
    if not 200 <= response.status_code < 300:
        log.warning("bot backend %s answered %s", call.url, response.status_code)
        return []
    try:
        return _replies_of(response.json())
    except ValueError:
        return []


async def record_replies(
    session: AsyncSession,
    decision: Decision,
    replies: list[str],
    at: datetime,
    *,
    via: str = "twiml",
    status: str | None = None,
) -> list[str]:
    """Store the bot's immediate replies in the conversation (none if it was deleted)."""
    conversation = await session.get(Conversation, decision.conversation_id)
    if conversation is None:
        return []
    for reply in replies:
        add_message(
            session, conversation, "outbound", reply, via, at, status=status, automatic=True
        )
    return replies


async def handle_inbound(
    sessions: async_sessionmaker[AsyncSession],
    vault: Vault,
    client: httpx.AsyncClient,
    inbound: InboundText,
) -> list[str]:
    """Handle one inbound text; the replies to answer with now (as TwiML), maybe none."""
    async with sessions() as session, session.begin():
        decision = await _decide(session, vault, inbound)
    if decision is None:
        return []
    replies = decision.replies
    if decision.backend is not None:
        replies = await call_backend(client, decision.backend)
    if not replies:
        return []
    async with sessions() as session, session.begin():
        return await record_replies(session, decision, replies, inbound.received_at)


# -- conversations -----------------------------------------------------------------------------


def conversation_out(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "botId": c.bot_id,
        "channel": c.channel,
        "address": c.address,
        "status": c.status,
        "unreadCount": c.unread,
        "lastMessage": None
        if c.last_message_at is None
        else {
            "direction": c.last_direction,
            "text": c.last_body,
            "at": c.last_message_at.isoformat(),
        },
        "createdAt": c.created_at.isoformat(),
        "closedAt": c.closed_at.isoformat() if c.closed_at else None,
    }


async def list_conversations(
    session: AsyncSession,
    project_id: str,
    bot_id: str,
    *,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Conversation]:
    """A bot's conversations, most recently active first."""
    await get_bot(session, project_id, bot_id)
    query = select(Conversation).where(Conversation.bot_id == bot_id)
    if status:
        query = query.where(Conversation.status == status)
    query = query.order_by(Conversation.last_message_at.desc(), Conversation.id)
    return list(await session.scalars(query.limit(limit).offset(offset)))


async def _conversation(
    session: AsyncSession, project_id: str, bot_id: str, conversation_id: str
) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if (
        conversation is None
        or conversation.project_id != project_id
        or conversation.bot_id != bot_id
    ):
        raise NotFound(
            f"No conversation with id {conversation_id} on this bot.", code="conversation_not_found"
        )
    return conversation


async def get_conversation(
    session: AsyncSession, project_id: str, bot_id: str, conversation_id: str
) -> dict[str, Any]:
    """The conversation with every message in order (and their statuses); marks it read."""
    conversation = await _conversation(session, project_id, bot_id, conversation_id)
    out = conversation_out(conversation)
    rows = (
        await session.execute(
            select(ConversationMessage, Message.status)
            .outerjoin(Message, Message.id == ConversationMessage.message_id)
            .where(ConversationMessage.conversation_id == conversation_id)
            .order_by(ConversationMessage.id)
        )
    ).all()
    out["messages"] = [message_out(m, m.status or status) for m, status in rows]
    conversation.unread = 0
    return out


async def send_as_bot(
    session: AsyncSession,
    project_id: str,
    bot_id: str,
    conversation_id: str,
    text: str,
    *,
    now: datetime,
    policy: CreationPolicy | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """Send a text in the conversation as the bot (from its number, or into its web chat),
    through the messages pipeline: a chat session on the conversation's messenger."""
    bot = await get_bot(session, project_id, bot_id)
    conversation = await _conversation(session, project_id, bot_id, conversation_id)
    if conversation.channel in ("sms", "whatsapp") and await is_suppressed(
        session, project_id, conversation.channel, bot.phone, conversation.address
    ):
        raise Conflict(
            f"{conversation.address} opted out of texts from {bot.phone} (replied STOP); "
            "nothing was sent.",
            code="recipient_opted_out",
        )
    address_field = "phone" if conversation.channel in ("sms", "whatsapp") else "messengerUserId"
    chat = {"botId": bot.id, "messengerType": _MESSENGER[conversation.channel], "text": text}
    message: dict[str, Any] = {
        "destinations": [{address_field: conversation.address}],
        "channels": {"chat": chat},
    }
    if callback_url:
        message["callbackUrl"] = callback_url
    results = await create_messages(
        session,
        project_id,
        CreateMessagesIn.model_validate({"messages": [message]}),
        now=now,
        policy=policy,
    )
    result = results[0]
    await session.flush()
    added = await session.scalar(
        select(ConversationMessage).where(ConversationMessage.message_id == result["id"])
    )
    if added is not None:
        return message_out(added, result["status"])
    # The web chat shows the message once the channel posts it (it gets its id then).
    return {
        "id": None,
        "direction": "outbound",
        "text": text,
        "media": [],
        "via": "webchat",
        "messageId": result["id"],
        "providerMessageId": None,
        "status": result["status"],
        "createdAt": now.isoformat(),
    }


async def close_conversation(
    session: AsyncSession, project_id: str, bot_id: str, conversation_id: str, *, now: datetime
) -> Conversation:
    """Mark a conversation closed; the person's next text reopens it."""
    conversation = await _conversation(session, project_id, bot_id, conversation_id)
    if conversation.status != "closed":
        conversation.status, conversation.closed_at = "closed", now
    return conversation
