"""Chat sessions started through the messages API (TWIN's ``chat`` channel).

``channels.chat`` names the bot (``botId``, or ``chatId``: in Herald a chat is a bot's web
chat, so its id is the bot's) and the messenger (``messengerType``). The message goes out
on that messenger and opens (or continues) the person's conversation with the bot, which
then answers their replies as it answers SMS. Without ``messengerType`` each person gets
the messenger they last used with the bot, else the first one they have an address for:
the web chat (``messengerUserId`` is the visitor's id), WhatsApp, Telegram, SMS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.errors import ValidationFailed
from herald.schemas.messages import ChatChannelIn, DestinationIn, RichChannelIn, SmsChannelIn
from herald.services.problems import Problems
from herald.services.senders import SenderDirectory
from herald.store.bots import Bot, Conversation, add_message, conversation_for
from herald.store.senders import Sender

# messengerType -> Herald channel. Herald's own web chat goes by several names in the wild.
MESSENGERS = {
    "WEB": "chat",
    "WEBCHAT": "chat",
    "WEB_CHAT": "chat",
    "CHAT": "chat",
    "WHATSAPP": "whatsapp",
    "TELEGRAM": "telegram",
    "SMS": "sms",
}
# The order people are tried in when the request does not say and they never chatted.
DEFAULT_ORDER = ("chat", "whatsapp", "telegram", "sms")
BOT_KEY = "botId"
WEBCHAT = "webchat"


async def webchat_sender(session: AsyncSession, bot: Bot) -> Sender:
    """The bot's web chat sender (``from`` is the bot's id), made on first use."""
    # Get-or-insert under a unique index, like store.bots.conversation_for; each brings back
    # its own kind of stale row (a removed sender, a closed conversation), so they stay two.
    query = select(Sender).where(
        Sender.project_id == bot.project_id,
        Sender.channel == "chat",
        Sender.from_address == bot.id,
    )
    sender = await session.scalar(query)
    if sender is not None:
        if sender.removed_at is not None:  # removed through the API; the bot still needs it
            sender.removed_at = None
        return sender
    try:
        async with session.begin_nested():
            sender = Sender(
                project_id=bot.project_id,
                channel="chat",
                provider=WEBCHAT,
                from_address=bot.id,
                credentials_encrypted="",  # Herald's own channel has no secrets
                is_default=False,
                smart_encoding=False,
            )
            session.add(sender)
            await session.flush()
    except IntegrityError:
        sender = await session.scalar(query)
        assert sender is not None
    return sender


def messenger_channel(value: str) -> str | None:
    """The Herald channel a ``messengerType`` names (any case, ``-`` or space for ``_``)."""
    return MESSENGERS.get(value.strip().upper().replace("-", "_").replace(" ", "_"))


def _spec_for(channel: str, chat: ChatChannelIn) -> SmsChannelIn | RichChannelIn:
    common = {"validityPeriod": chat.validity_period, "required": chat.required}
    if channel == "sms":
        return SmsChannelIn.model_validate({"text": chat.text, **common})
    return RichChannelIn.model_validate(
        {
            "text": chat.text,
            "imageUrl": chat.image_url,
            "buttonUrl": chat.button_url,
            "buttonText": chat.button_text,
            **common,
        }
    )


async def _sender_for(channel: str, bot: Bot, senders: SenderDirectory) -> Sender:
    if channel == "chat":
        return await webchat_sender(senders.session, bot)
    if channel in ("sms", "whatsapp"):
        # The bot's own number first: replies to it reach the bot.
        try:
            return await senders.resolve(channel, bot.phone)
        except ValidationFailed:
            pass
    return await senders.resolve(channel, None)


async def last_used(
    senders: SenderDirectory, bot_id: str, addresses: Iterable[str]
) -> dict[str, str]:
    """Address -> the channel the person last talked to the bot on."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    rows = await senders.session.execute(
        select(Conversation.address, Conversation.channel, Conversation.last_message_at).where(
            Conversation.bot_id == bot_id, Conversation.address.in_(wanted)
        )
    )
    latest: dict[str, tuple[str, datetime | None]] = {}
    for address, channel, at in rows:
        known = latest.get(address)
        if known is None or (at is not None and (known[1] is None or at > known[1])):
            latest[address] = (channel, at)
    return {address: channel for address, (channel, _) in latest.items()}


async def resolve_chat(
    chat: ChatChannelIn,
    senders: SenderDirectory,
    destinations: Sequence[DestinationIn],
    path: str,
    problems: Problems,
) -> tuple[str, list[tuple[str, SmsChannelIn | RichChannelIn, Sender]], dict[str, str]] | None:
    """The bot, the messengers to choose from (channel, content spec, sender), and each
    address's last-used channel; None after adding the request's problems."""
    where = f"{path}.channels.chat"
    bot_id = chat.bot_id or chat.chat_id
    if not bot_id:
        problems.add(
            f"{where}.botId", "Give 'botId' (or 'chatId'): the bot that talks.", "missing_field"
        )
        return None
    if chat.continue_last_or_start_new_session is False:
        problems.add(
            f"{where}.continueLastOrStartNewSession",
            "Herald keeps one conversation per person and bot, so a separate new session "
            "cannot be started; leave this out or set it to true.",
            "unsupported_field",
        )
        return None
    bot = await senders.session.get(Bot, bot_id)
    if bot is None or bot.project_id != senders.project_id:
        problems.add(f"{where}.botId", f"No bot with id {bot_id}.", "bot_not_found")
        return None
    if chat.messenger_type:
        channel = messenger_channel(chat.messenger_type)
        if channel is None:
            problems.add(
                f"{where}.messengerType",
                f"Messenger {chat.messenger_type!r} is not available in this Herald; use one "
                "of WEB, WHATSAPP, TELEGRAM, SMS.",
                "unsupported_messenger",
            )
            return None
        wanted: tuple[str, ...] = (channel,)
    else:
        wanted = DEFAULT_ORDER
    choices = []
    for channel in wanted:
        try:
            sender = await _sender_for(channel, bot, senders)
        except ValidationFailed as e:
            if chat.messenger_type:
                problems.add(f"{where}.messengerType", e.message, e.code)
                return None
            continue  # that messenger is not set up: not a choice
        choices.append((channel, _spec_for(channel, chat), sender))
    addresses = [a for d in destinations for a in (d.phone, d.messenger_user_id) if a]
    return bot.id, choices, await last_used(senders, bot.id, addresses)


async def open_chat_sessions(session: AsyncSession, deliveries: Sequence[dict[str, Any]]) -> None:
    """Open each chat session's conversation as its message is accepted. A web chat
    message joins the chat when the channel posts it; others are shown at once, with the
    status of their message."""
    for row in deliveries:
        bot_id = (row.get("content") or {}).get(BOT_KEY)
        if not bot_id:
            continue
        bot = await session.get(Bot, bot_id)
        if bot is None:
            continue
        conversation = await conversation_for(
            session, bot, row["channel"], row["to_address"], row["created_at"]
        )
        if row["channel"] != "chat":
            add_message(
                session,
                conversation,
                "outbound",
                row["body"],
                "api",
                row["created_at"],
                message_id=row["message_id"],
            )
