"""The web chat: visitors, their conversations with a bot, the widget's outbox and receipts.

A web chat conversation is an ordinary bot conversation on channel ``chat`` whose address
is the visitor's id. Everything the widget shows is a row of ``conversation_messages``:
the bot's messages are put there by the web chat channel (so they travel the pipeline with
retries and cascade) or by the bot's immediate replies, the visitor's own by the socket.
Each Herald process runs one :class:`WebChatHub` that polls for new rows of the chats its
sockets show, so a message posted by a ``herald worker`` in another process still arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.channels.base import OutboundMessage
from herald.channels.webchat import BotGone
from herald.domain import webchat as rules
from herald.domain.statuses import Status
from herald.errors import Forbidden, NotFound, ValidationFailed
from herald.services.bots.inbound import Decision, call_backend, plan_answer, record_replies
from herald.services.bots.resource import get_bot
from herald.services.delivery.tracking import Changes, apply_status
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
from herald.store.db import is_postgres
from herald.store.messages import Delivery, Message
from herald.store.projects import Project
from herald.store.rows import load_siblings, rows_of

log = logging.getLogger("herald.webchat")

CHANNEL = "chat"
PROVIDER = "webchat"
REPLAY_LIMIT = 1000


# -- visitors ----------------------------------------------------------------------------------


async def _bot(session: AsyncSession, bot_id: str) -> Bot:
    bot = await session.get(Bot, bot_id)
    if bot is None:
        raise NotFound(f"No bot with id {bot_id}.", code="bot_not_found")
    return bot


async def _secret(session: AsyncSession, vault: Vault, bot: Bot) -> str:
    project = await session.get(Project, bot.project_id)
    assert project is not None
    return vault.decrypt(project.webhook_secret_encrypted)


def _checked_visitor(visitor_id: str) -> str:
    if not rules.valid_visitor_id(visitor_id):
        raise ValidationFailed(
            "'visitorId' must be 1-128 letters, digits or . _ : @ + -.",
            code="invalid_visitor_id",
            details={"field": "visitorId"},
        )
    return visitor_id


async def _credentials(
    session: AsyncSession, vault: Vault, bot: Bot, visitor_id: str | None, expires: datetime
) -> dict[str, str]:
    visitor = _checked_visitor(visitor_id) if visitor_id else "v-" + secrets.token_urlsafe(12)
    secret = await _secret(session, vault, bot)
    return {
        "botId": bot.id,
        "visitorId": visitor,
        "token": rules.visitor_token(secret, bot.id, visitor, int(expires.timestamp())),
    }


async def visitor_credentials(
    session: AsyncSession,
    vault: Vault,
    project_id: str,
    bot_id: str,
    visitor_id: str | None,
    *,
    expires: datetime,
) -> dict[str, str]:
    """For one of the project's bots: a visitor id (a new anonymous one if none is given) and
    the token the widget needs, valid until ``expires``."""
    bot = await get_bot(session, project_id, bot_id)
    return await _credentials(session, vault, bot, visitor_id, expires)


async def anonymous_visitor(
    session: AsyncSession, vault: Vault, bot_id: str, *, expires: datetime
) -> dict[str, str]:
    """A new anonymous visitor of a bot's web chat (the widget asks for one on first load)."""
    bot = await _bot(session, bot_id)
    return await _credentials(session, vault, bot, None, expires)


@dataclass(frozen=True, slots=True)
class Visitor:
    """A visitor whose token was checked: the socket acts for them alone."""

    bot_id: str
    visitor_id: str


async def check_visitor(
    session: AsyncSession,
    vault: Vault,
    bot_id: str,
    visitor_id: str,
    token: str,
    *,
    now: datetime,
) -> Visitor:
    """The visitor, once the token is checked. Their conversation is only made when someone
    writes in it, so page views alone leave nothing behind."""
    bot = await _bot(session, bot_id)
    secret = await _secret(session, vault, bot)
    check = rules.TokenCheck.INVALID
    if rules.valid_visitor_id(visitor_id):
        check = rules.check_token(secret, bot.id, visitor_id, token, int(now.timestamp()))
    if check is rules.TokenCheck.EXPIRED:
        raise Forbidden(
            "The visitor token has expired; get a new one from "
            "POST /api/v1/bots/{id}/webchat/visitors.",
            code="token_expired",
        )
    if check is not rules.TokenCheck.VALID:
        raise Forbidden("The visitor token does not match this visitor.", code="invalid_token")
    return Visitor(bot.id, visitor_id)


