"""The dispatcher: claims due deliveries, hands them to providers, records what happened.

Claim → commit → call → record: no database transaction is ever open while a provider is
being called, and every call belongs to an ``Attempt`` row written before it, so a crash at any
point leaves a trail the next worker can reconcile instead of resending blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald.bootstrap import Herald
from herald.channels.base import (
    FetchingAdapter,
    OutboundMessage,
    OutcomeUnknown,
    PermanentError,
    ProviderError,
    ProviderTemplate,
    Receipt,
    SenderAccount,
)
from herald.domain.allowed_time_ranges import TimeRange, is_allowed, parse_ranges
from herald.domain.polling import PollSchedule
from herald.domain.retry import RetryPolicy
from herald.domain.scheduling import first_due
from herald.domain.statuses import Status
from herald.services.bots.resource import last_inbound_at
from herald.services.delivery.suppressions import OPT_OUT_CODES, refuse_suppressed
from herald.services.delivery.tracking import Changes, ErrorInfo, apply_status
from herald.services.delivery.twilio_reports import PRICED, apply_reported, note_provider_status
from herald.services.senders import account_of
from herald.store.queue import SENDABLE, Claimed, claim_due
from herald.store.rows import (
    ATTEMPTS,
    AttemptRow,
    DeliveryRow,
    MessageRow,
    by_ids,
    delivered_in_groups,
    load,
    load_by_id,
    load_deliveries,
    load_siblings,
)
from herald.store.senders import Sender
from herald.store.tasks import settle_tasks

log = logging.getLogger("herald.dispatch")

# Twilio prices a message within minutes of its final status; after a day there is no point.
PRICE_PATIENCE = timedelta(days=1)
# How often a worker looks for tasks that ended unseen (two last messages ending at once).
TASK_SETTLE_EVERY = timedelta(seconds=5)
WHATSAPP_WINDOW = timedelta(hours=24)
# Built once (see store.rows.by_ids).
_SENDERS = select(Sender).where(by_ids(Sender.id))


# Providers that never report delivery: e-mail over SMTP, Telegram's Bot API.
SILENT_PROVIDERS = frozenset({"smtp", "telegram"})


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


@lru_cache(maxsize=1024)
def _ranges(raw: tuple[tuple[str, ...], ...]) -> list[TimeRange]:
    # Parsed once per distinct set: a bulk send repeats the same ranges on every message.
    return parse_ranges([list(r) for r in raw])


@dataclass(slots=True)
class _Job:
    kind: str  # "send" | "reconcile" | "fetch" (read back: lost reports, price)
    delivery_id: str
    attempt_id: str
    attempt_started: datetime
    account: SenderAccount
    outbound: OutboundMessage
    slot: datetime | None
    outcome: Receipt | ProviderError | list[Receipt] | None = None
    provider_message_id: str | None = None


class Dispatcher:
    """One worker's loop. Several may run against one database, in one process or many."""

    def __init__(self, herald: Herald, *, worker_id: str | None = None) -> None:
        self.herald = herald
        self.settings = herald.settings
        self.worker_id = worker_id or f"w-{secrets.token_hex(4)}"
        self.policy = RetryPolicy(
            max_attempts=self.settings.max_attempts,
            base_seconds=self.settings.retry_base_seconds,
            max_seconds=self.settings.retry_max_seconds,
        )
        self.reconcile_delay = timedelta(seconds=self.settings.reconcile_delay_seconds)
        # A lost status callback is never resent by Twilio (it retries only a failed connect),
        # so a message still with the provider is read back now and then, until Twilio's
        # advised 12 hours. The first poll is set with the write that records the provider's
        # answer, and a report that comes replaces it (with the price fetch, or with nothing
        # once final): a message whose reports arrive costs no extra request or write.
        self.polling = PollSchedule(
            self.settings.report_poll_delay_seconds, self.settings.report_poll_horizon_seconds
        )
        self.pricing = PollSchedule(
            self.settings.price_fetch_delay_seconds, PRICE_PATIENCE.total_seconds()
        )
        self._fetching = frozenset(
            name for name, a in herald.adapters.items() if isinstance(a, FetchingAdapter)
        )
        self._accounts: dict[str, tuple[tuple[str | None, ...], SenderAccount]] = {}
        self._in_flight = asyncio.Semaphore(self.settings.dispatch_concurrency)
        self._next_settle: datetime | None = None

    def status_callback_url(self, attempt_id: str) -> str:
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
                jobs = await self._claim()
            except Exception:
                log.exception("claiming due work failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if jobs:
                task = asyncio.create_task(self._process(jobs))
                batches.add(task)
                task.add_done_callback(batches.discard)
                continue
            self.herald.work_available.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.herald.work_available.wait(), timeout=self.settings.dispatch_idle_sleep
                )
        if batches:
            await asyncio.wait(batches)

    async def _settle_tasks_now_and_then(self) -> None:
        """Mark done the tasks whose end no single transaction saw (see ``settle_tasks``)."""
        now = self.herald.clock.now()
        if self._next_settle is not None and now < self._next_settle:
            return
        self._next_settle = now + TASK_SETTLE_EVERY
        try:
            async with self.herald.sessions() as session, session.begin():
                await settle_tasks(session)
        except Exception:
            log.exception("settling finished tasks failed; trying again later")

    async def run_once(self) -> int:
        """Claim one batch and finish it; returns how many deliveries it handled (tests)."""
        jobs = await self._claim()
        if jobs:
            await self._process(jobs)
        return len(jobs)

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
            cached = self._accounts[sender.id] = (settings, account_of(sender, self.herald.vault))
        return cached[1]

    async def _claim(self) -> list[_Job]:
        now = self.herald.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        jobs: list[_Job] = []
        async with self.herald.sessions() as session, session.begin():
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
            claimed = await self._refuse_opted_out(session, changes, claimed, now)
            claimed = await self._skip_delivered_in_group(session, changes, claimed, now)
            wanted = list({c.delivery.sender_id for c in claimed})
            senders = {s.id: s for s in await session.scalars(_SENDERS, {"ids": wanted})}
            for c in claimed:
                job = await self._job_for(
                    session, changes, c, in_flight.get(c.delivery.id), senders, now
                )
                if job is not None:
                    jobs.append(job)
            await changes.write(session)
        return jobs

    async def _refuse_opted_out(
        self, session: AsyncSession, changes: Changes, claimed: list[Claimed], now: datetime
    ) -> list[Claimed]:
        """Fail sends to people who opted out of the sender, before any provider call."""
        sendable = [c for c in claimed if c.delivery.status in SENDABLE]
        refused = await refuse_suppressed(
            session,
            [
                (
                    c.delivery.project_id,
                    c.delivery.channel,
                    c.delivery.from_address,
                    c.delivery.to_address,
                )
                for c in sendable
            ],
        )
        if not refused:
            return claimed
        out = {id(sendable[i]) for i in refused}
        for c in claimed:
            if id(c) in out:
                apply_status(
                    changes,
                    c.message,
                    c.delivery,
                    Status.FAILED,
                    source="dispatcher",
                    at=now,
                    error=ErrorInfo(
                        "recipient_opted_out",
                        "The recipient opted out of messages from this sender "
                        "(they replied STOP); send START to opt back in.",
                    ),
                )
                c.delivery.lease_owner = None
        return [c for c in claimed if id(c) not in out]

    async def _skip_delivered_in_group(
        self, session: AsyncSession, changes: Changes, claimed: list[Claimed], now: datetime
    ) -> list[Claimed]:
        """Skip fallbacks whose client-given group (one person's devices) was delivered.

        The skip made when the delivery was recorded passes over rows another writer holds
        (see ``load_group_waiting``), such as one this worker has just claimed: this is the
        last gate before the provider. One query per batch, and only for batches that hold
        such fallbacks: most hold none.
        """
        fallbacks = [
            c
            for c in claimed
            if c.delivery.status in SENDABLE
            and c.message.group_given
            and not c.delivery.required
            and c.siblings
            and c.delivery.step > min(s.step for s in c.siblings)
        ]
        if not fallbacks:
            return claimed
        delivered = await delivered_in_groups(
            session, {(c.message.project_id, c.message.group_id) for c in fallbacks}
        )
        if not delivered:
            return claimed
        out: set[int] = set()
        for c in fallbacks:
            found = delivered.get((c.message.project_id, c.message.group_id), [])
            other = next(((m, ch) for m, ch in found if m != c.message.id), None)
            if other is None:
                continue
            message_id, channel = other
            detail = f"delivered_in_group: delivered on {channel} to message {message_id}"
            # The channels after it too: nothing would ever move the cascade on to them.
            later = [s for s in c.siblings if s.status == Status.PENDING and not s.required]
            for d in (c.delivery, *later):
                apply_status(
                    changes, c.message, d, Status.SKIPPED, source="group", at=now, detail=detail
                )
            c.delivery.next_attempt_at = None
            c.delivery.lease_owner = None
            out.add(id(c))
        return [c for c in claimed if id(c) not in out]

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

    async def _job_for(
        self,
        session: AsyncSession,
        changes: Changes,
        c: Claimed,
        open_attempt: AttemptRow | None,
        senders: dict[str, Sender],
        now: datetime,
    ) -> _Job | None:
        d, m = c.delivery, c.message
        if d.status in SENDABLE:
            if d.expires_at is not None and now >= d.expires_at:
                self._expire(changes, d, m, now, "it could not be sent within its validity period")
                return None
            held = self._hold_outside_allowed_ranges(changes, d, m, now)
            if held:
                return None
            use_template = False
            if d.channel == "whatsapp":
                use_template = await self._outside_whatsapp_window(session, d, now)
                content = d.content or {}
                if use_template and not (content.get("contentSid") or content.get("templateName")):
                    apply_status(
                        changes,
                        m,
                        d,
                        Status.FAILED,
                        source="dispatcher",
                        at=now,
                        error=ErrorInfo(
                            "whatsapp_outside_window",
                            "The person has not written in the last 24 hours, so WhatsApp "
                            "only allows an approved template, and this channel has none "
                            "(give channels.whatsapp.contentSid or templateName).",
                        ),
                    )
                    d.lease_owner = None
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
            if d.status in (Status.SENDING, Status.SENT) and d.expires_at and now >= d.expires_at:
                waited = f" ({d.validity_minutes} min)" if d.validity_minutes else ""
                self._expire(changes, d, m, now, f"no delivery report within its validity{waited}")
            elif (
                d.provider_message_id is not None
                and senders[d.sender_id].provider in self._fetching
                and (d.status in (Status.SENDING, Status.SENT) or self._wants_price(d))
            ):
                return _Job(
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
        return _Job(
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

    @staticmethod
    async def _outside_whatsapp_window(
        session: AsyncSession, d: DeliveryRow, now: datetime
    ) -> bool:
        """Whether WhatsApp's 24-hour customer-service window is closed for this person."""
        # Only a message the person sent in WhatsApp opens it (Meta's policy): an inbound SMS
        # from the same number does not, and free text sent on it would fail with 131047.
        last = await last_inbound_at(session, d.project_id, "whatsapp", d.to_address)
        return last is None or now - last >= WHATSAPP_WINDOW

    @staticmethod
    def _wants_price(d: DeliveryRow) -> bool:
        # How long to keep asking is the pricing schedule's to say (see _next_look).
        return d.status in PRICED and d.price is None and d.provider_message_id is not None

    def _next_look(self, d: DeliveryRow, provider: str, now: datetime) -> datetime | None:
        """When to come back to a delivery nobody is retrying: to read it back, or to expire it.

        Still with the provider: poll for the report on ``polling`` from its last status
        change, and in any case come back at its validity end to expire it. Ended and charged
        for: fetch the price on ``pricing`` from its final status.
        """
        fetching = provider in self._fetching and d.provider_message_id is not None
        if d.status in (Status.SENDING, Status.SENT):
            at = _after(self.polling, d.updated_at, now) if fetching else None
            if d.expires_at is not None and (at is None or d.expires_at < at):
                at = d.expires_at
            return at
        if fetching and self._wants_price(d):
            return _after(self.pricing, d.delivered_at or d.updated_at, now)
        return None

    def _expire(
        self,
        changes: Changes,
        d: DeliveryRow,
        m: MessageRow,
        now: datetime,
        why: str,
        error: ErrorInfo | None = None,
    ) -> None:
        apply_status(
            changes,
            m,
            d,
            Status.EXPIRED,
            source="dispatcher",
            at=now,
            error=error or ErrorInfo("validity_expired", f"Expired: {why}."),
            detail=why,
        )
        d.next_attempt_at = None
        d.lease_owner = None

    def _hold_outside_allowed_ranges(
        self, changes: Changes, d: DeliveryRow, m: MessageRow, now: datetime
    ) -> bool:
        """Push a due delivery to its recipient's next allowed time; True if it was pushed.

        Checked here, where every send (first, retry, after downtime) passes, so no path can
        hand a message to a provider outside the allowed hours.
        """
        if not m.allowed_time_ranges:
            return False
        ranges = _ranges(tuple(tuple(r) for r in m.allowed_time_ranges))
        zone = ZoneInfo(m.timezone or self.settings.default_timezone)
        if is_allowed(now, ranges, zone):
            return False
        if self.settings.allowed_time_ranges_pause_validity:
            due = first_due(now, ranges, zone, None)
            if d.expires_at is not None:
                d.expires_at += due.at - now  # the night does not count against validity
        else:
            due = first_due(now, ranges, zone, d.expires_at)
        d.next_attempt_at = due.at
        d.lease_owner = None
        changes.touch(d)
        local = due.at.astimezone(zone)
        apply_status(
            changes,
            m,
            d,
            Status.SCHEDULED,
            source="dispatcher",
            at=now,
            detail=f"outside the allowed hours in {zone.key} ({m.timezone_source or 'default'} "
            f"time zone); waiting until {local:%Y-%m-%d %H:%M %Z}",
        )
        return True

    # -- call ------------------------------------------------------------------------------

    async def _call(self, job: _Job) -> None:
        adapter = self.herald.adapters[job.account.provider]
        async with self._in_flight:
            if job.slot is not None:
                wait = (job.slot - self.herald.clock.now()).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                if job.kind == "send":
                    job.outcome = await adapter.send(job.account, job.outbound)
                elif job.kind == "fetch":
                    assert isinstance(adapter, FetchingAdapter) and job.provider_message_id
                    job.outcome = await adapter.fetch(job.account, job.provider_message_id)
                else:
                    job.outcome = await adapter.find_sent(
                        job.account, job.outbound, job.attempt_started
                    )
            except ProviderError as e:
                job.outcome = e
            except Exception as e:  # a bug in an adapter must not lose the batch
                log.exception("adapter %s crashed", job.account.provider)
                job.outcome = OutcomeUnknown("adapter_error", f"{type(e).__name__}: {e}")

    async def _process(self, jobs: list[_Job]) -> None:
        slots = [job.slot for job in jobs if job.slot is not None]
        if slots:
            # A batch that starts late (a cold worker opening its first connection) keeps its
            # spacing instead of firing every slot already past at once.
            lag = self.herald.clock.now() - min(slots)
            if lag > timedelta(0):
                for job in jobs:
                    if job.slot is not None:
                        job.slot += lag
        await asyncio.gather(*(self._call(job) for job in jobs))
        for delay in (0.1, 0.5, 2.0, 5.0, None):
            try:
                await self._record(jobs)
                return
            except Exception:
                if delay is None:
                    # The lease will expire and the attempts be reconciled: nothing is lost.
                    log.exception(
                        "recording %d outcomes failed; leaving them to reconcile", len(jobs)
                    )
                    return
                log.warning("recording outcomes failed; retrying", exc_info=True)
                await asyncio.sleep(delay)

    # -- record ----------------------------------------------------------------------------

    async def _record(self, jobs: list[_Job]) -> None:
        now = self.herald.clock.now()
        async with self.herald.sessions() as session, session.begin():
            ids = [job.delivery_id for job in jobs]
            rows = await load_deliveries(session, ids, lock=True)
            attempts = await load_by_id(session, AttemptRow, (job.attempt_id for job in jobs))
            known_sids = await self._known_sids(session, jobs)
            changes = Changes(siblings=await load_siblings(session, rows.values()))
            for job in jobs:
                delivery, message = rows[job.delivery_id]
                if delivery.lease_owner != self.worker_id:
                    # Our lease ran out and another worker took the row over; it decides now.
                    continue
                delivery.lease_owner = None
                delivery.next_attempt_at = None
                changes.touch(delivery)
                if job.kind == "fetch":
                    self._record_fetch(changes, job, delivery, message, now)
                elif job.kind == "send":
                    attempt = attempts[job.attempt_id]
                    self._record_send(changes, job, delivery, message, attempt, now)
                else:
                    attempt = attempts[job.attempt_id]
                    self._record_reconcile(
                        changes, job, delivery, message, attempt, now, known_sids
                    )
                if delivery.next_attempt_at is None:  # no retry or reconciliation is due
                    # Written with the outcome itself: the UPDATE is made anyway.
                    delivery.next_attempt_at = self._next_look(delivery, job.account.provider, now)
            await changes.write(session)

    async def _known_sids(self, session: AsyncSession, jobs: list[_Job]) -> set[str]:
        sids = [
            r.provider_message_id
            for job in jobs
            if isinstance(job.outcome, list)
            for r in job.outcome
        ]
        if not sids:
            return set()
        return set(
            await session.scalars(
                select(ATTEMPTS.c.provider_message_id).where(
                    ATTEMPTS.c.provider_message_id.in_(sids)
                )
            )
        )

    def _accept(
        self,
        changes: Changes,
        job_provider: str,
        receipt: Receipt,
        delivery: DeliveryRow,
        message: MessageRow,
        attempt: AttemptRow,
        now: datetime,
    ) -> None:
        attempt.state = "accepted"
        attempt.finished_at = attempt.finished_at or now
        attempt.provider_message_id = receipt.provider_message_id
        attempt.http_status = attempt.http_status or 201
        changes.touch(attempt)
        delivery.provider_message_id = receipt.provider_message_id
        if receipt.num_segments is not None:
            delivery.num_segments = receipt.num_segments
        if receipt.price is not None:
            delivery.price, delivery.price_unit = receipt.price, receipt.price_unit
        reports: tuple[str, ...] = (receipt.provider_status, *receipt.reports)
        for report in reports:
            note_provider_status(delivery, report)
        if job_provider in SILENT_PROVIDERS:
            # No delivery report will ever come: the provider taking it is as good as it gets.
            apply_status(
                changes,
                message,
                delivery,
                Status.DELIVERED,
                source="provider",
                at=now,
                attempt_id=attempt.id,
            )
            return
        for report in reports:
            apply_reported(
                changes,
                message,
                delivery,
                report,
                source="provider",
                at=now,
                attempt=attempt,
                error_code=receipt.error_code,
                error_message=receipt.error_message,
                label=None,
            )

    def _record_fetch(
        self, changes: Changes, job: _Job, delivery: DeliveryRow, message: MessageRow, now: datetime
    ) -> None:
        """Apply what reading a message back said: its status (a report that may have been
        lost) through the same path as a callback, and its price once set.

        An error is not retried here: the next look on the schedule is the retry.
        """
        outcome = job.outcome
        if not isinstance(outcome, Receipt):
            return
        if outcome.provider_message_id != delivery.provider_message_id:
            return
        if outcome.price is not None:
            delivery.price, delivery.price_unit = outcome.price, outcome.price_unit
        note_provider_status(delivery, outcome.provider_status)
        apply_reported(
            changes,
            message,
            delivery,
            outcome.provider_status,
            source="provider-poll",
            at=now,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
        )

    def _record_send(
        self,
        changes: Changes,
        job: _Job,
        delivery: DeliveryRow,
        message: MessageRow,
        attempt: AttemptRow,
        now: datetime,
    ) -> None:
        outcome = job.outcome
        if isinstance(outcome, Receipt):
            self._accept(changes, job.account.provider, outcome, delivery, message, attempt, now)
            return
        assert isinstance(outcome, ProviderError)
        if isinstance(outcome, PermanentError) and outcome.code in OPT_OUT_CODES:
            # The person texted STOP (Twilio 21610) or blocked the bot (Telegram): remember
            # it against the destination, so later sends skip it at once.
            changes.suppress(delivery, OPT_OUT_CODES[outcome.code], now)
        if attempt.state != "in_flight":
            return  # a status callback already told us how this attempt went
        changes.touch(attempt)
        attempt.error_code, attempt.error_message = outcome.code, outcome.message
        attempt.error_more_info, attempt.http_status = outcome.more_info, outcome.http_status
        if isinstance(outcome, OutcomeUnknown):
            delivery.next_attempt_at = now + self.reconcile_delay
            return
        attempt.state = "failed"
        attempt.finished_at = now
        self._retry_or_fail(
            changes,
            delivery,
            message,
            attempt,
            now,
            ErrorInfo(outcome.code, outcome.message, outcome.more_info),
            why=f"attempt {attempt.number} failed ({outcome.code})",
            retry=not isinstance(outcome, PermanentError),
            retry_after=outcome.retry_after,
        )

    def _retry_or_fail(
        self,
        changes: Changes,
        delivery: DeliveryRow,
        message: MessageRow,
        attempt: AttemptRow,
        now: datetime,
        error: ErrorInfo,
        *,
        why: str,
        retry: bool,
        retry_after: float | None = None,
    ) -> None:
        """After an attempt that did not reach the provider: queue the next one after a
        backoff, or end the delivery (failed when retrying cannot help or attempts ran out,
        expired when the next one would come after its validity)."""
        delay = None
        if retry:
            delay = self.policy.delay(delivery.attempt_count, retry_after=retry_after)
        if (
            delay is not None
            and delivery.expires_at is not None
            and (now + timedelta(seconds=delay) >= delivery.expires_at)
        ):
            self._expire(
                changes,
                delivery,
                message,
                now,
                f"the next retry would come after its validity period ({error.code})",
                error=error,
            )
            return
        if delay is None or message.cancelled_at is not None:
            if delay is not None:
                # The provider did not take it, and the client cancelled meanwhile: no retry.
                detail: str | None = f"{why}; not retried: the message was cancelled"
            else:
                detail = f"gave up after {delivery.attempt_count} attempts" if retry else None
            apply_status(
                changes,
                message,
                delivery,
                Status.FAILED,
                source="dispatcher",
                at=now,
                attempt_id=attempt.id,
                error=error,
                detail=detail,
            )
            return
        apply_status(
            changes,
            message,
            delivery,
            Status.QUEUED,
            source="dispatcher",
            at=now,
            attempt_id=attempt.id,
            error=error,
            detail=f"{why}; retrying in {delay:.1f}s",
        )
        delivery.next_attempt_at = now + timedelta(seconds=delay)

    def _record_reconcile(
        self,
        changes: Changes,
        job: _Job,
        delivery: DeliveryRow,
        message: MessageRow,
        attempt: AttemptRow,
        now: datetime,
        known_sids: set[str],
    ) -> None:
        if attempt.state != "in_flight":
            return  # its status callback arrived meanwhile
        outcome = job.outcome
        changes.touch(attempt)
        if isinstance(outcome, list):
            match = next((r for r in outcome if r.provider_message_id not in known_sids), None)
            if match is not None:
                known_sids.add(match.provider_message_id)
                self._accept(changes, job.account.provider, match, delivery, message, attempt, now)
                return
            attempt.state = "not_sent"
            attempt.finished_at = now
            # Never reached the provider: an attempt like any failed one, so the resend
            # waits its backoff and counts against max_attempts; a provider that keeps
            # dropping the connection must not be sent to in a tight loop.
            self._retry_or_fail(
                changes,
                delivery,
                message,
                attempt,
                now,
                ErrorInfo(
                    attempt.error_code or "attempt_not_sent",
                    attempt.error_message
                    or f"Attempt {attempt.number} never reached the provider.",
                    attempt.error_more_info,
                ),
                why=f"attempt {attempt.number} never reached the provider",
                retry=True,
            )
            return
        give_up_at = attempt.started_at + timedelta(
            seconds=self.settings.unknown_outcome_timeout_seconds
        )
        if delivery.expires_at is not None:
            give_up_at = min(give_up_at, delivery.expires_at)
        if now >= give_up_at:
            attempt.state = "unknown"
            attempt.finished_at = now
            apply_status(
                changes,
                message,
                delivery,
                Status.FAILED,
                source="dispatcher",
                at=now,
                attempt_id=attempt.id,
                error=ErrorInfo(
                    "outcome_unknown",
                    "Herald could not learn whether the provider received "
                    "the message, and will not risk sending it twice.",
                ),
            )
            return
        delivery.next_attempt_at = now + self.reconcile_delay * 6


def _after(schedule: PollSchedule, start: datetime, now: datetime) -> datetime | None:
    """The next time on ``schedule`` (counted from ``start``) after ``now``; None when done."""
    offset = schedule.next_offset((now - start).total_seconds())
    return None if offset is None else start + timedelta(seconds=offset)
