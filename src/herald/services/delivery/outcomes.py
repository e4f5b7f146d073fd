"""What a provider call gave, recorded: accept, retry or fail, reconcile, and the next look.

The dispatcher calls providers with no transaction open, then hands the calls here inside the
transaction it opens to record them (claim → commit → call → record). A row whose lease ran
out meanwhile belongs to the worker that took it over and is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

# The adapters' result types, listed as every adapter lists them: names, not logic.
from herald.channels.base import (
    OutboundMessage,
    OutcomeUnknown,
    PermanentError,
    ProviderError,
    Receipt,
    SenderAccount,
)
from herald.config import Settings
from herald.domain.polling import PollSchedule
from herald.domain.retry import RetryPolicy
from herald.domain.statuses import Status
from herald.services.delivery.suppressions import OPT_OUT_CODES
from herald.services.delivery.tracking import Changes, ErrorInfo, apply_status
from herald.services.delivery.twilio_reports import PRICED, apply_reported, note_provider_status
from herald.store.rows import (
    ATTEMPTS,
    AttemptRow,
    DeliveryRow,
    MessageRow,
    load_by_id,
    load_deliveries,
    load_siblings,
)

# Twilio prices a message within minutes of its final status; after a day there is no point.
PRICE_PATIENCE = timedelta(days=1)

# Providers that never report delivery: e-mail over SMTP, Telegram's Bot API.
SILENT_PROVIDERS = frozenset({"smtp", "telegram"})


@dataclass(slots=True)
class ProviderCall:
    """One provider call of a dispatcher batch, and what it gave once made."""

    kind: str  # "send" | "reconcile" | "fetch" (read back: lost reports, price)
    delivery_id: str
    attempt_id: str
    attempt_started: datetime
    account: SenderAccount
    outbound: OutboundMessage
    slot: datetime | None
    outcome: Receipt | ProviderError | list[Receipt] | None = None
    provider_message_id: str | None = None


def expire(
    changes: Changes,
    d: DeliveryRow,
    m: MessageRow,
    now: datetime,
    why: str,
    error: ErrorInfo | None = None,
) -> None:
    """End a delivery as expired: its validity ran out before it could go or be reported."""
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


def wants_price(d: DeliveryRow) -> bool:
    """Whether the provider's price of an ended delivery is still to be read back."""
    # How long to keep asking is the pricing schedule's to say (see Outcomes.next_look).
    return d.status in PRICED and d.price is None and d.provider_message_id is not None