async def _chat_ids(session: AsyncSession, visitors: list[Visitor]) -> dict[Visitor, str]:
    """The conversation of each visitor that has one."""
    by_bot: dict[str, list[str]] = {}
    for v in visitors:
        by_bot.setdefault(v.bot_id, []).append(v.visitor_id)
    found: dict[Visitor, str] = {}
    for bot_id, addresses in by_bot.items():
        rows = await session.execute(
            select(Conversation.address, Conversation.id).where(
                Conversation.bot_id == bot_id,
                Conversation.channel == CHANNEL,
                Conversation.address.in_(addresses),
            )
        )
        found.update({Visitor(bot_id, address): cid for address, cid in rows})
    return found


# -- what the widget shows ---------------------------------------------------------------------


def frame_of(m: ConversationMessage) -> dict[str, Any]:
    """A chat message as the widget receives it."""
    content = m.content or {}
    return {
        "type": "message",
        "id": m.id,
        "direction": m.direction,
        "text": m.body,
        "imageUrl": content.get("imageUrl"),
        "buttonUrl": content.get("buttonUrl"),
        "buttonText": content.get("buttonText"),
        "clientId": content.get("clientId"),
        "status": m.status,
        "createdAt": m.created_at.isoformat(),
    }


async def chat_after(
    session: AsyncSession, conversation_ids: list[str], after: int
) -> list[ConversationMessage]:
    """The chats' messages with ids above ``after``, oldest first."""
    if not conversation_ids:
        return []
    query = (
        select(ConversationMessage)
        .where(
            ConversationMessage.conversation_id.in_(conversation_ids),
            ConversationMessage.id > after,
        )
        .order_by(ConversationMessage.id)
        .limit(REPLAY_LIMIT)
    )
    return list(await session.scalars(query))


# -- the outbox the web chat channel posts to --------------------------------------------------


class DbOutbox:
    """Posts the bot's messages into the visitor's conversation."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], on_post: Callable[[], None]
    ) -> None:
        self._sessions, self._on_post = sessions, on_post

    async def post(self, bot_id: str, visitor_id: str, message: OutboundMessage) -> int:
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            bot = await session.get(Bot, bot_id)
            if bot is None:
                raise BotGone(bot_id)
            conversation = await conversation_for(session, bot, CHANNEL, visitor_id, now)
            content = {
                "imageUrl": message.image_url,
                "buttonUrl": message.button_url,
                "buttonText": message.button_text,
            }
            row = add_message(
                session,
                conversation,
                "outbound",
                message.body,
                PROVIDER,
                now,
                message_id=message.message_id,
                content={k: v for k, v in content.items() if v},
                status="sent",
            )
            await session.flush()
            posted = row.id
        self._on_post()
        return posted

    async def posted(self, message_id: str) -> list[int]:
        async with self._sessions() as session:
            return list(
                await session.scalars(
                    select(ConversationMessage.id).where(
                        ConversationMessage.message_id == message_id,
                        ConversationMessage.via == PROVIDER,
                    )
                )
            )


# -- what the visitor does ---------------------------------------------------------------------


async def handle_visitor_text(
    sessions: async_sessionmaker[AsyncSession],
    vault: Vault,
    client: httpx.AsyncClient,
    visitor: Visitor,
    text: rules.VisitorText,
    now: datetime,
) -> int:
    """Store the visitor's text once (a resend after a reconnect changes nothing), then let
    the bot answer: its immediate replies appear in the chat, a backend may answer later
    through the conversations API. Returns the stored text's id."""
    # provider_sid is the idempotency key (64 characters at most, unique across channels).
    key = f"{visitor.bot_id}:{visitor.visitor_id}:{text.client_id}"
    sid = f"web:{hashlib.sha256(key.encode()).hexdigest()[:56]}"
    async with sessions() as session, session.begin():
        seen = await inbound_seen(session, sid)
        if seen is not None:
            return seen
        bot = await _bot(session, visitor.bot_id)
        conversation = await conversation_for(session, bot, CHANNEL, visitor.visitor_id, now)
        message = add_message(
            session,
            conversation,
            "inbound",
            text.text,
            "received",
            now,
            provider_sid=sid,
            content={"clientId": text.client_id},
        )
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:  # the same text on another socket, a moment ago
            seen = await inbound_seen(session, sid)
            assert seen is not None
            return seen
        await record_inbound_activity(session, bot.project_id, CHANNEL, conversation.address, now)
        decision = Decision(conversation.id, bot.project_id)
        await plan_answer(session, vault, bot, conversation, message, decision)
        stored = message.id
    replies = decision.replies
    if decision.backend is not None:
        replies = await call_backend(client, decision.backend)
    if replies:
        async with sessions() as session, session.begin():
            await record_replies(session, decision, replies, now, via=PROVIDER, status="sent")
    return stored


