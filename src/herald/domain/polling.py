"""When to ask a provider again about a message: a backoff that ends at a horizon.

Used where a provider may stay silent: a status report that never came (Twilio drops a
callback Herald failed to answer) and a price that is set some time after the final status.
The next time follows from the start (the last news) and the clock alone, so nothing needs
counting in the database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """Polls at ``first``, ``first * factor``, ``first * factor²``, … and last at ``horizon``."""

    first_seconds: float
    horizon_seconds: float
    factor: float = 4.0

    def __post_init__(self) -> None:
        if self.first_seconds <= 0 or self.factor <= 1:
            raise ValueError("a poll schedule needs first_seconds > 0 and factor > 1")

    def next_offset(self, elapsed: float) -> float | None:
        """Seconds from the start to the next poll after ``elapsed`` seconds; None when done.

        The wait grows with the silence so far: after ``elapsed`` seconds it is
        ``elapsed * (factor - 1)``, never under ``first``. So a poll made late (a worker was
        down), or a start that moved since the poll was set (a report came), never leads to
        polls in quick succession, and there are at most about log(horizon / first) /
        log(factor) + 2 polls from one start.
        """
        if elapsed >= self.horizon_seconds:
            return None
        return min(self.horizon_seconds, max(elapsed + self.first_seconds, elapsed * self.factor))

    def polls(self) -> int:
        """How many polls the whole schedule makes from one start when each comes on time."""
        count, elapsed = 0, 0.0
        while (offset := self.next_offset(elapsed)) is not None:
            count, elapsed = count + 1, offset
        return count
