"""What Herald told a client about a message: its callbacks and every attempt to deliver one."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald.errors import NotFound
from herald.services.messages.views import iso
from herald.store.callbacks import callbacks_of
from herald.store.messages import message_exists


async def callback_log(session: AsyncSession, project_id: str, message_id: str) -> dict[str, Any]:
    """A message's callbacks in sequence, each with its delivery attempts (oldest first)."""
    if not await message_exists(session, project_id, message_id):
        raise NotFound(f"No message with id {message_id}.", code="message_not_found")
    items = [
        {
            "id": cb.id,
            "sequence": cb.sequence,
            "status": cb.status,
            "url": cb.url,
            "state": cb.state,
            "createdAt": iso(cb.created_at),
            "nextAttemptAt": iso(cb.next_attempt_at) if cb.state == "pending" else None,
            "attempts": [
                {
                    "at": iso(a.at),
                    "url": cb.url,
                    "httpStatus": a.http_status,
                    "response": a.response_excerpt,
                    "error": a.error,
                }
                for a in attempts
            ],
        }
        for cb, attempts in await callbacks_of(session, message_id)
    ]
    return {"messageId": message_id, "count": len(items), "items": items}
