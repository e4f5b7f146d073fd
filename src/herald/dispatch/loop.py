"""The dispatcher: claims due deliveries, hands them to providers, records what happened.

Claim → gates → call → record: the claim transaction passes each due delivery through the
send-time gates (``dispatch.gates``) and writes an ``Attempt`` row for each call it will make;
the calls are made with no database transaction open; a second transaction records what they
gave (``services.delivery.outcomes``). A crash at any point leaves a trail the next worker
can reconcile instead of resending blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.channels.base import (
    ChannelAdapter,
    FetchingAdapter,
    OutboundMessage,
    OutcomeUnknown,
    ProviderError,
    ProviderTemplate,
    SenderAccount,
)
from herald.clock import Clock
from herald.config import Settings
from herald.dispatch import gates
from herald.domain.retry import RetryPolicy
from herald.domain.statuses import Status
from herald.services.delivery.outcomes import Outcomes, ProviderCall, wants_price
from herald.services.delivery.tracking import Changes, apply_status
from herald.services.sender_accounts import account_of
from herald.services.vault import Vault
from herald.store.queue import SENDABLE, Claimed, claim_due
from herald.store.rows import ATTEMPTS, AttemptRow, DeliveryRow, by_ids, load
from herald.store.senders import Sender
from herald.store.tasks import settle_tasks

log = logging.getLogger("herald.dispatch")

# How often a worker looks for tasks that ended unseen (two last messages ending at once).
TASK_SETTLE_EVERY = timedelta(seconds=5)
# Built once (see store.rows.by_ids).
_SENDERS = select(Sender).where(by_ids(Sender.id))


class Graph(Protocol):
    """What a dispatcher uses of the process's shared objects (``bootstrap.Herald`` has them)."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    vault: Vault
    adapters: dict[str, ChannelAdapter]
    clock: Clock
    # Set when new work is stored, so an idle dispatcher does not wait for its next poll.
    work_available: asyncio.Event


def outbound_of(
    d: DeliveryRow, status_callback: str, now: datetime, *, use_template: bool = False
) -> OutboundMessage:
    """What the adapter sends for a delivery: its text plus the rich channels' fields.

    ``use_template``: WhatsApp outside the 24-hour window, where only the approved template
    (with its variables) may go out.
    """
    content = d.content or {}
    template = None
    if use_template:
        template = ProviderTemplate(
            name=content.get("templateName"),
            language=content.get("language"),
            content_sid=content.get("contentSid"),
            namespace=content.get("templateNamespace"),
            variables={str(k): str(v) for k, v in (content.get("templateData") or {}).items()},
        )
    return OutboundMessage(
        to=d.to_address,
        body=d.body,
        status_callback=status_callback,
        validity_seconds=(
            max(1, int((d.expires_at - now).total_seconds())) if d.expires_at else None
        ),
        subject=content.get("subject"),
        html=content.get("html"),
        image_url=content.get("imageUrl"),
        button_url=content.get("buttonUrl"),
        button_text=content.get("buttonText"),
        template=template,
        from_email=content.get("fromEmail"),
        from_name=content.get("fromName"),
        reply_to=content.get("replyTo"),
        media_url=content.get("mediaUrl"),
        document_filename=content.get("documentFilename"),
        message_id=d.message_id,
    )


