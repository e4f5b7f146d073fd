"""Senders: registering provider accounts and choosing the one a message goes out through."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.channels.base import SenderAccount
from herald.channels.email import parse_smtp_url, validate_email_address
from herald.channels.telegram import DEFAULT_BASE_URL as TELEGRAM_BASE_URL
from herald.channels.twilio import DEFAULT_BASE_URL
from herald.channels.whatsapp_meta import DEFAULT_BASE_URL as META_BASE_URL
from herald.domain.phones import InvalidPhone, to_e164
from herald.domain.statuses import Status
from herald.domain.urls import PUBLIC_ONLY, UrlPolicy
from herald.errors import Conflict, NotFound, ValidationFailed
from herald.services.problems import Problems
from herald.services.url_checks import host_problem, url_problem
from herald.services.vault import Vault
from herald.store.messages import Delivery
from herald.store.senders import Sender

PROVIDERS = {
    "sms": ("twilio", "sandbox"),
    "email": ("smtp",),
    "telegram": ("telegram",),
    "whatsapp": ("twilio-whatsapp", "meta-whatsapp"),
}
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
# Twilio alphanumeric sender IDs: up to 11 letters, digits and spaces, at least one letter.
_ALPHANUMERIC_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


@dataclass(frozen=True, slots=True)
class NewSender:
    channel: str
    provider: str
    from_address: str
    account_sid: str | None = None
    auth_token: str | None = None
    base_url: str | None = None
    rate_limit: float | None = None
    default: bool | None = None
    smart_encoding: bool = False
    # Other channels' secrets: SMTP username/password, a Telegram bot token.
    username: str | None = None
    password: str | None = None
    bot_token: str | None = None
    # Meta's WhatsApp Cloud API: the phone number id goes in account_sid's place.
    access_token: str | None = None
    app_secret: str | None = None
    verify_token: str | None = None


def _invalid(message: str, field: str, code: str = "invalid_sender") -> ValidationFailed:
    return ValidationFailed(message, code=code, details={"field": field})


def _checked_from(channel: str, from_address: str) -> str:
    if channel == "email":
        try:
            return validate_email_address(from_address)
        except ValueError as e:
            raise _invalid(f"'from' must be the sender's e-mail address: {e}", "from") from e
    if channel == "telegram":
        if not from_address:
            raise _invalid("'from' must name the bot, e.g. @herald_bot.", "from")
        return from_address
    if channel == "sms" and _ALPHANUMERIC_ID.match(from_address) and not from_address.isdigit():
        return from_address
    try:
        return to_e164(from_address)
    except InvalidPhone as e:
        what = (
            "" if channel == "whatsapp" else " or an alphanumeric sender ID of up to 11 characters"
        )
        raise _invalid(
            f"'from' must be a phone number in E.164 (+14155550123){what}: {e}", "from"
        ) from e


def _checked_base_url(provider: str, base_url: str | None, urls: UrlPolicy) -> str | None:
    if provider == "smtp":
        if not base_url:
            raise _invalid(
                "'baseUrl' is required for e-mail: smtp://host:587 (STARTTLS) or smtps://host:465.",
                "baseUrl",
            )
        try:
            endpoint = parse_smtp_url(base_url)
        except ValueError as e:
            raise _invalid(f"'baseUrl' is not a usable SMTP URL: {e}", "baseUrl") from e
        if (refused := host_problem(urls, endpoint.host, "baseUrl")) is not None:
            raise _invalid(refused, "baseUrl", "url_not_allowed")
        return base_url
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid("'baseUrl' must be an absolute http(s) URL.", "baseUrl")
        if (refused := url_problem(urls, base_url, "baseUrl")) is not None:
            raise _invalid(refused, "baseUrl", "url_not_allowed")
    if provider in ("twilio", "twilio-whatsapp"):
        return base_url or DEFAULT_BASE_URL
    if provider == "telegram":
        return base_url or TELEGRAM_BASE_URL
    if provider == "meta-whatsapp":
        return base_url or META_BASE_URL
    return base_url


# The account fields each provider uses (wire names); any other given is refused, not stored
# unused. Meta's phoneNumberId is kept where Twilio's accountSid is.
ACCOUNT_FIELDS: dict[str, tuple[str, ...]] = {
    "twilio": ("accountSid", "authToken"),
    "twilio-whatsapp": ("accountSid", "authToken"),
    "sandbox": (),
    "smtp": ("username", "password"),
    "telegram": ("botToken",),
    "meta-whatsapp": ("phoneNumberId", "accessToken", "appSecret", "verifyToken"),
}


def _validated(new: NewSender, urls: UrlPolicy) -> NewSender:
    channel = new.channel.lower()
    provider = new.provider.lower()
    if channel not in PROVIDERS:
        raise _invalid(
            f"Channel {new.channel!r} is not supported; use one of: {', '.join(PROVIDERS)}.",
            "channel",
        )
    if provider not in PROVIDERS[channel]:
        allowed = ", ".join(PROVIDERS[channel])
        raise _invalid(
            f"Provider {new.provider!r} is not supported for {channel}; use {allowed}.", "provider"
        )
    faults = Problems()  # every problem of the sender at once

    def fault(message: str, field: str, code: str = "invalid_sender") -> None:
        faults.add(field, message, code)

    from_address, base_url = "", new.base_url
    try:
        from_address = _checked_from(channel, new.from_address.strip())
    except ValidationFailed as e:
        fault(e.message, "from")
    try:
        base_url = _checked_base_url(provider, new.base_url, urls)
    except ValidationFailed as e:
        fault(e.message, "baseUrl", e.code)
    if new.rate_limit is not None and not (0 < new.rate_limit <= 10_000):
        fault("'rateLimit' must be more than 0 and at most 10000 messages per second.", "rateLimit")
    given = {
        "phoneNumberId" if provider == "meta-whatsapp" else "accountSid": new.account_sid,
        **{key: getattr(new, field) for field, key in _SECRET_KEYS.items()},
    }
    for key, value in given.items():
        if value and key not in ACCOUNT_FIELDS[provider]:
            fault(f"'{key}' is not used by {provider} senders; leave it out.", key)
    if provider in ("twilio", "twilio-whatsapp"):
        if not new.account_sid:
            fault(
                "'accountSid' is required for Twilio (AC followed by 32 hex digits).", "accountSid"
            )
        elif not _ACCOUNT_SID.match(new.account_sid):
            fault(
                "'accountSid' must be a Twilio Account SID: AC followed by 32 hex digits.",
                "accountSid",
            )
        if not new.auth_token:
            fault("'authToken' is required for Twilio.", "authToken")
    if provider == "meta-whatsapp":
        if not new.account_sid or not new.account_sid.isdigit():
            fault(
                "'phoneNumberId' (digits, from Meta's WhatsApp Manager) is required.",
                "phoneNumberId",
            )
        for value, field in (
            (new.access_token, "accessToken"),
            (new.app_secret, "appSecret"),
            (new.verify_token, "verifyToken"),
        ):
            if not value:
                fault(f"'{field}' is required for Meta's WhatsApp Cloud API.", field)
    if provider == "telegram" and not new.bot_token:
        fault("'botToken' is required for Telegram (from @BotFather).", "botToken")
    if faults.items:
        raise ValidationFailed(
            faults.summary(with_path=False),  # each sentence names its field
            code=faults.items[0]["code"] if len(faults.items) == 1 else "invalid_sender",
            details={"field": faults.items[0]["path"], "errors": faults.items},
        )
    return replace(
        new, channel=channel, provider=provider, from_address=from_address, base_url=base_url
    )


# NewSender's secret fields, under their keys in a sender's encrypted credentials.
_SECRET_KEYS = {
    "auth_token": "authToken",
    "username": "username",
    "password": "password",
    "bot_token": "botToken",
    "access_token": "accessToken",
    "app_secret": "appSecret",
    "verify_token": "verifyToken",
}


def _credentials(new: NewSender) -> dict[str, str]:
    secrets = {key: getattr(new, field) for field, key in _SECRET_KEYS.items()}
    return {key: value for key, value in secrets.items() if value}


async def _clear_default(session: AsyncSession, project_id: str, channel: str) -> None:
    """No sender of the channel is the default (one is about to become it)."""
    await session.execute(
        update(Sender)
        .where(Sender.project_id == project_id, Sender.channel == channel)
        .values(is_default=False)
    )


async def add_sender(
    session: AsyncSession,
    vault: Vault,
    project_id: str,
    new: NewSender,
    *,
    urls: UrlPolicy = PUBLIC_ONLY,
) -> Sender:
    """Register a sender. The first real (non-sandbox) one becomes the default.

    ``urls`` names the private hosts its baseUrl may point at (by default none).
    """
    new = _validated(new, urls)
    current_default = await session.scalar(
        select(Sender).where(
            Sender.project_id == project_id,
            Sender.channel == new.channel,
            Sender.is_default.is_(True),
        )
    )
    make_default = new.default
    if make_default is None:
        make_default = current_default is None or (
            current_default.provider == "sandbox" and new.provider != "sandbox"
        )
    if make_default:
        await _clear_default(session, project_id, new.channel)
    settings = {
        "provider": new.provider,
        "account_id": new.account_sid,
        "credentials_encrypted": vault.encrypt_json(_credentials(new)),
        "base_url": new.base_url,
        "rate_limit": new.rate_limit,
        "is_default": make_default,
        "smart_encoding": new.smart_encoding,
    }
    removed = await session.scalar(
        select(Sender).where(
            Sender.project_id == project_id,
            Sender.channel == new.channel,
            Sender.from_address == new.from_address,
            Sender.removed_at.is_not(None),
        )
    )
    if removed is not None:
        # The same address again (new credentials, say): the old row comes back, so its
        # history and the new messages stay under one sender id.
        for name, value in settings.items():
            setattr(removed, name, value)
        removed.removed_at = None
        removed.rate_next_at = None
        return removed
    sender = Sender(
        project_id=project_id,
        channel=new.channel,
        from_address=new.from_address,
        **settings,
    )
    session.add(sender)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as e:
        raise Conflict(
            f"This project already has a {new.channel} sender from {new.from_address}; change "
            "it in place with PATCH /api/v1/senders/{id} (herald senders update ID).",
            code="sender_exists",
        ) from e
    return sender


# What an update may change; channel, provider and from are what the sender is.
CHANGEABLE = frozenset({"account_sid", "base_url", "rate_limit", "default", "smart_encoding"})
CHANGEABLE |= frozenset(_SECRET_KEYS)


async def update_sender(
    session: AsyncSession,
    vault: Vault,
    project_id: str,
    sender_id: str,
    changes: dict[str, Any],
    *,
    urls: UrlPolicy = PUBLIC_ONLY,
) -> Sender:
    """Change a sender's settings or secrets in place: fields not given are kept.

    The result is checked as a new sender would be. ``default: true`` takes the default over
    from the channel's current one; ``false`` on the default is refused, since the channel
    would be left without one: make another sender the default instead.
    """
    if unknown := set(changes) - CHANGEABLE:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    sender = await get_sender(session, project_id, sender_id)
    if sender.provider not in PROVIDERS.get(sender.channel, ()):
        raise ValidationFailed(
            "Herald made this sender for a bot's web chat; it has nothing to change.",
            code="sender_not_changeable",
        )
    secrets = vault.decrypt_json(sender.credentials_encrypted)
    current = NewSender(
        channel=sender.channel,
        provider=sender.provider,
        from_address=sender.from_address,
        account_sid=sender.account_id,
        base_url=sender.base_url,
        rate_limit=sender.rate_limit,
        default=sender.is_default,
        smart_encoding=sender.smart_encoding,
        # Only what the provider uses: older versions stored any secret they were given.
        **{
            field: secrets.get(key)
            for field, key in _SECRET_KEYS.items()
            if key in ACCOUNT_FIELDS[sender.provider]
        },
    )
    wanted = _validated(replace(current, **changes), urls)
    if sender.is_default and wanted.default is False:
        raise _invalid(
            f"This is the project's default {sender.channel} sender; make another sender the "
            "default instead (PATCH it with default: true).",
            "default",
            code="default_required",
        )
    if wanted.default and not sender.is_default:
        await _clear_default(session, project_id, sender.channel)
    sender.account_id = wanted.account_sid
    sender.credentials_encrypted = vault.encrypt_json(_credentials(wanted))
    sender.base_url = wanted.base_url
    sender.rate_limit = wanted.rate_limit
    sender.is_default = bool(wanted.default)
    sender.smart_encoding = wanted.smart_encoding
    return sender


async def list_senders(
    session: AsyncSession,
    project_id: str,
    *,
    channel: str | None = None,
    provider: str | None = None,
    newest_first: bool = False,
) -> list[Sender]:
    """The project's senders, oldest first (the order they were added) unless told."""
    query = select(Sender).where(Sender.project_id == project_id, Sender.removed_at.is_(None))
    if channel:
        query = query.where(Sender.channel == channel.lower())
    if provider:
        query = query.where(Sender.provider == provider.lower())
    order = Sender.created_at.desc() if newest_first else Sender.created_at
    return list(await session.scalars(query.order_by(order, Sender.id)))


