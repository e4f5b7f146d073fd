"""The cascade: a message tried on its channels in turn, until one delivers.

A message holds one channel per step, in the order the request listed them. At accept time
the first channel not ``required`` (and every ``required`` one) is due; the others wait as
``pending``. When the due channel ends in failure (undelivered, failed, or expired because
no report came within its validity), the cascade hands over to the next pending channel;
when any channel is delivered, the pending ones are left unused (``skipped``), and so are
the waiting channels of the person's other messages in the same client-given group.
``required`` channels go out regardless and never take part in the hand-over.

These are the decisions only, pure over the channels' statuses and the message's plan:
``herald.services.delivery.tracking`` applies them (writes the rows, the history and the
callbacks), and ``herald.services.messages.accepting`` lays out the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from herald.domain.statuses import SUCCESS, Status

FAILURES: frozenset[Status] = frozenset({Status.UNDELIVERED, Status.FAILED, Status.EXPIRED})
"""Final statuses after which a cascade moves on to its next channel."""


class Channel(Protocol):
    """One channel (a delivery) of a message, as the cascade reads it."""

    step: int
    channel: str
    status: str
    required: bool
    error_code: str | None
    error_message: str | None


C = TypeVar("C", bound=Channel)


@dataclass(frozen=True, slots=True)
class Decision(Generic[C]):
    """What one channel's new status does to the rest of its message's cascade."""

    # The channel handed over to: due now, with the reason written in its history.
    next: C | None = None
    handover_detail: str | None = None
    # Channels left unused because this one was delivered.
    skipped: tuple[C, ...] = ()
    skip_detail: str | None = None
    # The message's client-given group was delivered: its other members' waiting channels
    # are skipped too.
    group_delivered: bool = False


def decide(changed: C, new: Status, channels: Sequence[C], *, group_given: bool) -> Decision[C]:
    """The cascade's move when ``changed`` reaches ``new``; ``channels`` are all its message's."""
    others = [c for c in channels if c is not changed]
    if new in FAILURES and not changed.required:
        following = next_channel(others)
        if following is None:
            return Decision()
        return Decision(next=following, handover_detail=handover_detail(changed, new, following))
    if new in SUCCESS:
        return Decision(
            skipped=tuple(c for c in others if c.status == Status.PENDING),
            skip_detail=f"not needed: delivered on {changed.channel}",
            group_delivered=group_given,
        )
    return Decision()


def waiting_fallbacks(channels: Iterable[C]) -> list[C]:
    """The channels the cascade has not reached yet, in the order it would try them."""
    waiting = (c for c in channels if c.status == Status.PENDING and not c.required)
    return sorted(waiting, key=lambda c: c.step)


def next_channel(channels: Iterable[C]) -> C | None:
    """The channel a failure hands over to: the first one not reached yet, if any."""
    waiting = waiting_fallbacks(channels)
    return waiting[0] if waiting else None


def handover_detail(failed: Channel, ended: Status, following: Channel) -> str:
    """The history line of a hand-over: which channel ended how, and why, and what is next."""
    why = failed.error_message or ended.value
    if failed.error_code and failed.error_code not in why:
        why = f"{failed.error_code} {why}"
    return f"{failed.channel} ended {ended.value} ({why}); trying {following.channel}"


def group_skip_detail(channel: str, message_id: str) -> str:
    """The history line of a channel skipped because another of its group was delivered."""
    return f"delivered_in_group: delivered on {channel} to message {message_id}"


def handover_deadline(at: datetime, validity_minutes: int | None) -> datetime | None:
    """When a channel handed over to at ``at`` expires, if it has a validity."""
    return at + timedelta(minutes=validity_minutes) if validity_minutes else None


def starts_at_once(required: Sequence[bool]) -> list[bool]:
    """Which of a recipient's channels are due at accept time; the others wait as pending.

    The first channel not ``required`` starts the cascade; every ``required`` one goes out
    regardless of it.
    """
    started = False
    result = []
    for is_required in required:
        result.append(is_required or not started)
        started = started or not is_required
    return result


def validities(
    given: Sequence[int | None], required: Sequence[bool], default_minutes: int
) -> list[int | None]:
    """Each channel's validity in minutes, the request's own or, for a channel the cascade
    may still leave (not ``required``, and not the last such), ``default_minutes``: without a
    deadline, a report that never comes would hold the cascade forever."""
    last = max((i for i, r in enumerate(required) if not r), default=-1)
    return [
        minutes if minutes is not None else (default_minutes if i < last and not r else None)
        for i, (minutes, r) in enumerate(zip(given, required, strict=True))
    ]