async def record_receipt(
    session: AsyncSession, visitor: Visitor, receipt: rules.Receipt, now: datetime
) -> bool:
    """The widget's receipt for one of the bot's messages; moves the message's status too."""
    row = await session.get(ConversationMessage, receipt.id)
    if row is None or row.direction != "outbound":
        return False
    conversation = await session.get(Conversation, row.conversation_id)
    if (
        conversation is None
        or conversation.channel != CHANNEL
        or Visitor(conversation.bot_id, conversation.address) != visitor
    ):
        return False  # not this visitor's message: a receipt cannot touch other chats
    if not rules.receipt_moves(row.status, receipt.status):
        return False
    row.status = receipt.status
    if row.message_id is None:
        return True
    query = (
        select(Delivery, Message)
        .join(Message, Message.id == Delivery.message_id)
        .where(Delivery.message_id == row.message_id, Delivery.channel == CHANNEL)
    )
    if is_postgres(session):
        query = query.with_for_update(of=(Delivery, Message))
    found = (await session.execute(query)).first()
    if found is None:
        return True
    await session.flush()
    [(delivery, message)] = rows_of([(found[0], found[1])])
    changes = Changes(siblings=await load_siblings(session, [(delivery, message)]))
    apply_status(
        changes,
        message,
        delivery,
        Status(receipt.status),
        source="webchat",
        at=now,
        detail=f"web chat widget: {receipt.status}",
    )
    await changes.write(session)
    return True


# -- fan-out to the sockets of this process ----------------------------------------------------


@dataclass(eq=False, slots=True)
class _Socket:
    queue: asyncio.Queue[ConversationMessage]
    after: int  # the widget already has everything up to here
    high: int
    sent: set[int]


class WebChatHub:
    """Polls for new chat rows of the visitors this process's sockets show.

    One query per tick serves every socket. Ids are re-read a little below the highest sent,
    because on PostgreSQL a row with a lower id can commit after a higher one; each socket
    remembers what it was sent, so nothing is shown twice. A visitor without a conversation
    yet is looked up each tick until someone writes to them.
    """

    LOOKBACK = 1000

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], poll_interval: float = 0.25
    ) -> None:
        self._sessions = sessions
        self._poll_interval = poll_interval
        self._sockets: dict[Visitor, set[_Socket]] = {}
        self._chats: dict[Visitor, str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New rows were written in this process: look now instead of at the next tick."""
        self._wake.set()

    @contextlib.asynccontextmanager
    async def subscribe(
        self, visitor: Visitor, after: int
    ) -> AsyncIterator[asyncio.Queue[ConversationMessage]]:
        """A queue of the visitor's chat rows with ids above ``after``: first those already
        there (the replay after a reconnect), then new ones as they appear."""
        socket = _Socket(asyncio.Queue(), after, after, set())
        self._sockets.setdefault(visitor, set()).add(socket)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="webchat-hub")
        self.wake()
        try:
            yield socket.queue
        finally:
            sockets = self._sockets.get(visitor, set())
            sockets.discard(socket)
            if not sockets:
                self._sockets.pop(visitor, None)
                self._chats.pop(visitor, None)

    async def aclose(self) -> None:
        """Stop polling (the stop of every background task: cancel, then await it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self._sockets:
            try:
                await self._tick()
            except Exception:
                log.exception("web chat poll failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()

    async def _tick(self) -> None:
        sockets = {v: list(s) for v, s in self._sockets.items()}
        async with self._sessions() as session:
            unknown = [v for v in sockets if v not in self._chats]
            if unknown:
                self._chats.update(await _chat_ids(session, unknown))
            chats = {self._chats[v]: group for v, group in sockets.items() if v in self._chats}
            if not chats:
                return
            floor = min(
                max(s.after, s.high - self.LOOKBACK) for group in chats.values() for s in group
            )
            rows = await chat_after(session, list(chats), floor)
        for row in rows:
            for socket in chats.get(row.conversation_id, ()):
                if row.id > socket.after and row.id not in socket.sent:
                    socket.sent.add(row.id)
                    socket.high = max(socket.high, row.id)
                    socket.queue.put_nowait(row)
        for group in chats.values():
            for socket in group:
                low = socket.high - self.LOOKBACK
                socket.sent.difference_update([i for i in socket.sent if i <= low])
