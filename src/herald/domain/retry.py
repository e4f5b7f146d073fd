"""Retry timing: exponential backoff with full jitter, honouring a provider's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how fast a transient failure is retried."""

    max_attempts: int = 5
    base_seconds: float = 2.0
    max_seconds: float = 300.0

    def delay(
        self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before the attempt after ``attempt`` (1-based), or None to give up.

        Full jitter (uniform in [0, cap]) spreads retries of a burst apart, so a provider
        that throttled us is not hit again by the whole burst at once.
        """
        if attempt >= self.max_attempts:
            return None
        cap = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        jittered = (rng or random).uniform(0, cap)
        if retry_after is not None:
            return max(retry_after, jittered)
        return jittered
