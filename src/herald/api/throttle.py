"""A brake on failed authentication: a token bucket per client address, in memory.

Every wrong API key costs a database look-up; without a brake, one client could try keys
as fast as the database answers. Each address may spend a burst of attempts, then gets one
more at a steady rate. The buckets live in this process only (a restart forgets them) and
their number is bounded: past it, the least recently seen address is forgotten first, so a
flood of addresses costs memory once, not without end.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict

# About 100 bytes each: a megabyte or two, whatever the traffic.
MAX_ADDRESSES = 10_000


def address_key(host: str | None) -> str:
    """The bucket an address spends from: an IPv6 client owns a whole /64, so it counts as one."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # a Unix socket's path, or a name a proxy put there
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureThrottle:
    """How many more failures each address may risk now, refilled at a steady rate."""

    def __init__(self, burst: int, per_minute: float, max_addresses: int = MAX_ADDRESSES) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.max_addresses = max_addresses
        # address -> (tokens left, when they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def take(self, address: str, now: float) -> int | None:
        """Spend one attempt of ``address``: None when it may go ahead, else the seconds
        until it may try again."""
        tokens = self._tokens(address, now)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            self._buckets.move_to_end(address)
            return max(1, math.ceil((1.0 - tokens) / self.rate))
        self._buckets[address] = (tokens - 1.0, now)
        self._buckets.move_to_end(address)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
        return None

    def give_back(self, address: str, now: float) -> None:
        """Return an attempt that turned out not to be a failure."""
        if address in self._buckets:
            tokens = self._tokens(address, now) + 1.0
            if tokens >= self.burst:
                del self._buckets[address]  # nothing to remember about a full bucket
            else:
                self._buckets[address] = (tokens, now)
