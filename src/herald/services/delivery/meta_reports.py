"""Meta's WhatsApp Cloud API webhook: subscription check, delivery reports, inbound messages."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald.channels.whatsapp_meta import (
    parse_inbound,
    parse_statuses,
    verify_signature,
    verify_subscription,
)
from herald.domain.statuses import Status
from herald.errors import Forbidden, InvalidRequest, NotFound
from herald.services.delivery.tracking import Changes, ErrorInfo, apply_status
from herald.services.delivery.twilio_reports import note_late_report, note_provider_status
from herald.services.vault import Vault
from herald.store.bots import record_inbound_activity
from herald.store.db import is_postgres
from herald.store.messages import Delivery, Message
from herald.store.rows import load_siblings, rows_of
from herald.store.senders import Sender

STATUS = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "failed": Status.FAILED,
}


# Load-or-raise, alike get_project and confirm_subscription by shape only: other rows, errors.
async def _sender(session: AsyncSession, sender_id: str) -> Sender:
    sender = await session.get(Sender, sender_id)
    if sender is None or sender.provider != "meta-whatsapp":
        raise NotFound("No Meta WhatsApp sender has this id.", code="unknown_sender")
    return sender


async def confirm_subscription(
    session: AsyncSession,
    vault: Vault,
    sender_id: str,
    mode: str | None,
    token: str | None,
    challenge: str | None,
) -> str:
    """The ``hub.challenge`` to echo when Meta's verify token matches the sender's."""
    sender = await _sender(session, sender_id)
    expected = vault.decrypt_json(sender.credentials_encrypted).get("verifyToken", "")
    answer = verify_subscription(mode, token, challenge, expected)
    if answer is None:
        raise Forbidden("The verify token does not match this sender's.", code="invalid_token")
    return answer


async def apply_meta_webhook(
    session: AsyncSession,
    vault: Vault,
    sender_id: str,
    raw_body: bytes,
    signature: str | None,
    now: datetime,
) -> int:
    """Verify a webhook POST and apply its statuses; returns how many moved a message."""
    sender = await _sender(session, sender_id)
    secret = vault.decrypt_json(sender.credentials_encrypted).get("appSecret", "")
    if not secret or not verify_signature(secret, raw_body, signature):
        raise Forbidden(
            "The X-Hub-Signature-256 header does not match this request.", code="invalid_signature"
        )
    try:
        payload = json.loads(raw_body)
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deep to parse
        raise InvalidRequest("The webhook body is not JSON.", code="malformed_json") from e
    if not isinstance(payload, dict):
        raise InvalidRequest("The webhook body is not a JSON object.", code="malformed_json")
    for inbound in parse_inbound(payload):
        # A person's message opens WhatsApp's 24-hour window for free text.
        await record_inbound_activity(
            session,
            sender.project_id,
            "whatsapp",
            f"+{inbound.wa_id.lstrip('+')}",
            inbound.timestamp,
        )
    reports = parse_statuses(payload)
    if not reports:
        return 0
    found = await _by_wamid(session, sender.id, {r.wamid for r in reports})
    for report in reports:
        if report.wamid not in found and report.recipient_id:
            early = await _in_flight_to(session, sender.id, report.recipient_id)
            if early is not None:
                found[report.wamid] = early
                # Flushed before the next query, so that one no longer finds it in flight.
                early[0].provider_message_id = report.wamid
    unmatched = {r.wamid for r in reports} - set(found)
    if unmatched:
        # The send's answer may have been recorded while we waited for its row.
        found.update(await _by_wamid(session, sender.id, unmatched))
    rows = dict(zip(found, rows_of(found.values()), strict=True))
    changes = Changes(siblings=await load_siblings(session, rows.values()))
    moved = 0
    for report in sorted(reports, key=lambda r: r.timestamp):
        if report.wamid not in rows:
            continue  # not ours, or already deleted: Meta wants a 200 regardless
        delivery, message = rows[report.wamid]
        note_provider_status(delivery, report.status)  # Meta's words rank as Twilio's do
        changes.touch(delivery)
        error = None
        if report.status == "failed" and report.error_code is not None:
            error = ErrorInfo(
                str(report.error_code),
                report.error_title or "Delivery failed",
                report.error_details,
            )
        detail = f"WhatsApp {report.status}" + (f" ({error.code} {error.message})" if error else "")
        if apply_status(
            changes,
            message,
            delivery,
            STATUS[report.status],
            source="meta-webhook",
            at=now,
            error=error,
            detail=detail,
        ):
            moved += 1
        else:
            note_late_report(
                changes,
                message,
                delivery,
                STATUS[report.status],
                source="meta-webhook",
                detail=detail,
                at=now,
                error_code=error.code if error else None,
            )
    await changes.write(session)
    return moved


async def _in_flight_to(
    session: AsyncSession, sender_id: str, recipient_id: str
) -> tuple[Delivery, Message] | None:
    """The one delivery a report can belong to before its send was recorded.

    Meta may report on a message before the send call's answer (the wamid) is stored; the
    sender's only in-flight delivery to that recipient without a provider id is it.
    """
    query = (
        select(Delivery, Message)
        .join(Message, Message.id == Delivery.message_id)
        .where(
            Delivery.sender_id == sender_id,
            Delivery.to_address == f"+{recipient_id.lstrip('+')}",
            Delivery.status == Status.SENDING,
            Delivery.provider_message_id.is_(None),
        )
        .limit(2)
    )
    if is_postgres(session):
        query = query.with_for_update(of=(Delivery, Message))
    candidates = (await session.execute(query)).all()
    if len(candidates) != 1:
        return None
    delivery, message = candidates[0]
    return delivery, message


async def _by_wamid(
    session: AsyncSession, sender_id: str, wamids: set[str]
) -> dict[str, tuple[Delivery, Message]]:
    query = (
        select(Delivery, Message)
        .join(Message, Message.id == Delivery.message_id)
        .where(Delivery.sender_id == sender_id, Delivery.provider_message_id.in_(wamids))
        .order_by(Message.id, Delivery.id)
    )
    if is_postgres(session):
        query = query.with_for_update(of=(Delivery, Message))
    rows = (await session.execute(query)).all()
    return {d.provider_message_id or "": (d, m) for d, m in rows}
