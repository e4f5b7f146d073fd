"""How messages look on the wire: TWIN's MessageItem shape plus Herald's own detail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from herald.domain.statuses import Status
from herald.store.messages import Attempt, Delivery, Message, StatusEvent
from herald.store.rows import DeliveryRow, MessageRow

STATUS_CODES: dict[str, int] = {
    Status.QUEUED: 1,
    Status.SCHEDULED: 2,
    Status.SENDING: 3,
    Status.SENT: 4,
    Status.DELIVERED: 5,
    Status.READ: 6,
    Status.UNDELIVERED: 7,
    Status.FAILED: 8,
    Status.CANCELLED: 9,
    Status.EXPIRED: 10,
    Status.PENDING: 11,
    Status.SKIPPED: 12,
}

STATUS_DESCRIPTIONS: dict[str, str] = {
    Status.QUEUED: "Accepted and waiting to be sent",
    Status.SCHEDULED: "Waiting for its scheduled time",
    Status.SENDING: "Handed to the provider",
    Status.SENT: "Sent to the network, waiting for a delivery report",
    Status.DELIVERED: "Delivered",
    Status.READ: "Read",
    Status.UNDELIVERED: "The network could not deliver it",
    Status.FAILED: "Failed",
    Status.CANCELLED: "Cancelled before it was sent",
    Status.EXPIRED: "Expired before it could be delivered",
    Status.PENDING: "Waiting for the cascade to reach this channel",
    Status.SKIPPED: "Not needed: delivered on an earlier channel",
}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _error(delivery: Delivery | DeliveryRow) -> dict[str, Any] | None:
    if not delivery.error_code:
        return None
    return {
        "code": delivery.error_code,
        "message": delivery.error_message or "",
        "moreInfo": delivery.error_more_info,
    }


def _provider(delivery: Delivery | DeliveryRow, provider: str | None) -> dict[str, Any]:
    return {
        "name": provider,
        "messageId": delivery.provider_message_id,
        "status": delivery.provider_status,
        "numSegments": delivery.num_segments,
        "price": delivery.price,
        "priceUnit": delivery.price_unit,
    }


def message_item(
    message: Message,
    delivery: Delivery,
    *,
    provider: str | None = None,
    events: Sequence[StatusEvent] | None = None,
    attempts: Sequence[Attempt] | None = None,
    links: dict[str, Any] | None = None,
    channel_of: dict[str, str] | None = None,
    template_name: str | None = None,
) -> dict[str, Any]:
    """A message as TWIN's SDK parses it (never null for its non-null keys)."""
    item: dict[str, Any] = {
        "id": message.id,
        "bulkId": message.bulk_id,
        "groupId": message.group_id,
        "flowId": message.group_id,
        "taskId": message.task_id,
        "status": message.status,
        "statusCode": STATUS_CODES[message.status],
        "statusDescription": STATUS_DESCRIPTIONS[message.status],
        "channel": delivery.channel,
        "partCount": delivery.num_segments or 1,
        "network": None,
        "templateId": message.template_id,
        "templateVersion": message.template_version,
        "templateName": template_name,
        "destination": message.destination,
        "message": {"from": delivery.from_address, "text": delivery.body},
        "templateVariables": message.template_variables,
        "tracks": {},
        "createdAt": iso(message.created_at),
        "sendAt": iso(message.send_at),
        "sentAt": iso(message.sent_at),
        "deliveredAt": iso(message.delivered_at),
        "expiredAt": iso(message.status_at) if message.status == Status.EXPIRED else None,
        "expiresAt": iso(delivery.expires_at),
        "allowedTimeRanges": message.allowed_time_ranges or [],
        "timezone": (
            {"name": message.timezone, "source": message.timezone_source}
            if message.timezone
            else None
        ),
        "error": _error(delivery),
        "provider": _provider(delivery, provider),
        "callbackUrl": message.callback_url,
        "callbackData": message.callback_data,
        "shortLinks": links or {"clicks": 0, "firstClickedAt": None},
    }
    if events is not None:
        item["history"] = [
            {
                "status": e.status,
                "at": iso(e.at),
                "source": e.source,
                "detail": e.detail,
                "errorCode": e.error_code,
                "channel": (channel_of or {}).get(e.delivery_id or "", delivery.channel),
            }
            for e in events
        ]
    if attempts is not None:
        item["attempts"] = [_attempt(a) for a in attempts]
    return item


def _attempt(a: Attempt) -> dict[str, Any]:
    return {
        "number": a.number,
        "state": a.state,
        "startedAt": iso(a.started_at),
        "finishedAt": iso(a.finished_at),
        "providerMessageId": a.provider_message_id,
        "httpStatus": a.http_status,
        "error": (
            {"code": a.error_code, "message": a.error_message, "moreInfo": a.error_more_info}
            if a.error_code
            else None
        ),
    }


def delivery_item(d: Delivery, provider: str, attempts: Sequence[Attempt]) -> dict[str, Any]:
    """One channel of a message's cascade, as the message view lists it."""
    return {
        "channel": d.channel,
        "step": d.step,
        "required": d.required,
        "to": d.to_address,
        "status": d.status,
        "provider": _provider(d, provider),
        "error": _error(d),
        "validityPeriod": d.validity_minutes,
        "expiresAt": iso(d.expires_at),
        "sentAt": iso(d.sent_at),
        "deliveredAt": iso(d.delivered_at),
        "updatedAt": iso(d.updated_at),
        "attempts": [_attempt(a) for a in attempts],
    }


def callback_payload(
    message: MessageRow, delivery: DeliveryRow, *, previous: str, at: datetime
) -> dict[str, Any]:
    """The JSON a client's callbackUrl receives when its message changes status.

    ``status`` is the message's, as GET /api/v1/messages/{id} shows it: a channel that
    failed while the cascade goes on is told in ``channel``/``channelStatus``/``error``
    only. ``sequence`` is set when the callback is stored (see services.tracking).
    """
    return {
        "event": "message.status",
        "id": message.id,
        "sequence": None,
        "bulkId": message.bulk_id,
        "groupId": message.group_id,
        "taskId": message.task_id,
        "status": message.status,
        "statusCode": STATUS_CODES[message.status],
        "previousStatus": previous,
        "channel": delivery.channel,
        "channelStatus": delivery.status,
        "at": iso(at),
        "destination": message.destination,
        "error": _error(delivery),
        "provider": _provider(delivery, None),
        "callbackData": message.callback_data,
    }
