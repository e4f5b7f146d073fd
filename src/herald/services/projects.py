"""Projects: creation, API-key authentication, their settings."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from herald.channels.sandbox import SANDBOX_FROM
from herald.domain.signatures import WEBHOOK_SECRET_PREFIX
from herald.domain.timezones import InvalidTimeZone, load_zone
from herald.domain.urls import PUBLIC_ONLY, UrlPolicy
from herald.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from herald.services.messages.provider_aliases import checked_aliases
from herald.services.url_checks import refuse_url
from herald.services.vault import Vault
from herald.store.projects import (
    Project,
    all_projects,
    key_hashes,
    project_by_key_hash,
    projects_named,
)
from herald.store.senders import Sender

KEY_PREFIX = "hrld_"


class Unset:
    """Marks a field the caller did not send (None means "clear it")."""


UNSET = Unset()


@dataclass(frozen=True, slots=True)
class CreatedProject:
    project_id: str
    name: str
    api_key: str
    webhook_secret: str


def new_webhook_secret() -> str:
    """``whsec_`` and 32 random bytes in standard, padded base64: what Standard Webhooks
    libraries decode into their HMAC key."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


async def rotate_webhook_secret(session: AsyncSession, vault: Vault, name: str) -> str:
    """Give the project named ``name`` a new webhook secret; the old one stops at once."""
    found = await projects_named(session, name.strip())
    if not found:
        raise NotFound(
            f"There is no project named {name!r}; 'herald projects list' shows them.",
            code="project_not_found",
        )
    if len(found) > 1:
        raise Conflict(
            f"{len(found)} projects are named {name!r}; Herald cannot tell which one to change.",
            code="ambiguous_project_name",
        )
    secret = new_webhook_secret()
    found[0].webhook_secret_encrypted = vault.encrypt(secret)
    return secret


def hash_key(api_key: str) -> str:
    """The hash an API key is stored and looked up by."""
    return hashlib.sha256(api_key.encode()).hexdigest()


async def create_project(session: AsyncSession, vault: Vault, name: str) -> CreatedProject:
    """A new project with a fresh API key, webhook secret and a default sandbox SMS sender."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed(
            "A project name must be 1 to 200 characters long.", code="invalid_project_name"
        )
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    webhook_secret = new_webhook_secret()
    project = Project(
        name=name,
        api_key_hash=hash_key(api_key),
        api_key_prefix=api_key[:12],
        webhook_secret_encrypted=vault.encrypt(webhook_secret),
    )
    session.add(project)
    await session.flush()
    # Every project can send at once, without credentials, through the sandbox.
    session.add(
        Sender(
            project_id=project.id,
            channel="sms",
            provider="sandbox",
            from_address=SANDBOX_FROM,
            credentials_encrypted=vault.encrypt_json({}),
            is_default=True,
        )
    )
    return CreatedProject(project.id, project.name, api_key, webhook_secret)


async def authenticate(session: AsyncSession, api_key: str) -> Project:
    """The project an API key belongs to."""
    project = await project_by_key_hash(session, hash_key(api_key))
    if project is None:
        raise Unauthorized(
            "The API key is not valid. Send 'Authorization: Bearer <apiKey>' with the key "
            "printed by 'herald projects create'.",
            code="invalid_api_key",
        )
    return project


async def key_owners(session: AsyncSession) -> dict[str, str]:
    """Every project's API key hash, with the project it opens."""
    return await key_hashes(session)


async def list_projects(session: AsyncSession) -> list[Project]:
    """Every project, oldest first."""
    return await all_projects(session)


async def get_project(session: AsyncSession, project_id: str) -> Project:
    """The calling project; gone since its key was checked means the key no longer opens it."""
    project = await session.get(Project, project_id)
    if project is None:
        raise Unauthorized("The project of this API key no longer exists.", code="invalid_api_key")
    return project


async def update_settings(
    session: AsyncSession,
    project_id: str,
    *,
    default_timezone: str | Unset | None = UNSET,
    rate_limit: float | Unset | None = UNSET,
    provider_aliases: dict[str, Any] | Unset | None = UNSET,
    callback_url: str | Unset | None = UNSET,
    urls: UrlPolicy = PUBLIC_ONLY,
) -> Project:
    """Change the project's default time zone, its own sending-rate cap, its provider aliases,
    its default callbackUrl (``urls``: where the installation lets one point)."""
    project = await get_project(session, project_id)
    if not isinstance(callback_url, Unset):
        if callback_url is not None:
            check_callback_url(callback_url, urls)
        project.callback_url = callback_url
    if not isinstance(default_timezone, Unset):
        if default_timezone is not None:
            try:
                load_zone(default_timezone)
            except InvalidTimeZone as e:
                raise ValidationFailed(f"{e}.", code="invalid_timezone") from e
        project.default_timezone = default_timezone
    if not isinstance(rate_limit, Unset):
        if rate_limit is not None and not (0 < rate_limit <= 100_000):
            raise ValidationFailed(
                "The rate limit must be between 0 and 100000 messages per second "
                "(null removes it).",
                code="invalid_rate_limit",
            )
        project.rate_limit = rate_limit
    if not isinstance(provider_aliases, Unset):
        aliases = checked_aliases(provider_aliases) if provider_aliases is not None else {}
        project.provider_aliases = aliases or None
    return project


def check_callback_url(url: str, urls: UrlPolicy) -> None:
    """Refuse a callbackUrl Herald could not or must not POST to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(
            "'callbackUrl' must be an absolute http(s) URL (null removes the default).",
            code="invalid_callback_url",
        )
    refuse_url(urls, url, "callbackUrl")
