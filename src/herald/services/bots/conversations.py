"""A bot's conversations through the API: listing and reading them, sending in one as the
bot, closing one; and a conversation's message on the wire.

Finding a person's conversation and adding a message to it are queries, in
:mod:`herald.store.bots`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald.errors import Conflict, NotFound
from herald.schemas.messages import CreateMessagesIn
from herald.services.bots.resource import get_bot
from herald.services.delivery.suppressions import is_suppressed
from herald.services.messages.accepting import CreationPolicy, create_messages
from herald.store.bots import Conversation, ConversationMessage
from herald.store.messages import Message

# A conversation's channel -> the chat session messenger that replies on it.
_MESSENGER = {"sms": "SMS", "whatsapp": "WHATSAPP", "chat": "WEB", "telegram": "TELEGRAM"}


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


def conversation_out(c: Conversation) -> dict[str, Any]:
    """A conversation on the wire, without its messages."""
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
