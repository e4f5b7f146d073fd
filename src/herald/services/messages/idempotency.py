"""Creating messages once per ``Idempotency-Key``: replay the first answer, refuse a reuse.

The route reads the header; this module decides. A key seen before with the same request
answers the first answer's very bytes; with another request, 409; a new key's answer is
kept with the messages it created, for ``idempotency_hours``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.clock import Clock
from herald.config import Settings
from herald.errors import Conflict, ValidationFailed
from herald.schemas.messages import CreateMessagesIn
from herald.services.messages import accepting
from herald.store.db import read_snapshot
from herald.store.idempotency import IdempotentRequest, find_answer, forget_answers

# One request is answered (and its answer kept for Idempotency-Key) in one piece: 10,000
# results are about 2.4 MB. Larger sends belong in a file (a send task).
MAX_RECIPIENTS = 10_000


@dataclass(frozen=True, slots=True)
class Answer:
    """The JSON a create request answers, and whether it is a kept answer replayed."""

    body: str
    status_code: int = 201
    replayed: bool = False


async def create_messages(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    settings: Settings,
    project_id: str,
    payload: CreateMessagesIn,
    key: str | None,
) -> Answer:
    """Accept ``payload`` once per ``key``: TWIN's bare array of results, one per message."""
    recipients = sum(len(m.destinations) for m in payload.messages)
    if recipients > MAX_RECIPIENTS:
        raise ValidationFailed(
            f"This request has {recipients:,} destinations; one request takes at most "
            f"{MAX_RECIPIENTS:,}. Split it, or send a file with POST /api/v1/messages/bulk.",
            code="too_many_destinations",
            details={"destinations": recipients, "max": MAX_RECIPIENTS},
        )
    accept = _Acceptance(sessions, clock, settings, project_id, payload, key)
    try:
        return await accept()
    except IntegrityError:
        # Another request with the same key won the race: answer what it answered. Or a
        # sender was removed between planning and storing: plan again without it.
        stored = await accept.stored()
        return _replay(stored, accept.fingerprint) if stored else await accept()


def _fingerprint(payload: CreateMessagesIn) -> str:
    # The request as parsed, so a retry that spaces or escapes its JSON differently is the
    # same request.
    return hashlib.sha256(payload.model_dump_json(by_alias=True).encode()).hexdigest()


class _Acceptance:
    """One create request: checked and planned on a read-only snapshot, then stored.

    Planning (phone numbers, templates, segments, the rows themselves) is most of the work;
    outside the write transaction it does not keep other writers waiting, and on SQLite
    every process shares one write lock. A request with a chat channel is planned inside
    the write transaction: planning may make its bot's web chat sender.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Settings,
        project: str,
        payload: CreateMessagesIn,
        key: str | None,
    ) -> None:
        self.sessions, self.clock, self.project, self.payload = sessions, clock, project, payload
        self.key = key
        # Only computed when it is needed.
        self.fingerprint = _fingerprint(payload) if key else ""
        self.keep_for = timedelta(hours=settings.idempotency_hours)
        self.policy = accepting.CreationPolicy.from_settings(settings)

    async def stored(self) -> IdempotentRequest | None:
        """The first answer to this key, while it is kept."""
        if not self.key:
            return None
        async with self.sessions() as session:
            await read_snapshot(session)
            stored = await find_answer(session, self.project, self.key)
        if stored is None or stored.created_at < self._expired_before():
            return None
        return stored

    def _expired_before(self) -> datetime:
        return self.clock.now() - self.keep_for

    async def __call__(self) -> Answer:
        if (stored := await self.stored()) is not None:
            return _replay(stored, self.fingerprint)
        now = self.clock.now()
        planned = None
        if accepting.plans_without_writing(self.payload):
            async with self.sessions() as session:
                await read_snapshot(session)
                planned = await accepting.plan_messages(
                    session, self.project, self.payload, now=now, policy=self.policy
                )
        async with self.sessions() as session, session.begin():
            if planned is None:
                planned = await accepting.plan_messages(
                    session, self.project, self.payload, now=now, policy=self.policy
                )
            results = await accepting.store_messages(
                session, self.project, planned, now=now, policy=self.policy
            )
            body = json.dumps(results, separators=(",", ":"))
            if self.key:
                # Expired answers of the project go, this key's own included.
                await forget_answers(session, self.project, self._expired_before())
                # Stored with the messages: a retry either finds both or neither.
                session.add(
                    IdempotentRequest(
                        project_id=self.project,
                        key=self.key,
                        request_hash=self.fingerprint,
                        status_code=201,
                        response_body=body,
                        created_at=now,
                    )
                )
        return Answer(body)


def _replay(stored: IdempotentRequest, fingerprint: str) -> Answer:
    if stored.request_hash != fingerprint:
        raise Conflict(
            "This Idempotency-Key was already used with a different request body; "
            "use a new key for a new request.",
            code="idempotency_key_reused",
        )
    # The first answer's very bytes.
    return Answer(stored.response_body, stored.status_code, replayed=True)