class Outcomes:
    """Records a batch's provider calls; holds the retry policy and the read-back schedules."""

    def __init__(self, settings: Settings, fetching: frozenset[str]) -> None:
        self.policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
        )
        self.reconcile_delay = timedelta(seconds=settings.reconcile_delay_seconds)
        self.unknown_outcome_timeout = timedelta(seconds=settings.unknown_outcome_timeout_seconds)
        # A lost status callback is never resent by Twilio (it retries only a failed connect),
        # so a message still with the provider is read back now and then, until Twilio's
        # advised 12 hours. The first poll is set with the write that records the provider's
        # answer, and a report that comes replaces it (with the price fetch, or with nothing
        # once final): a message whose reports arrive costs no extra request or write.
        self.polling = PollSchedule(
            settings.report_poll_delay_seconds, settings.report_poll_horizon_seconds
        )
        self.pricing = PollSchedule(
            settings.price_fetch_delay_seconds, PRICE_PATIENCE.total_seconds()
        )
        # The providers whose messages can be read back (a FetchingAdapter).
        self.fetching = fetching

    async def record(
        self, session: AsyncSession, calls: list[ProviderCall], *, owner: str, now: datetime
    ) -> None:
        """Record what each call gave, in the caller's transaction; ``owner`` holds the leases."""
        rows = await load_deliveries(session, [call.delivery_id for call in calls], lock=True)
        attempts = await load_by_id(session, AttemptRow, (call.attempt_id for call in calls))
        known_sids = await _known_sids(session, calls)
        changes = Changes(siblings=await load_siblings(session, rows.values()))
        for call in calls:
            delivery, message = rows[call.delivery_id]
            if delivery.lease_owner != owner:
                # Our lease ran out and another worker took the row over; it decides now.
                continue
            delivery.lease_owner = None
            delivery.next_attempt_at = None
            changes.touch(delivery)
            if call.kind == "fetch":
                _record_fetch(changes, call, delivery, message, now)
            elif call.kind == "send":
                self._record_send(changes, call, delivery, message, attempts[call.attempt_id], now)
            else:
                attempt = attempts[call.attempt_id]
                self._record_reconcile(changes, call, delivery, message, attempt, now, known_sids)
            if delivery.next_attempt_at is None:  # no retry or reconciliation is due
                # Written with the outcome itself: the UPDATE is made anyway.
                delivery.next_attempt_at = self.next_look(delivery, call.account.provider, now)
        await changes.write(session)

    def next_look(self, d: DeliveryRow, provider: str, now: datetime) -> datetime | None:
        """When to come back to a delivery nobody is retrying: to read it back, or to expire it.

        Still with the provider: poll for the report on ``polling`` from its last status
        change, and in any case come back at its validity end to expire it. Ended and charged
        for: fetch the price on ``pricing`` from its final status.
        """
        fetching = provider in self.fetching and d.provider_message_id is not None
        if d.status in (Status.SENDING, Status.SENT):
            at = _after(self.polling, d.updated_at, now) if fetching else None
            if d.expires_at is not None and (at is None or d.expires_at < at):
                at = d.expires_at
            return at
        if fetching and wants_price(d):
            return _after(self.pricing, d.delivered_at or d.updated_at, now)
        return None

    def _record_send(
        self,
        changes: Changes,
        call: ProviderCall,
        delivery: DeliveryRow,
        message: MessageRow,
        attempt: AttemptRow,
        now: datetime,
    ) -> None:
        outcome = call.outcome
        if isinstance(outcome, Receipt):
            _accept(changes, call.account.provider, outcome, delivery, message, attempt, now)
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
            why_expired = f"the next retry would come after its validity period ({error.code})"
            expire(changes, delivery, message, now, why_expired, error=error)
            return
        if delay is None or message.cancelled_at is not None:
            if delay is not None:
                # The provider did not take it, and the client cancelled meanwhile: no retry.
                detail: str | None = f"{why}; not retried: the message was cancelled"
            else:
                detail = f"gave up after {delivery.attempt_count} attempts" if retry else None
            _after_attempt(changes, message, delivery, attempt, Status.FAILED, now, error, detail)
            return
        detail = f"{why}; retrying in {delay:.1f}s"
        _after_attempt(changes, message, delivery, attempt, Status.QUEUED, now, error, detail)
        delivery.next_attempt_at = now + timedelta(seconds=delay)

    # The parameters of _record_send (one kind of call each, recorded on the same rows).
    def _record_reconcile(
        self,
        changes: Changes,
        call: ProviderCall,
        delivery: DeliveryRow,
        message: MessageRow,
        attempt: AttemptRow,
        now: datetime,
        known_sids: set[str],
    ) -> None:
        if attempt.state != "in_flight":
            return  # its status callback arrived meanwhile
        outcome = call.outcome
        changes.touch(attempt)
        if isinstance(outcome, list):
            match = next((r for r in outcome if r.provider_message_id not in known_sids), None)
            if match is not None:
                known_sids.add(match.provider_message_id)
                _accept(changes, call.account.provider, match, delivery, message, attempt, now)
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
        give_up_at = attempt.started_at + self.unknown_outcome_timeout
        if delivery.expires_at is not None:
            give_up_at = min(give_up_at, delivery.expires_at)
        if now >= give_up_at:
            attempt.state = "unknown"
            attempt.finished_at = now
            unknown = ErrorInfo(
                "outcome_unknown",
                "Herald could not learn whether the provider received "
                "the message, and will not risk sending it twice.",
            )
            _after_attempt(changes, message, delivery, attempt, Status.FAILED, now, unknown)
            return
        delivery.next_attempt_at = now + self.reconcile_delay * 6


def _after_attempt(
    changes: Changes,
    message: MessageRow,
    delivery: DeliveryRow,
    attempt: AttemptRow,
    new: Status,
    now: datetime,
    error: ErrorInfo,
    detail: str | None = None,
) -> None:
    """Move a delivery after an attempt that did not reach the provider, in its name."""
    apply_status(
        changes,
        message,
        delivery,
        new,
        source="dispatcher",
        at=now,
        attempt_id=attempt.id,
        error=error,
        detail=detail,
    )


async def _known_sids(session: AsyncSession, calls: list[ProviderCall]) -> set[str]:
    """Which of the messages a reconciliation found already belong to some attempt."""
    sids = [
        r.provider_message_id
        for call in calls
        if isinstance(call.outcome, list)
        for r in call.outcome
    ]
    if not sids:
        return set()
    return set(
        await session.scalars(
            select(ATTEMPTS.c.provider_message_id).where(ATTEMPTS.c.provider_message_id.in_(sids))
        )
    )


def _accept(
    changes: Changes,
    provider: str,
    receipt: Receipt,
    delivery: DeliveryRow,
    message: MessageRow,
    attempt: AttemptRow,
    now: datetime,
) -> None:
    """The provider took the message: keep its id, segments, price and first reports."""
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
    if provider in SILENT_PROVIDERS:
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
        # Keyword arguments, alike other calls by shape only (a fake's ServerThread call).
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
    changes: Changes, call: ProviderCall, delivery: DeliveryRow, message: MessageRow, now: datetime
) -> None:
    """Apply what reading a message back said: its status (a report that may have been
    lost) through the same path as a callback, and its price once set.

    An error is not retried here: the next look on the schedule is the retry.
    """
    outcome = call.outcome
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


def _after(schedule: PollSchedule, start: datetime, now: datetime) -> datetime | None:
    """The next time on ``schedule`` (counted from ``start``) after ``now``; None when done."""
    offset = schedule.next_offset((now - start).total_seconds())
    return None if offset is None else start + timedelta(seconds=offset)
