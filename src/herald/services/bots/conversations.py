"""A bot's conversations as stored: finding a person's conversation and adding to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.store.bots import Bot, Conversation, ConversationMessage


def add_message(
    session: AsyncSession,
    conversation: Conversation,
    direction: str,
    body: str,
    via: str,
    at: datetime,
    *,
    media: list[str] | None = None,
    provider_sid: str | None = None,
    message_id: str | None = None,
    content: dict[str, Any] | None = None,
    status: str | None = None,
    automatic: bool = False,
) -> ConversationMessage:
    """Add a text to the conversation; an ``automatic`` reply (the bot's rules or backend)
    leaves the person's texts unread, since no person has seen or answered them."""
    message = ConversationMessage(
        conversation_id=conversation.id,
        direction=direction,
        body=body,
        media=media or None,
        provider_sid=provider_sid,
        message_id=message_id,
        via=via,
        content=content or None,
        status=status,
        created_at=at,
    )
    session.add(message)
    conversation.last_message_at = at
    conversation.last_direction = direction
    conversation.last_body = body[:500]
    if direction == "inbound":
        conversation.unread += 1
    elif not automatic:
        conversation.unread = 0
    return message


async def conversation_for(
    session: AsyncSession, bot: Bot, channel: str, address: str, at: datetime
) -> Conversation:
    query = select(Conversation).where(
        Conversation.bot_id == bot.id,
        Conversation.channel == channel,
        Conversation.address == address,
    )
    conversation = await session.scalar(query)
    if conversation is None:
        try:
            async with session.begin_nested():
                conversation = Conversation(
                    project_id=bot.project_id,
                    bot_id=bot.id,
                    channel=channel,
                    address=address,
                    status="open",
                    unread=0,
                    created_at=at,
                )
                session.add(conversation)
                await session.flush()
        except IntegrityError:
            # The same person's previous text created it a moment ago.
            conversation = await session.scalar(query)
            assert conversation is not None
    if conversation.status != "open":
        conversation.status, conversation.closed_at = "open", None
    return conversation


async def inbound_seen(session: AsyncSession, provider_sid: str) -> int | None:
    """The id of the inbound message already stored under this provider id, if any."""
    return await session.scalar(
        select(ConversationMessage.id).where(ConversationMessage.provider_sid == provider_sid)
    )
