"""Provider delivery reports (Twilio status callbacks): authenticate, then apply in batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald.channels.twilio import STATUS_MAP, more_info_url
from herald.domain.signatures import verify_twilio_signature
from herald.domain.statuses import FINAL, Status
from herald.errors import Conflict, Forbidden, HeraldError, NotFound
from herald.services.tracking import Changes, ErrorInfo, apply_status
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

# Twilio's asynchronous delivery errors, worded for the message view.
TWILIO_ERRORS = {
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


def _first(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


@dataclass(frozen=True, slots=True)
class TwilioReport:
    """One Twilio status callback as received: what to verify and apply."""

    attempt_id: str
    url: str
    params: Mapping[str, Sequence[str]]
    signature: str | None
    received_at: datetime


# Built once (see store.rows.by_ids).
_DELIVERY_OF = select(ATTEMPTS.c.id, ATTEMPTS.c.delivery_id).where(by_ids(ATTEMPTS.c.id))
_SECRETS = select(Sender.id, Sender.credentials_encrypted).where(by_ids(Sender.id))

PRICED = frozenset({Status.DELIVERED, Status.READ, Status.UNDELIVERED, Status.FAILED})


def schedule_price_fetch(delivery: DeliveryRow, now: datetime, delay: timedelta) -> None:
    """Come back for the price once Twilio has had time to set it.

    Status callbacks carry no price; a fetch of the message some time after its final status
    does.
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
    with; a refused report changes nothing. Safe to receive twice or out of order: the
    transition table ignores anything that would move a message backwards.
    """
    attempt_ids = {r.attempt_id for r in reports}
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
    changes = Changes(siblings=await load_siblings(session, rows.values()))
    results: list[bool | HeraldError] = []
    for report in reports:
        try:
            delivery_id = delivery_of.get(report.attempt_id)
            if (
                delivery_id is None
                or delivery_id not in rows
                or rows[delivery_id][0].sender_id not in tokens
            ):
                raise NotFound(
                    "This status callback is for no attempt Herald knows.", code="unknown_attempt"
                )
            delivery, message = rows[delivery_id]
            moved = _apply_one(
                changes,
                report,
                attempts[report.attempt_id],
                delivery,
                message,
                tokens[delivery.sender_id],
            )
            if delivery.lease_owner is None:  # a worker holding it schedules this itself
                schedule_price_fetch(delivery, report.received_at, price_fetch_delay)
            results.append(moved)
        except HeraldError as e:
            results.append(e)
    await changes.write(session)
    return results


def _apply_one(
    changes: Changes,
    report: TwilioReport,
    attempt: AttemptRow,
    delivery: DeliveryRow,
    message: MessageRow,
    token: str,
) -> bool:
    params, now = report.params, report.received_at
    if (
        not report.signature
        or not token
        or not verify_twilio_signature(report.url, params, token, report.signature)
    ):
        raise Forbidden(
            "The X-Twilio-Signature header does not match this request.", code="invalid_signature"
        )
    sid = _first(params, "MessageSid") or _first(params, "SmsSid")
    reported = (_first(params, "MessageStatus") or _first(params, "SmsStatus") or "").lower()
    if not sid or not reported:
        raise Conflict(
            "The callback has no MessageSid or MessageStatus.", code="incomplete_callback"
        )
    if attempt.provider_message_id and attempt.provider_message_id != sid:
        raise Conflict(f"Message {sid} does not belong to this attempt.", code="unknown_sid")

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
        delivery.provider_status = reported

    mapped = STATUS_MAP.get(reported)
    if mapped is None:
        return False
    error = None
    code = _first(params, "ErrorCode")
    if code and mapped in ("failed", "undelivered"):
        text = _first(params, "ErrorMessage") or TWILIO_ERRORS.get(code, "Delivery failed")
        error = ErrorInfo(code, text, more_info_url(code))
        attempt.error_code, attempt.error_message = code, text
        attempt.error_more_info = error.more_info
    detail = f"Twilio {reported}" + (f" ({code} {error.message})" if error else "")
    moved = apply_status(
        changes,
        message,
        delivery,
        Status(mapped),
        source="twilio-callback",
        at=now,
        attempt_id=attempt.id,
        error=error,
        detail=detail,
    )
    if not moved:
        note_late_report(
            changes,
            message,
            delivery,
            Status(mapped),
            source="twilio-callback",
            detail=detail,
            at=now,
            attempt_id=attempt.id,
            error_code=code,
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
