"""A message's client callbacks and their delivery attempts, on the wire."""

from __future__ import annotations

from herald.schemas.out.base import OutModel, Timestamp


class CallbackAttemptOut(OutModel):
    """One POST of a callback: when, where, what came back (its first 500 bytes), or why not."""

    at: Timestamp
    url: str
    http_status: int | None
    response: str | None
    error: str | None


class CallbackOut(OutModel):
    """One status callback: ``state`` is pending (to be sent or retried), sent or failed."""

    id: str
    sequence: int
    status: str
    url: str
    state: str
    created_at: Timestamp
    next_attempt_at: Timestamp | None
    attempts: list[CallbackAttemptOut]


class CallbackList(OutModel):
    message_id: str
    count: int
    items: list[CallbackOut]
