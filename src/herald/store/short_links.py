"""Short links in SMS text, and the clicks on them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow


class ShortLink(Base):
    """``{base}/{code}`` redirects to ``url``; counters are kept on the row for cheap reads."""

    __tablename__ = "short_links"
    __table_args__ = (
        Index(None, "code", unique=True),
        Index(None, "project_id", "message_id"),
        Index(None, "project_id", "task_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # No foreign key: links are inserted in the same bulk as their messages, and the order of
    # the two inserts must not matter.
    message_id: Mapped[str | None] = mapped_column(String(36))
    task_id: Mapped[str | None] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    first_clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LinkClick(Base):
    __tablename__ = "link_clicks"
    __table_args__ = (Index(None, "link_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    link_id: Mapped[str] = mapped_column(ForeignKey("short_links.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(String(500))
