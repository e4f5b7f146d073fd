"""Templates and their versions.

A template's content is never edited in place: every update adds a ``TemplateVersion`` and
moves ``Template.current_version``, so a message that records the version it was rendered from
keeps pointing at exactly the content it was built with. The queries the template service
runs are here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, ForeignKey, Index, Integer, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow
from herald.store.users import User


class Template(Base):
    __tablename__ = "templates"
    __table_args__ = (
        Index(None, "project_id", "created_at"),
        Index(None, "project_id", "name"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Soft delete: messages keep referring to the template and its versions.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TemplateVersion(Base):
    __tablename__ = "template_versions"
    __table_args__ = (Index(None, "template_id", "version", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    template_id: Mapped[str] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # channel key -> TWIN channel object (content fields and delivery settings).
    channels: Mapped[dict[str, Any]] = mapped_column(JSON)
    # [["HH:MM:SS", "HH:MM:SS"], ...]
    allowed_time_ranges: Mapped[list[list[str]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The user who saved this version; None when it came with an API key (no person).
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


async def live_template(
    session: AsyncSession, project_id: str, template_id: str, *, lock: bool = False
) -> Template | None:
    """The project's template with that id, unless it was deleted; ``lock`` takes a row lock."""
    query = select(Template).where(
        Template.id == template_id,
        Template.project_id == project_id,
        Template.deleted_at.is_(None),
    )
    if lock:
        # Serialises concurrent edits of one template on PostgreSQL (SQLite's writers already
        # take turns), so two updates never both become version n + 1.
        query = query.with_for_update()
    return await session.scalar(query)


async def template_version(
    session: AsyncSession, template_id: str, version: int
) -> TemplateVersion | None:
    """One version of a template, if it has it."""
    return await session.scalar(
        select(TemplateVersion).where(
            TemplateVersion.template_id == template_id, TemplateVersion.version == version
        )
    )


async def add_version(
    session: AsyncSession,
    template: Template,
    channels: dict[str, Any],
    allowed_time_ranges: list[list[str]],
    *,
    now: datetime,
    created_by: str | None = None,
) -> TemplateVersion:
    """Store ``template``'s current version with this content, saved by ``created_by``."""
    version = TemplateVersion(
        template_id=template.id,
        version=template.current_version,
        channels=channels,
        allowed_time_ranges=allowed_time_ranges,
        created_at=now,
        created_by=created_by,
    )
    session.add(version)
    await session.flush()
    return version


async def current_templates(
    session: AsyncSession,
    project_id: str,
    *,
    name: str | None,
    ids: Sequence[str],
    limit: int,
    offset: int,
    newest_first: bool,
) -> tuple[int, list[tuple[Template, TemplateVersion]]]:
    """How many live templates match, and one page of them with their current versions."""
    where: list[ColumnElement[bool]] = [
        Template.project_id == project_id,
        Template.deleted_at.is_(None),
    ]
    if name:
        where.append(Template.name == name)
    if ids:
        where.append(Template.id.in_(list(ids)))
    count = await session.scalar(select(func.count()).select_from(Template).where(*where))
    rows = await session.execute(
        select(Template, TemplateVersion)
        .join(
            TemplateVersion,
            (TemplateVersion.template_id == Template.id)
            & (TemplateVersion.version == Template.current_version),
        )
        .where(*where)
        .order_by(Template.created_at.desc() if newest_first else Template.created_at, Template.id)
        .limit(limit)
        .offset(offset)
    )
    return count or 0, [(template, version) for template, version in rows]


async def versions_of(
    session: AsyncSession, template_id: str
) -> list[tuple[TemplateVersion, str | None]]:
    """Every version of a template, newest first, with the e-mail of the user who saved it."""
    rows = await session.execute(
        select(TemplateVersion, User.email)
        .outerjoin(User, User.id == TemplateVersion.created_by)
        .where(TemplateVersion.template_id == template_id)
        .order_by(TemplateVersion.version.desc())
    )
    return [(version, email) for version, email in rows]
