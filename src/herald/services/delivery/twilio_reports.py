"""Provider delivery reports (Twilio status callbacks): authenticate, then apply in batches."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.channels.twilio import STATUS_MAP, is_later_status, more_info_url
from herald.domain.form_params import FormParams, first
from herald.domain.signatures import verify_twilio_signature
from herald.domain.statuses import FINAL, Status
from herald.errors import Conflict, Forbidden, HeraldError, NotFound
from herald.services.delivery.suppressions import OPT_OUT_CODES
from herald.services.delivery.tracking import Changes, ErrorInfo, apply_status
from herald.services.vault import Vault
from herald.store.rows import (
    ATTEMPTS,
    AttemptRow,
    DeliveryRow,
    MessageRow,
    by_ids,
    load_by_id,
    load_deliveries,
    load_siblings,
)
from herald.store.senders import Sender

log = logging.getLogger("herald.twilio")

CHECK_FAILED = (
    "Herald could not check this status callback; nothing was changed. The server log has "
    "the details."
)

# Twilio's asynchronous delivery errors, worded for the message view.
TWILIO_ERRORS = {
    "21610": "The recipient unsubscribed from this sender (replied STOP); "
    "they must text START to receive messages from it again",
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered by the carrier",
    "30008": "Unknown error",
    "30036": "Validity period expired",
    "63016": "WhatsApp free-form message outside the 24-hour window",
}


@dataclass(frozen=True, slots=True)
class TwilioReport:
    """One Twilio status callback as received: what to verify and apply."""

    attempt_id: str
    url: str
    params: FormParams
    signature: str | None
    received_at: datetime


# Herald's ids (UUID text) and Twilio's SIDs (two letters, 32 hex digits) both fit.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Built once (see store.rows.by_ids).
_DELIVERY_OF = select(ATTEMPTS.c.id, ATTEMPTS.c.delivery_id).where(by_ids(ATTEMPTS.c.id))
_SECRETS = select(Sender.id, Sender.credentials_encrypted).where(by_ids(Sender.id))

# Twilio's code for a message still queued when its ValidityPeriod ran out.
EXPIRED_AT_TWILIO = "30036"

# Statuses whose price is worth reading back. A failed message could not be sent: neither
# the reference nor any captured answer shows one priced, and asking costs a request each.
PRICED = frozenset({Status.DELIVERED, Status.READ, Status.UNDELIVERED})


def schedule_price_fetch(delivery: DeliveryRow, now: datetime, delay: timedelta) -> None:
    """Come back for the price once Twilio has had time to set it.

    Status callbacks carry no price; a fetch of the message some time after its final status
    does. This replaces a pending poll for reports (the fetch answers that too).
    """
    if delivery.status in PRICED and delivery.price is None and delivery.provider_message_id:
        delivery.next_attempt_at = now + delay


async def apply_twilio_reports(
    session: AsyncSession,
    vault: Vault,
    reports: Sequence[TwilioReport],
    *,
    price_fetch_delay: timedelta = timedelta(seconds=60),
) -> list[bool | HeraldError]:
    """Verify and apply Twilio status callbacks in one transaction, in arrival order.

    Each result says whether that report moved its message, or is the error to answer it
    with; a refused report changes nothing, and one that cannot even be checked fails alone.
    An error while applying a checked report is raised: the transaction rolls back, and the
    group committer applies smaller groups so that only that report fails. Safe to receive
    twice or out of order: the transition table ignores anything that would move a message
    backwards.
    """
    attempt_ids = {r.attempt_id for r in reports if _plausible_id(r.attempt_id)}
    delivery_of: dict[str, str] = {
        attempt_id: delivery_id
        for attempt_id, delivery_id in await session.execute(
            _DELIVERY_OF, {"ids": list(attempt_ids)}
        )
    }
    rows = await load_deliveries(session, delivery_of.values(), lock=True)
    # Read under the lock: the dispatcher may have just recorded these attempts' answers.
    attempts = await load_by_id(session, AttemptRow, delivery_of)
    tokens: dict[str, str] = {
        sender_id: vault.decrypt_json(secret).get("authToken", "")
        for sender_id, secret in await session.execute(
            _SECRETS, {"ids": list({d.sender_id for d, _ in rows.values()})}
        )
    }

    def known(report: TwilioReport) -> bool:
        delivery_id = delivery_of.get(report.attempt_id)
        return delivery_id in rows and rows[delivery_id][0].sender_id in tokens

    unknown = [r for r in reports if not known(r)]
    account_tokens = await _tokens_of_accounts(session, vault, unknown) if unknown else {}
    changes = Changes(siblings=await load_siblings(session, rows.values()))
    results: list[bool | HeraldError] = []
    for report in reports:
        try:
            if not known(report):
                # Only a caller who can sign as the account named may learn that the attempt
                # does not exist; anyone else gets the same 403 as for a known one.
                account = first(report.params, "AccountSid") or ""
                if not any(_is_signed(report, t) for t in account_tokens.get(account, ())):
                    raise _forged()
                raise NotFound(
                    "This status callback is for no attempt Herald knows.", code="unknown_attempt"
                )
            delivery, message = rows[delivery_of[report.attempt_id]]
            attempt = attempts[report.attempt_id]
            sid, reported = _verified(report, attempt, tokens[delivery.sender_id])
        except HeraldError as e:
            results.append(e)
            continue
        except Exception:
            # Nothing was changed for this report yet: it fails alone, the batch goes on.
            log.exception("checking a Twilio status callback failed")
            results.append(HeraldError(CHECK_FAILED))
            continue
        moved = _apply_one(changes, report, attempt, delivery, message, sid, reported)
        if delivery.lease_owner is None:  # a worker holding it schedules this itself
            schedule_price_fetch(delivery, report.received_at, price_fetch_delay)
        results.append(moved)
    await changes.write(session)
    return results


# Applies one batch of reports for the group committer: a result (or error) per report.
ReportBatch = Callable[[list[TwilioReport]], Awaitable[list[bool | HeraldError | Exception]]]


def report_batches(
    sessions: async_sessionmaker[AsyncSession], vault: Vault, *, price_fetch_delay: timedelta
) -> ReportBatch:
    """What the group committer calls: each batch of reports applied in a transaction of its own."""

    async def apply(reports: list[TwilioReport]) -> list[bool | HeraldError | Exception]:
        async with sessions() as session, session.begin():
            return list(
                await apply_twilio_reports(
                    session, vault, reports, price_fetch_delay=price_fetch_delay
                )
            )

    return apply


async def _tokens_of_accounts(
    session: AsyncSession, vault: Vault, reports: Sequence[TwilioReport]
) -> dict[str, list[str]]:
    """The auth tokens of the Twilio accounts these reports name, removed senders included."""
    accounts = {a for r in reports if _plausible_id(a := first(r.params, "AccountSid") or "")}
    if not accounts:
        return {}
    found: dict[str, list[str]] = {}
    query = select(Sender.account_id, Sender.credentials_encrypted).where(
        Sender.account_id.in_(accounts)
    )
    for account, secret in await session.execute(query):
        token = vault.decrypt_json(secret).get("authToken", "")
        found.setdefault(account or "", []).append(token)
    return found


def _plausible_id(value: str) -> bool:
    """Whether ``value`` could name an attempt or an account; others are not even looked up.

    Anyone can post any path and parameters here; a NUL byte or a megabyte in a query would
    fail the whole batch's transaction (PostgreSQL refuses NUL in text), not just this report.
    """
    return _ID.fullmatch(value) is not None


def _is_signed(report: TwilioReport, token: str) -> bool:
    return bool(
        report.signature
        and token
        and verify_twilio_signature(report.url, report.params, token, report.signature)
    )


def _forged() -> Forbidden:
    return Forbidden(
        "The X-Twilio-Signature header does not match this request.", code="invalid_signature"
    )


def _verified(report: TwilioReport, attempt: AttemptRow, token: str) -> tuple[str, str]:
    """The message sid and status a callback for a known attempt reports, once it is checked."""
    params = report.params
    if not _is_signed(report, token):
        raise _forged()
    sid = first(params, "MessageSid") or first(params, "SmsSid")
    reported = (first(params, "MessageStatus") or first(params, "SmsStatus") or "").lower()
    if not sid or not reported:
        raise Conflict(
            "The callback has no MessageSid or MessageStatus.", code="incomplete_callback"
        )
    if attempt.provider_message_id and attempt.provider_message_id != sid:
        raise Conflict(f"Message {sid} does not belong to this attempt.", code="unknown_sid")
    return sid, reported


def _apply_one(
    changes: Changes,
    report: TwilioReport,
    attempt: AttemptRow,
    delivery: DeliveryRow,
    message: MessageRow,
    sid: str,
    reported: str,
) -> bool:
    params, now = report.params, report.received_at
    changes.touch(attempt)
    changes.touch(delivery)
    if attempt.provider_message_id is None:
        attempt.provider_message_id = sid
    if attempt.state in ("in_flight", "not_sent", "unknown"):
        # The callback proves the provider has the message, whatever we believed.
        attempt.state = "accepted"
        attempt.finished_at = attempt.finished_at or now
    if delivery.provider_message_id in (None, sid):
        delivery.provider_message_id = sid
        note_provider_status(delivery, reported)
    return apply_reported(
        changes,
        message,
        delivery,
        reported,
        source="twilio-callback",
        at=now,
        attempt=attempt,
        error_code=first(params, "ErrorCode"),
        error_message=first(params, "ErrorMessage"),
    )


def note_provider_status(delivery: DeliveryRow, reported: str) -> None:
    """Keep the provider's own word for the message, never going back to an earlier one."""
    if is_later_status(delivery.provider_status, reported):
        delivery.provider_status = reported