SORT_KEYS = ("createdAt",)


async def get_sender(session: AsyncSession, project_id: str, sender_id: str) -> Sender:
    sender = await session.get(Sender, sender_id)
    if sender is None or sender.project_id != project_id or sender.removed_at is not None:
        raise NotFound(f"No sender with id {sender_id}.", code="sender_not_found")
    return sender


# Deliveries that would still go out through their sender.
_UNSENT = (Status.PENDING, Status.SCHEDULED, Status.QUEUED)


async def remove_sender(
    session: AsyncSession, project_id: str, sender_id: str, now: datetime
) -> None:
    """Stop using a sender: it is no longer listed, chosen, or given inbound messages.

    Refused while messages still wait to go out through it. A sender that never sent is
    deleted; one with history is kept, marked removed, for that history and for delivery
    reports still to come (their signatures are checked with its credentials).
    """
    sender = await get_sender(session, project_id, sender_id)
    waiting = await session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.sender_id == sender.id, Delivery.status.in_(_UNSENT))
    )
    if waiting:
        raise Conflict(
            f"{waiting} message(s) are still waiting to go out through this sender. Cancel "
            "them (DELETE /api/v1/messages) or let them be sent, then remove the sender.",
            code="sender_in_use",
            details={"waiting": waiting},
        )
    was_default = sender.is_default
    if await session.scalar(select(exists().where(Delivery.sender_id == sender.id))):
        sender.removed_at = now
        sender.is_default = False
    else:
        await session.delete(sender)
    if was_default:
        await _promote_default(session, sender)


