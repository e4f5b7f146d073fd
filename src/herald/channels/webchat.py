"""Herald's own web chat as a channel: "sending" puts the message in the visitor's chat.

The widget on the visitor's page receives it over its WebSocket and answers with
``delivered`` and ``read`` receipts, which reach the message like any provider's reports, so
the web chat takes part in a cascade with true reports. The sender's ``from`` is the bot's
id and ``to`` is the visitor's id. Where the chat is kept is the outbox's business (the
database, in Herald), so this module stays free of storage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from herald.channels.base import OutboundMessage, PermanentError, Receipt, SenderAccount

PREFIX = "webchat:"


class BotGone(Exception):
    """The bot the chat belongs to was deleted."""


class WidgetOutbox(Protocol):
    async def post(self, bot_id: str, visitor_id: str, message: OutboundMessage) -> int:
        """Add the message to the visitor's chat; its id in the chat. Raises BotGone."""
        ...

    async def posted(self, message_id: str) -> list[int]:
        """Chat ids of what was already posted for Herald message ``message_id``."""
        ...


def provider_id(chat_message_id: int) -> str:
    """The provider message id a chat message is known by in deliveries."""
    return f"{PREFIX}{chat_message_id}"


class WebChat:
    name = "webchat"

    def __init__(self, outbox: WidgetOutbox) -> None:
        self._outbox = outbox

    async def send(self, account: SenderAccount, message: OutboundMessage) -> Receipt:
        try:
            posted = await self._outbox.post(account.from_address, message.to, message)
        except BotGone as e:
            raise PermanentError(
                "webchat_bot_deleted", "The bot of this web chat was deleted."
            ) from e
        return Receipt(provider_message_id=provider_id(posted), provider_status="sent")

    async def find_sent(
        self, account: SenderAccount, message: OutboundMessage, since: datetime
    ) -> list[Receipt]:
        if message.message_id is None:
            return []
        return [
            Receipt(provider_message_id=provider_id(i), provider_status="sent")
            for i in await self._outbox.posted(message.message_id)
        ]

    async def aclose(self) -> None:
        return None
