"""Short links on the wire (TWIN's ``shortLinks`` list)."""

from __future__ import annotations

from pydantic import Field

from herald.schemas.out.base import OutModel, Timestamp


class ShortLinkOut(OutModel):
    id: str
    # Left out, never null, when the link belongs to no message: TWIN's SDK reads a string.
    message_id: str = Field(default="")
    task_id: str | None
    company_id: int
    content: str = Field(description="The original URL.")
    shortcut: str = Field(description="The short URL.")
    code: str
    clicks: int
    created_at: Timestamp
    updated_at: Timestamp
    first_visited_at: Timestamp | None
    last_visited_at: Timestamp | None
    expires_at: Timestamp | None


class ShortLinkList(OutModel):
    count: int
    items: list[ShortLinkOut]
