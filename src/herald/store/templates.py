"""Templates and their versions.

A template's content is never edited in place: every update adds a ``TemplateVersion`` and
moves ``Template.current_version``, so a message that records the version it was rendered from
keeps pointing at exactly the content it was built with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow


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
