"""Inbound texts to a bot: verify, store, decide, and answer.

An inbound text is handled in three steps so that no database transaction is held while a
bot's backend thinks: (1) verify, store idempotently and decide (opt-out keywords, keyword
rules); commit; (2) if the bot has a webhook, POST the text and its history to it, with a
short timeout; (3) store the replies it gave, which go back to Twilio as TwiML. A backend
that answers later replies through the API, and those replies travel the normal messages
pipeline (status callbacks, retries, history). The web chat and Telegram answer their texts
with the same steps (:func:`plan_answer`, :func:`call_backend`, :func:`record_replies`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.domain.addresses import bare
from herald.domain.form_params import FormParams, first
from herald.domain.keywords import (
    DEFAULT_HELP,
    OPT_IN_REPLY,
    OPT_OUT_REPLY,
    Keyword,
    classify,
    match_rule,
    parse_rules,
)
from herald.domain.signatures import herald_signature, verify_twilio_signature
from herald.errors import Forbidden, NotFound, ValidationFailed
from herald.services.bots.conversations import message_out
from herald.services.bots.resource import MAX_TEXT
from herald.services.delivery.suppressions import (
    is_suppressed,
    lift_suppression,
    record_suppression,
)
from herald.services.vault import Vault
from herald.store.bots import (
    Bot,
    Conversation,
    ConversationMessage,
    add_message,
    conversation_for,
    inbound_seen,
    record_inbound_activity,
)
from herald.store.projects import Project

log = logging.getLogger("herald.bots")

HISTORY_LENGTH = 20
MAX_REPLIES = 10
MAX_MEDIA = 10


@dataclass(frozen=True, slots=True)
class InboundText:
    """One Twilio inbound-message webhook as received."""

    bot_id: str
    url: str
    params: FormParams
    signature: str | None
    received_at: datetime


@dataclass(slots=True)
class Decision:
    """How the bot answers a stored text: replies now, or a call to its backend first."""

    conversation_id: str
    project_id: str
    replies: list[str] = field(default_factory=list)
    backend: BackendCall | None = None


@dataclass(frozen=True, slots=True)
class BackendCall:
    """The signed POST of a text to a bot's backend, made after the transaction commits."""

    url: str
    secret: str
    body: bytes
    timeout: float


def _media(params: FormParams) -> list[str]:
    try:
        count = int(first(params, "NumMedia") or "0")
    except ValueError:
        count = 0
    urls = [first(params, f"MediaUrl{i}") for i in range(min(max(count, 0), MAX_MEDIA))]
    # Some senders leave NumMedia out; take what is there.
    urls += [
        first(params, f"MediaUrl{i}")
        for i in range(len(urls), MAX_MEDIA)
        if f"MediaUrl{i}" in params
    ]
    return [u for u in urls if u]


def _channel_of(address: str) -> str:
    return "whatsapp" if address.lower().startswith("whatsapp:") else "sms"


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
    account = first(params, "AccountSid")
    if account and account != bot.account_sid:
        raise _forbidden()
    sid = first(params, "MessageSid") or first(params, "SmsMessageSid") or first(params, "SmsSid")
    sender = first(params, "From")
    if not sid or not sender:
        raise ValidationFailed(
            "The inbound message has no MessageSid or From.", code="incomplete_webhook"
        )
    if await inbound_seen(session, sid) is not None:
        return None
    channel, address, now = _channel_of(sender), bare(sender), inbound.received_at
    body = first(params, "Body") or ""
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
    twilio_answered = bool(first(params, "OptOutType"))
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
