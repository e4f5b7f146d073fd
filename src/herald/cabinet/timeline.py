"""A message's life as one timeline: its statuses per channel, provider attempts, holds for
the allowed time ranges, short-link clicks and the client callbacks Herald sent.

Built from what the API shows of the message (``services.messages.reading.get_message``)
and of its callbacks (``services.messages.callback_log``): the page adds no fact of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from herald.domain.statuses import Status

# Kinds of entries (the template draws each its own way).
ACCEPTED = "accepted"
STATUS = "status"
HOLD = "hold"
ATTEMPT = "attempt"
CLICK = "click"
CALLBACK = "callback"


@dataclass
class Entry:
    """One moment of the timeline."""

    at: str
    kind: str
    channel: str | None = None
    status: str | None = None
    detail: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _status_entries(message: dict[str, Any]) -> list[Entry]:
    entries = []
    for event in message.get("history", []):
        # The dispatcher's "scheduled" is a hold: outside the allowed time ranges.
        held = event["status"] == Status.SCHEDULED and event["source"] == "dispatcher"
        entries.append(
            Entry(
                at=event["at"],
                kind=HOLD if held else STATUS,
                channel=event.get("channel"),
                status=event["status"],
                detail=event.get("detail"),
                facts={"source": event["source"]},
                error={"code": event["errorCode"]} if event.get("errorCode") else None,
            )
        )
    return entries


def _attempt_entries(message: dict[str, Any]) -> list[Entry]:
    entries = []
    for delivery in message.get("deliveries", []):
        provider = delivery["provider"]["name"]
        for attempt in delivery["attempts"]:
            entries.append(
                Entry(
                    at=attempt["startedAt"],
                    kind=ATTEMPT,
                    channel=delivery["channel"],
                    status=attempt["state"],
                    facts={
                        "number": attempt["number"],
                        "provider": provider,
                        "providerMessageId": attempt["providerMessageId"],
                        "httpStatus": attempt["httpStatus"],
                        "to": delivery["to"],
                    },
                    error=attempt["error"],
                )
            )
    return entries


def _click_entries(message: dict[str, Any]) -> list[Entry]:
    links = message.get("shortLinks") or {}
    if not links.get("firstClickedAt"):
        return []
    return [Entry(at=links["firstClickedAt"], kind=CLICK, facts={"clicks": links["clicks"]})]


def _callback_entry(callback: dict[str, Any], attempt: dict[str, Any] | None) -> Entry:
    """One try at telling the client (or, before the first, the callback waiting to go)."""
    return Entry(
        at=attempt["at"] if attempt else callback["createdAt"],
        kind=CALLBACK,
        status=callback["status"],
        facts={
            "sequence": callback["sequence"],
            "url": callback["url"],
            "httpStatus": attempt["httpStatus"] if attempt else None,
            "state": callback["state"],
        },
        error={"message": attempt["error"]} if attempt and attempt["error"] else None,
    )


def _callback_entries(callbacks: dict[str, Any]) -> list[Entry]:
    return [
        _callback_entry(callback, attempt)
        for callback in callbacks.get("items", [])
        for attempt in (callback["attempts"] or [None])
    ]


def timeline(message: dict[str, Any], callbacks: dict[str, Any]) -> list[Entry]:
    """Every moment of the message, oldest first."""
    entries = [Entry(at=message["createdAt"], kind=ACCEPTED)]
    entries += _status_entries(message)
    entries += _attempt_entries(message)
    entries += _click_entries(message)
    entries += _callback_entries(callbacks)
    # Stable: a status and the attempt that caused it keep their order at the same moment.
    return sorted(entries, key=lambda e: _moment(e.at))