# Leads with apply_status's parameters (as note_late_report does): every status writer takes
# (changes, message, delivery, status, source, at), so the shapes match by design.
def apply_reported(
    changes: Changes,
    message: MessageRow,
    delivery: DeliveryRow,
    reported: str,
    *,
    source: str,
    at: datetime,
    attempt: AttemptRow | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    label: str | None = "Twilio",
) -> bool:
    """Apply one status Twilio reported (callback, fetch or list); True if the message moved.

    Every way Twilio's word reaches Herald goes through here, so each keeps Twilio's error,
    records an opt-out, and is monotonic alike. ``label`` names the provider in the history.
    """
    mapped = STATUS_MAP.get(reported)
    if mapped is None:
        return False
    new = Status(mapped)
    error = None
    if error_code and new in (Status.FAILED, Status.UNDELIVERED):
        text = error_message or TWILIO_ERRORS.get(error_code, f"Twilio error {error_code}")
        error = ErrorInfo(error_code, text, more_info_url(error_code))
        if attempt is not None:
            changes.touch(attempt)
            attempt.error_code, attempt.error_message = error_code, text
            attempt.error_more_info = error.more_info
        if error_code in OPT_OUT_CODES:
            # The person told Twilio STOP: later sends to them must not even be tried.
            changes.suppress(delivery, OPT_OUT_CODES[error_code], at)
        if error_code == EXPIRED_AT_TWILIO:
            # Twilio dropped it from its queue at the validity end Herald passed: the same
            # event as Herald's own expiry, so the same outcome, whichever is noticed first.
            new = Status.EXPIRED
    shown = f"{label} {reported}" if label else reported
    detail = f"{shown} ({error.code} {error.message})" if error else (shown if label else None)
    moved = apply_status(
        changes,
        message,
        delivery,
        new,
        source=source,
        at=at,
        attempt_id=attempt.id if attempt else None,
        error=error,
        detail=detail,
    )
    if not moved:
        note_late_report(
            changes,
            message,
            delivery,
            new,
            source=source,
            detail=detail or shown,
            at=at,
            attempt_id=attempt.id if attempt else None,
            error_code=error_code,
        )
    return moved


def note_late_report(
    changes: Changes,
    message: MessageRow,
    delivery: DeliveryRow,
    reported: Status,
    *,
    source: str,
    detail: str,
    at: datetime,
    attempt_id: str | None = None,
    error_code: str | None = None,
) -> None:
    """Keep a report that came after its channel had ended in the history; change nothing.

    The cascade may have moved on when no report came in time; the provider's word still
    belongs in the message's history.
    """
    if delivery.status not in FINAL or reported == delivery.status:
        return
    changes.events.append(
        {
            "message_id": message.id,
            "delivery_id": delivery.id,
            "attempt_id": attempt_id,
            "status": reported.value,
            "source": source,
            "error_code": error_code,
            "detail": f"late report, not applied: {detail} after the channel ended "
            f"{delivery.status}",
            "at": at,
        }
    )
