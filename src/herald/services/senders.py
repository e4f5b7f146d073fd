"""Senders, the resource: registering, changing, listing and removing the provider accounts a
project sends from, and choosing the one a message goes out through (what an account needs
and how its secrets are sealed: ``sender_accounts.py``)."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain.phones import InvalidPhone, to_e164
from herald.domain.statuses import Status
from herald.domain.urls import PUBLIC_ONLY, UrlPolicy
from herald.errors import Conflict, NotFound, ValidationFailed
from herald.services.sender_accounts import (
    PROVIDERS,
    SECRET_KEYS,
    NewSender,
    as_new_sender,
    credentials_of,
    invalid,
    validated,
)
from herald.services.vault import Vault
from herald.store.messages import deliveries_through, sender_has_history
from herald.store.senders import (
    Sender,
    clear_default,
    default_sender,
    newest_real_sender,
    removed_sender,
    senders_of,
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
    new = validated(new, urls)
    current_default = await default_sender(session, project_id, new.channel)
    make_default = new.default
    if make_default is None:
        make_default = current_default is None or (
            current_default.provider == "sandbox" and new.provider != "sandbox"
        )
    if make_default:
        await clear_default(session, project_id, new.channel)
    settings = {
        "provider": new.provider,
        "account_id": new.account_sid,
        "credentials_encrypted": vault.encrypt_json(credentials_of(new)),
        "base_url": new.base_url,
        "rate_limit": new.rate_limit,
        "is_default": make_default,
        "smart_encoding": new.smart_encoding,
    }
    removed = await removed_sender(session, project_id, new.channel, new.from_address)
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
CHANGEABLE |= frozenset(SECRET_KEYS)


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
    wanted = validated(replace(as_new_sender(sender, vault), **changes), urls)
    if sender.is_default and wanted.default is False:
        raise invalid(
            f"This is the project's default {sender.channel} sender; make another sender the "
            "default instead (PATCH it with default: true).",
            "default",
            code="default_required",
        )
    if wanted.default and not sender.is_default:
        await clear_default(session, project_id, sender.channel)
    sender.account_id = wanted.account_sid
    sender.credentials_encrypted = vault.encrypt_json(credentials_of(wanted))
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
    wanted = {"channel": channel, "provider": provider}
    equal = {column: value.lower() for column, value in wanted.items() if value}
    return await senders_of(session, project_id, newest_first=newest_first, **equal)


SORT_KEYS = ("createdAt",)


async def get_sender(session: AsyncSession, project_id: str, sender_id: str) -> Sender:
    """The project's sender ``sender_id``, not removed, or 404."""
    sender = await session.get(Sender, sender_id)
    if sender is None or sender.project_id != project_id or sender.removed_at is not None:
        raise NotFound(f"No sender with id {sender_id}.", code="sender_not_found")
    return sender


async def telegram_sender(session: AsyncSession, project_id: str, sender_id: str) -> Sender:
    """The project's sender ``sender_id``, refused unless it is a Telegram bot."""
    sender = await get_sender(session, project_id, sender_id)
    if sender.provider != "telegram":
        raise ValidationFailed("This sender is not a Telegram bot.", code="not_telegram")
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
    waiting = await deliveries_through(session, sender.id, _UNSENT)
    if waiting:
        raise Conflict(
            f"{waiting} message(s) are still waiting to go out through this sender. Cancel "
            "them (DELETE /api/v1/messages) or let them be sent, then remove the sender.",
            code="sender_in_use",
            details={"waiting": waiting},
        )
    was_default = sender.is_default
    if await sender_has_history(session, sender.id):
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
    heir = await newest_real_sender(session, removed)
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
