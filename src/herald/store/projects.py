"""Projects (tenants), their API keys and webhook secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the key: keys are 256 random bits, so a fast hash is as safe as a slow one.
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_prefix: Mapped[str] = mapped_column(String(16))
    webhook_secret_encrypted: Mapped[str] = mapped_column(String(500))
    # Recipients whose zone is neither given nor derivable from their number live here.
    default_timezone: Mapped[str | None] = mapped_column(String(64))
    # The project's own cap on its sending rate (messages/s), paced like a sender's.
    rate_limit: Mapped[float | None] = mapped_column(Float)
    rate_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Where a message's status callbacks go when it names no callbackUrl of its own.
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    # TWIN clients name providers Herald has no adapter for ("INFOBIP"): each such name
    # (upper case) maps to the Herald provider that stands in for it.
    provider_aliases: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


async def projects_named(session: AsyncSession, name: str) -> list[Project]:
    """Every project called ``name`` (names need not be unique)."""
    return list(await session.scalars(select(Project).where(Project.name == name)))


async def project_by_key_hash(session: AsyncSession, key_hash: str) -> Project | None:
    """The project whose API key has this hash."""
    return await session.scalar(select(Project).where(Project.api_key_hash == key_hash))


async def key_hashes(session: AsyncSession) -> dict[str, str]:
    """Every project's API key hash, with the project it opens."""
    rows = await session.execute(select(Project.api_key_hash, Project.id))
    return {key_hash: project_id for key_hash, project_id in rows}


async def all_projects(session: AsyncSession) -> list[Project]:
    """Every project, oldest first."""
    return list(await session.scalars(select(Project).order_by(Project.created_at)))
