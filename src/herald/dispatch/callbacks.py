"""Delivers client callbacks: signed POSTs to each message's ``callbackUrl``, with retries.

The callbacks were written to an outbox in the same transaction as the status change, so a
crash between the change and the POST loses nothing; the POST is retried with backoff and
full jitter, and every attempt is logged with a truncated response. A message's callbacks
go out one after the other, in their sequence: the next only once the one before it was
answered 2xx or given up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.channels.egress import TargetNotAllowed
from herald.channels.http import provider_http_client
from herald.clock import Clock
from herald.config import Settings
from herald.domain.retry import RetryPolicy
from herald.domain.signatures import herald_signature, standard_webhook_signature
from herald.services.vault import Vault
from herald.store.callbacks import ClientCallback, ClientCallbackAttempt, due_heads
from herald.store.db import is_postgres
from herald.store.projects import Project

log = logging.getLogger("herald.callbacks")

# Of each answer, what the attempt log keeps: enough to debug a receiver, not a copy of it.
EXCERPT_BYTES = 500


@dataclass(slots=True)
class _Outcome:
    callback_id: str
    http_status: int | None
    excerpt: str | None
    error: str | None
    # Retrying cannot help: the URL points where Herald does not connect.
    final: bool = False

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


class Graph(Protocol):
    """What the callback sender uses of the process's shared objects (``bootstrap.Herald``)."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    vault: Vault
    clock: Clock


class CallbackSender:
    """One worker's loop that posts due client callbacks and records each attempt."""

    def __init__(self, graph: Graph, client: httpx.AsyncClient | None = None) -> None:
        self.settings = s = graph.settings
        self.sessions = graph.sessions
        self.vault = graph.vault
        self.clock = graph.clock
        self.client = client or provider_http_client(
            timeout=s.callback_timeout_seconds,
            user_agent="Herald-Callbacks/0.1",
            urls=s.url_policy,
        )
        self.policy = RetryPolicy(
            max_attempts=s.callback_max_attempts, base_seconds=5.0, max_seconds=3600.0
        )
        # Opened secrets by their sealed form, so a rotated secret is never served stale.
        self._secrets: dict[str, str] = {}

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("delivering client callbacks failed; retrying")
                handled = 0
            if not handled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.2)

    async def _secrets_of(self, project_ids: set[str]) -> dict[str, str]:
        """Each project's webhook secret, read for every batch: a rotated one applies at once."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(Project.id, Project.webhook_secret_encrypted).where(
                    Project.id.in_(project_ids)
                )
            )
            sealed = rows.all()
        opened: dict[str, str] = {}
        for project_id, encrypted in sealed:
            if encrypted not in self._secrets:
                self._secrets[encrypted] = self.vault.decrypt(encrypted)
            opened[project_id] = self._secrets[encrypted]
        return opened

    async def run_once(self, limit: int = 200) -> int:
        now = self.clock.now()
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.sessions() as session, session.begin():
            query = due_heads(now, limit)
            if is_postgres(session):
                query = query.with_for_update(skip_locked=True)
            due = list(await session.scalars(query))
            for cb in due:
                cb.next_attempt_at = lease  # comes due again if we die mid-POST
            # At most one per message (the oldest pending one), so they may all go at once.
            claimed = [(cb.id, cb.project_id, cb.url, cb.body) for cb in due]
        if not claimed:
            return 0
        secrets = await self._secrets_of({project_id for _, project_id, _, _ in claimed})
        outcomes = await asyncio.gather(
            *(
                self._post(cb_id, secrets[project_id], url, body)
                for cb_id, project_id, url, body in claimed
            )
        )
        await self._record(list(outcomes))
        return len(claimed)

    async def _post(self, cb_id: str, secret: str, url: str, body: str) -> _Outcome:
        raw = body.encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Herald-Signature": herald_signature(secret, timestamp, raw),
            "X-Herald-Callback-Id": cb_id,
            # Standard Webhooks (standardwebhooks.com): the same id on every retry, so a
            # receiver can drop a duplicate.
            "webhook-id": cb_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_webhook_signature(secret, cb_id, timestamp, raw),
        }
        try:
            response = await self.client.post(url, content=raw, headers=headers)
        except TargetNotAllowed as e:
            return _Outcome(cb_id, None, None, str(e)[:500], final=True)
        except httpx.HTTPError as e:
            return _Outcome(cb_id, None, None, f"{type(e).__name__}: {e}"[:500])
        excerpt = response.content[:EXCERPT_BYTES].decode("utf-8", "replace")
        return _Outcome(cb_id, response.status_code, excerpt, None)

    async def _record(self, outcomes: list[_Outcome]) -> None:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            rows = {
                cb.id: cb
                for cb in await session.scalars(
                    select(ClientCallback).where(
                        ClientCallback.id.in_([o.callback_id for o in outcomes])
                    )
                )
            }
            for o in outcomes:
                cb = rows.get(o.callback_id)
                if cb is None:
                    continue
                cb.attempts += 1
                session.add(
                    ClientCallbackAttempt(
                        callback_id=cb.id,
                        at=now,
                        http_status=o.http_status,
                        response_excerpt=o.excerpt,
                        error=o.error,
                    )
                )
                if o.ok:
                    cb.state, cb.next_attempt_at = "sent", None
                    continue
                delay = None if o.final else self.policy.delay(cb.attempts)
                if delay is None:
                    cb.state, cb.next_attempt_at = "failed", None
                else:
                    cb.next_attempt_at = now + timedelta(seconds=delay)