class Dispatcher:
    """One worker's loop. Several may run against one database, in one process or many."""

    def __init__(self, graph: Graph, *, worker_id: str | None = None) -> None:
        self.settings = graph.settings
        self.sessions = graph.sessions
        self.vault = graph.vault
        self.adapters = graph.adapters
        self.clock = graph.clock
        self.work_available = graph.work_available
        self.worker_id = worker_id or f"w-{secrets.token_hex(4)}"
        self._fetching = frozenset(
            name for name, a in graph.adapters.items() if isinstance(a, FetchingAdapter)
        )
        self.outcomes = Outcomes(self.settings, self._fetching)
        self._accounts: dict[str, tuple[tuple[str | None, ...], SenderAccount]] = {}
        self._in_flight = asyncio.Semaphore(self.settings.dispatch_concurrency)
        self._next_settle: datetime | None = None

    @property
    def policy(self) -> RetryPolicy:
        """How failed sends are retried (the outcomes' policy; a test may set another)."""
        return self.outcomes.policy

    @policy.setter
    def policy(self, policy: RetryPolicy) -> None:
        self.outcomes.policy = policy

    def status_callback_url(self, attempt_id: str) -> str:
        """The URL Twilio posts an attempt's status callbacks to."""
        # The fragment is Twilio's connection override: by default it retries a callback
        # only when it cannot connect, so one Herald answered 5xx or too slowly (a restart,
        # a long lock) would be lost until the next read-back. Handling is idempotent, so a
        # retry of one that did land changes nothing. Twilio does not sign the fragment.
        base = self.settings.public_url.rstrip("/")
        return f"{base}/webhooks/twilio/status/{attempt_id}#rc=3&rp=ct,rt,5xx"

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and process batches until ``stop`` is set; batches overlap for throughput."""
        batches: set[asyncio.Task[None]] = set()
        max_batches = 4
        while not stop.is_set():
            await self._settle_tasks_now_and_then()
            if len(batches) >= max_batches:
                await asyncio.wait(batches, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                calls = await self._claim()
            except Exception:
                log.exception("claiming due work failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if calls:
                task = asyncio.create_task(self._process(calls))
                batches.add(task)
                task.add_done_callback(batches.discard)
                continue
            self.work_available.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.work_available.wait(), timeout=self.settings.dispatch_idle_sleep
                )
        if batches:
            await asyncio.wait(batches)

    async def _settle_tasks_now_and_then(self) -> None:
        """Mark done the tasks whose end no single transaction saw (see ``settle_tasks``)."""
        now = self.clock.now()
        if self._next_settle is not None and now < self._next_settle:
            return
        self._next_settle = now + TASK_SETTLE_EVERY
        try:
            async with self.sessions() as session, session.begin():
                await settle_tasks(session)
        except Exception:
            log.exception("settling finished tasks failed; trying again later")

    async def run_once(self) -> int:
        """Claim one batch and finish it; returns how many deliveries it handled (tests)."""
        calls = await self._claim()
        if calls:
            await self._process(calls)
        return len(calls)

    # -- claim -----------------------------------------------------------------------------

    def _account(self, sender: Sender) -> SenderAccount:
        # Senders are read in every claim, so a rotated auth token is used from the next
        # batch on, in every worker; only the decryption is kept, while the settings last.
        settings = (
            sender.provider,
            sender.from_address,
            sender.account_id,
            sender.base_url,
            sender.credentials_encrypted,
        )
        cached = self._accounts.get(sender.id)
        if cached is None or cached[0] != settings:
            cached = self._accounts[sender.id] = (settings, account_of(sender, self.vault))
        return cached[1]

    async def _claim(self) -> list[ProviderCall]:
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        calls: list[ProviderCall] = []
        async with self.sessions() as session, session.begin():
            claimed = await claim_due(
                session,
                now=now,
                limit=self.settings.dispatch_batch_size,
                lease_until=lease_until,
                owner=self.worker_id,
            )
            if not claimed:
                return []
            sending = [c.delivery.id for c in claimed if c.delivery.status == Status.SENDING]
            in_flight = await self._open_attempts(session, sending)
            changes = Changes(siblings={c.message.id: c.siblings for c in claimed if c.siblings})
            for c in claimed:
                changes.touch(c.delivery)  # its lease, written with whatever else changes
            claimed = await gates.refuse_opted_out(session, changes, claimed, now)
            claimed = await gates.skip_delivered_in_group(session, changes, claimed, now)
            wanted = list({c.delivery.sender_id for c in claimed})
            senders = {s.id: s for s in await session.scalars(_SENDERS, {"ids": wanted})}
            for c in claimed:
                call = await self._call_for(
                    session, changes, c, in_flight.get(c.delivery.id), senders, now
                )
                if call is not None:
                    calls.append(call)
            await changes.write(session)
        return calls

    async def _open_attempts(self, session: AsyncSession, ids: list[str]) -> dict[str, AttemptRow]:
        if not ids:
            return {}
        rows = await load(
            session,
            AttemptRow,
            ATTEMPTS.c.delivery_id.in_(ids),
            ATTEMPTS.c.state == "in_flight",
        )
        return {a.delivery_id: a for a in rows}

    async def _call_for(
        self,
        session: AsyncSession,
        changes: Changes,
        c: Claimed,
        open_attempt: AttemptRow | None,
        senders: dict[str, Sender],
        now: datetime,
    ) -> ProviderCall | None:
        """The provider call a claimed delivery needs now, once past the gates; None if none."""
        d, m = c.delivery, c.message
        if d.status in SENDABLE:
            if gates.expire_unsent(changes, d, m, now):
                return None
            if gates.hold_outside_allowed_ranges(changes, d, m, now, self.settings):
                return None
            use_template = False
            if d.channel == "whatsapp":
                use_template = await gates.outside_whatsapp_window(session, d, now)
                if use_template and gates.refuse_without_template(changes, d, m, now):
                    return None
            attempt = changes.new_attempt(d, now)
            apply_status(
                changes,
                m,
                d,
                Status.SENDING,
                source="dispatcher",
                at=now,
                attempt_id=attempt.id,
                detail=f"attempt {attempt.number}",
            )
            kind = "send"
        elif d.status == Status.SENDING and open_attempt is not None:
            # A worker died (or timed out) mid-call: find out before sending again.
            attempt = open_attempt
            kind = "reconcile"
            use_template = False
        else:
            expired = gates.expire_unreported(changes, d, m, now)
            if (
                not expired
                and d.provider_message_id is not None
                and senders[d.sender_id].provider in self._fetching
                and (d.status in (Status.SENDING, Status.SENT) or wants_price(d))
            ):
                return ProviderCall(
                    kind="fetch",
                    delivery_id=d.id,
                    attempt_id="",
                    attempt_started=now,
                    account=self._account(senders[d.sender_id]),
                    outbound=OutboundMessage(to=d.to_address, body=""),
                    slot=None,
                    provider_message_id=d.provider_message_id,
                )
            # Otherwise nothing to do: final, or with the provider and waiting for reports.
            d.next_attempt_at = None
            d.lease_owner = None
            changes.touch(d)
            return None
        return ProviderCall(
            kind=kind,
            delivery_id=d.id,
            attempt_id=attempt.id,
            attempt_started=attempt.started_at,
            account=self._account(senders[d.sender_id]),
            outbound=outbound_of(
                d,
                self.status_callback_url(attempt.id),
                now,
                use_template=kind == "send" and d.channel == "whatsapp" and use_template,
            ),
            slot=c.slot,
        )

    # -- call ------------------------------------------------------------------------------

    async def _call(self, call: ProviderCall) -> None:
        """Make one provider call; what it gave (a receipt or an error) goes in ``call``."""
        adapter = self.adapters[call.account.provider]
        async with self._in_flight:
            if call.slot is not None:
                wait = (call.slot - self.clock.now()).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                if call.kind == "send":
                    call.outcome = await adapter.send(call.account, call.outbound)
                elif call.kind == "fetch":
                    assert isinstance(adapter, FetchingAdapter) and call.provider_message_id
                    call.outcome = await adapter.fetch(call.account, call.provider_message_id)
                else:
                    call.outcome = await adapter.find_sent(
                        call.account, call.outbound, call.attempt_started
                    )
            except ProviderError as e:
                call.outcome = e
            except Exception as e:  # a bug in an adapter must not lose the batch
                log.exception("adapter %s crashed", call.account.provider)
                call.outcome = OutcomeUnknown("adapter_error", f"{type(e).__name__}: {e}")

    async def _process(self, calls: list[ProviderCall]) -> None:
        slots = [call.slot for call in calls if call.slot is not None]
        if slots:
            # A batch that starts late (a cold worker opening its first connection) keeps its
            # spacing instead of firing every slot already past at once.
            lag = self.clock.now() - min(slots)
            if lag > timedelta(0):
                for call in calls:
                    if call.slot is not None:
                        call.slot += lag
        await asyncio.gather(*(self._call(call) for call in calls))
        for delay in (0.1, 0.5, 2.0, 5.0, None):
            try:
                await self._record(calls)
                return
            except Exception:
                if delay is None:
                    # The lease will expire and the attempts be reconciled: nothing is lost.
                    log.exception(
                        "recording %d outcomes failed; leaving them to reconcile", len(calls)
                    )
                    return
                log.warning("recording outcomes failed; retrying", exc_info=True)
                await asyncio.sleep(delay)

    # -- record ----------------------------------------------------------------------------

    async def _record(self, calls: list[ProviderCall]) -> None:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            await self.outcomes.record(session, calls, owner=self.worker_id, now=now)
