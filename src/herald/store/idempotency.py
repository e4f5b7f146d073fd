"""Stored answers to requests that carried an ``Idempotency-Key``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, utcnow


class IdempotentRequest(Base):
    __tablename__ = "idempotent_requests"
    __table_args__ = (Index(None, "project_id", "created_at"),)

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


async def find_answer(session: AsyncSession, project_id: str, key: str) -> IdempotentRequest | None:
    """The answer kept for ``key`` in the project, however old."""
    return await session.get(IdempotentRequest, (project_id, key))


async def forget_answers(session: AsyncSession, project_id: str, before: datetime) -> None:
    """Drop the project's answers kept since before ``before`` (an index range)."""
    await session.execute(
        delete(IdempotentRequest).where(
            IdempotentRequest.project_id == project_id, IdempotentRequest.created_at < before
        )
    )
