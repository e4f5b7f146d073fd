"""Telegram updates: people answering a bot's chat session on Telegram, and blocking it.

Telegram POSTs each update to the webhook set with ``setWebhook`` and repeats the
``secret_token`` given there in ``X-Telegram-Bot-Api-Secret-Token``. Herald derives that
token from the sender's bot token, so nothing extra is stored. A text from a chat that has a
conversation with one of the project's bots (a chat session opened it) is answered by that
bot, its replies going out through the pipeline; ``my_chat_member`` updates record that the
person blocked the Telegram bot (a suppression) or came back (lifted).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.domain.signatures import constant_time_equal
from herald.errors import Forbidden, InvalidRequest, NotFound
from herald.schemas.messages import CreateMessagesIn
from herald.services.bots.inbound import Decision, call_backend, plan_answer
from herald.services.delivery.suppressions import lift_suppression, record_suppression
from herald.services.messages.accepting import CreationPolicy, create_messages
from herald.services.vault import Vault
from herald.store.bots import Bot, Conversation, add_message, inbound_seen, record_inbound_activity
from herald.store.senders import Sender

log = logging.getLogger("herald.telegram")

CHANNEL = "telegram"
# Longer ids are no Telegram chat's, and would not fit the columns that hold them.
_MAX_ID_DIGITS = 32


def webhook_secret(bot_token: str, sender_id: str) -> str:
    """The ``secret_token`` to give ``setWebhook`` (Telegram allows A-Z, a-z, 0-9, _ and -)."""
    message = f"herald-telegram-webhook:{sender_id}".encode()
    return hmac.new(bot_token.encode(), message, hashlib.sha256).hexdigest()


def webhook_info(sender: Sender, vault: Vault, public_url: str) -> dict[str, str]:
    """Where Telegram must send the sender's updates, and the secret it must repeat."""
    token = vault.decrypt_json(sender.credentials_encrypted).get("botToken", "")
    return {
        "inboundWebhookUrl": f"{public_url.rstrip('/')}/webhooks/telegram/{sender.id}",
        "webhookSecretToken": webhook_secret(token, sender.id),
    }


@dataclass(frozen=True, slots=True)
class _Text:
    update_id: int
    chat_id: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class _Membership:
    chat_id: str
    status: str


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _chat_id(chat: Any) -> str | None:
    """Telegram's chat ids are integers (52 bits); anything else in their place is no chat."""
    found = _object(chat).get("id")
    if isinstance(found, bool) or not isinstance(found, int | str):
        return None
    text = str(found)
    return text if 0 < len(text) <= _MAX_ID_DIGITS else None


def _update_id(value: Any) -> int | None:
    """Telegram's update id; a larger one would not fit the sid it is stored in."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return None


def _sent_at(date: Any) -> datetime:
    if isinstance(date, int) and not isinstance(date, bool):
        try:
            return datetime.fromtimestamp(date, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)


def _parse(update: dict[str, Any]) -> _Text | _Membership | None:
    """What Herald acts on in an update; None for everything else (edits, groups, ...).

    The secret token proves the update comes from Telegram, not that it has the shape
    Herald expects: anything else in a field is read as the field missing.
    """
    member = update.get("my_chat_member")
    if isinstance(member, dict):
        chat = _chat_id(member.get("chat"))
        status = _object(member.get("new_chat_member")).get("status")
        if chat is not None and isinstance(status, str):
            return _Membership(chat, status)
        return None
    message = update.get("message")
    update_id = _update_id(update.get("update_id"))
    if not isinstance(message, dict) or update_id is None:
        return None
    chat = _chat_id(message.get("chat"))
    text = message.get("text") or message.get("caption") or ""
    if chat is None or not isinstance(text, str) or not text:
        return None
    return _Text(update_id, chat, text, _sent_at(message.get("date")))


@dataclass(slots=True)
class _Answer:
    decision: Decision
    bot_id: str
    chat_id: str


async def _receive(
    session: AsyncSession, vault: Vault, sender_id: str, raw: bytes, secret: str | None
) -> _Answer | None:
    sender = await session.get(Sender, sender_id)
    if sender is None or sender.provider != "telegram" or sender.removed_at is not None:
        raise NotFound("No Telegram sender has this id.", code="unknown_sender")
    token = vault.decrypt_json(sender.credentials_encrypted).get("botToken", "")
    if not secret or not constant_time_equal(webhook_secret(token, sender.id), secret):
        raise Forbidden(
            "The X-Telegram-Bot-Api-Secret-Token header does not match this sender's.",
            code="invalid_signature",
        )
    try:
        update = json.loads(raw)
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deep to parse
        raise InvalidRequest("The update is not JSON.", code="malformed_json") from e
    event = _parse(update) if isinstance(update, dict) else None
    if isinstance(event, _Membership):
        if event.status == "kicked":
            await record_suppression(
                session,
                sender.project_id,
                CHANNEL,
                sender.from_address,
                event.chat_id,
                "telegram-blocked",
            )
        elif event.status == "member":
            await lift_suppression(
                session, sender.project_id, CHANNEL, sender.from_address, event.chat_id
            )
        return None
    if event is None:
        return None
    await record_inbound_activity(session, sender.project_id, CHANNEL, event.chat_id, event.at)
    conversation = await session.scalar(
        select(Conversation)
        .join(Bot, Bot.id == Conversation.bot_id)
        .where(
            Bot.project_id == sender.project_id,
            Conversation.channel == CHANNEL,
            Conversation.address == event.chat_id,
        )
        .order_by(Conversation.last_message_at.desc())
        .limit(1)
    )
    if conversation is None:
        log.info("Telegram text from chat %s, which no bot talks to", event.chat_id)
        return None
    sid = f"tg:{sender.id}:{event.update_id}"
    if await inbound_seen(session, sid) is not None:
        return None  # Telegram repeats an update until it gets a 200
    bot = await session.get(Bot, conversation.bot_id)
    assert bot is not None
    if conversation.status != "open":
        conversation.status, conversation.closed_at = "open", None
    message = add_message(
        session, conversation, "inbound", event.text, "received", event.at, provider_sid=sid
    )
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        return None
    decision = Decision(conversation.id, bot.project_id)
    await plan_answer(session, vault, bot, conversation, message, decision)
    return _Answer(decision, bot.id, event.chat_id)


async def handle_update(
    sessions: async_sessionmaker[AsyncSession],
    vault: Vault,
    client: httpx.AsyncClient,
    sender_id: str,
    raw: bytes,
    secret: str | None,
    *,
    now: datetime,
    policy: CreationPolicy,
) -> int:
    """Apply one update; how many replies the bot sent (through the pipeline)."""
    async with sessions() as session, session.begin():
        answer = await _receive(session, vault, sender_id, raw, secret)
    if answer is None:
        return 0
    replies = answer.decision.replies
    if answer.decision.backend is not None:
        replies = await call_backend(client, answer.decision.backend)
    if not replies:
        return 0
    request = CreateMessagesIn.model_validate(
        {
            "messages": [
                {
                    "destinations": [{"messengerUserId": answer.chat_id}],
                    "channels": {
                        "chat": {"botId": answer.bot_id, "messengerType": "TELEGRAM", "text": r}
                    },
                }
                for r in replies
            ]
        }
    )
    async with sessions() as session, session.begin():
        await create_messages(session, answer.decision.project_id, request, now=now, policy=policy)
    return len(replies)