async def _promote_default(session: AsyncSession, removed: Sender) -> None:
    """After the default is removed, the newest other real sender of its channel takes over.

    Never the sandbox: messages meant for people must not silently stop reaching them. With
    no other real sender, sends without ``from`` are refused (no_sender) until one is added.
    """
    heir = await session.scalar(
        select(Sender)
        .where(
            Sender.project_id == removed.project_id,
            Sender.channel == removed.channel,
            Sender.id != removed.id,
            Sender.removed_at.is_(None),
            Sender.provider != "sandbox",
        )
        .order_by(Sender.created_at.desc())
        .limit(1)
    )
    if heir is not None:
        heir.is_default = True


class SenderDirectory:
    """Finds the sender for a message; caches each project's senders for a request's life."""

    def __init__(self, session: AsyncSession, project_id: str) -> None:
        self._session = session
        self._project_id = project_id
        self._by_channel: dict[str, list[Sender]] = {}

    @property
    def session(self) -> AsyncSession:
        return self._session

    @property
    def project_id(self) -> str:
        return self._project_id

    async def resolve(self, channel: str, from_address: str | None) -> Sender:
        """The sender whose ``from`` matches, else the project's default for the channel."""
        if channel not in self._by_channel:
            self._by_channel[channel] = await list_senders(
                self._session, self._project_id, channel=channel
            )
        senders = self._by_channel[channel]
        if from_address:
            for sender in senders:
                if sender.from_address == from_address:
                    return sender
            wanted = from_address
            with contextlib.suppress(InvalidPhone):
                wanted = to_e164(from_address)
            for sender in senders:
                if sender.from_address == wanted:
                    return sender
            known = sorted(s.from_address for s in senders)
            raise ValidationFailed(
                f"No {channel} sender is registered with from {from_address!r}"
                + (f" (there are: {', '.join(known)})" if known else "")
                + ". Register it (POST /api/v1/senders, herald senders add), or leave 'from' "
                "out to use the default sender.",
                code="unknown_sender",
                details={"from": from_address, "senders": known},
            )
        for sender in senders:
            if sender.is_default:
                return sender
        if senders:
            raise ValidationFailed(
                f"The project has no default {channel} sender: make one of its senders the "
                "default (PATCH /api/v1/senders/{id} with default: true, herald senders update "
                "ID --default), or name one in 'from'.",
                code="no_sender",
                details={"senders": sorted(s.from_address for s in senders)},
            )
        raise ValidationFailed(
            f"The project has no {channel} sender; register one (POST /api/v1/senders, "
            "herald senders add).",
            code="no_sender",
        )


def account_of(sender: Sender, vault: Vault) -> SenderAccount:
    """A sender's settings with its credentials decrypted, for an adapter."""
    return SenderAccount(
        id=sender.id,
        provider=sender.provider,
        from_address=sender.from_address,
        account_id=sender.account_id,
        # Herald's own channels (the web chat) have no secrets.
        credentials=(
            vault.decrypt_json(sender.credentials_encrypted) if sender.credentials_encrypted else {}
        ),
        base_url=sender.base_url,
    )
