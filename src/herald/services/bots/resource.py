"""A bot: a Twilio number that answers texts, its fields, and its create/get/update/delete.

How it answers is :mod:`herald.services.bots.inbound`; its conversations are
:mod:`herald.services.bots.conversations`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain.keywords import InvalidRule, parse_rules
from herald.domain.phones import InvalidPhone, to_e164
from herald.domain.urls import PUBLIC_ONLY, UrlPolicy
from herald.errors import Conflict, NotFound, ValidationFailed
from herald.services.projects import UNSET, Unset
from herald.services.sender_accounts import NewSender
from herald.services.senders import add_sender
from herald.services.url_checks import refuse_url
from herald.services.vault import Vault
from herald.store.bots import Bot
from herald.store.senders import Sender

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
MAX_TEXT = 1600
# Twilio waits 15 s for the TwiML; a bot's backend gets a fraction of it.
MIN_TIMEOUT, MAX_TIMEOUT = 0.1, 10.0


def _invalid(message: str, field: str, code: str = "invalid_bot") -> ValidationFailed:
    return ValidationFailed(message, code=code, details={"field": field})


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
    """One of the project's bots; ``bot_not_found`` for any other id."""
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
    """The project's bots, oldest first."""
    query = select(Bot).where(Bot.project_id == project_id).order_by(Bot.created_at, Bot.id)
    return list(await session.scalars(query))


async def delete_bot(session: AsyncSession, project_id: str, bot_id: str) -> None:
    """Delete a bot with its conversations; its sender stays (messages refer to it)."""
    bot = await get_bot(session, project_id, bot_id)
    await session.delete(bot)
