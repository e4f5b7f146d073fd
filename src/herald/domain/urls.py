"""Which hosts Herald may call for a tenant: public addresses only, unless the admin names one.

A tenant gives URLs Herald calls (callbacks, bot backends, provider base URLs, SMTP hosts).
Pointed inside the network (cloud metadata at 169.254.169.254, a database, an admin panel),
they would turn Herald into the tenant's way in. A URL is checked when it is given (host as
written) and again when connecting (every address the name resolves to), since a DNS name
can be made to point inside after it was accepted.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "HERALD_ALLOWED_PRIVATE_HOSTS"

# IPv6 prefixes that carry an IPv4 address a gateway forwards to: judged by that address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# One label of a host name (letters, digits, hyphen, underscore; IDN arrives as punycode or
# Unicode letters): anything else (%, \, spaces) may be read differently by the HTTP client.
_LABEL = re.compile(r"^[\w-]{1,63}$")
_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")


class UrlRefused(ValueError):
    """A URL or address Herald will not call; ``reason`` completes "'field' …"."""

    def __init__(self, reason: str, *, private: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # Whether naming the host in HERALD_ALLOWED_PRIVATE_HOSTS would let it through.
        self.private = private

    def sentence(self, field: str) -> str:
        """The whole sentence for a client, naming the field."""
        hint = (
            f"; Herald only calls public addresses unless {SETTING} names it"
            if self.private
            else ""
        )
        return f"'{field}' {self.reason}{hint}."


def _ipv4_part(text: str) -> int:
    if text[:2] in ("0x", "0X"):
        return int(text[2:], 16)  # "0x" alone is 0 to inet_aton; int("") raises: refused
    if len(text) > 1 and text[0] == "0":
        return int(text[1:], 8)
    return int(text, 10)


def parse_ipv4(text: str) -> ipaddress.IPv4Address:
    """Read an IPv4 address the way inet_aton (and so getaddrinfo) does.

    ``127.1``, ``0x7f.1``, ``2130706433``, ``017700000001`` are all 127.0.0.1 to the
    resolver, so they must be to this check. Raises ValueError when it is not one.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.match(p) for p in parts):
        raise ValueError(f"{text!r} is not an IPv4 address")
    values = [_ipv4_part(p) for p in parts]
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (5 - len(values)):
        raise ValueError(f"{text!r} is not an IPv4 address")
    number = last
    for i, value in enumerate(leading):
        number |= value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` is written as, or None for a DNS name.

    A host whose last label is a number is an IPv4 address however it is spelt (as URL
    parsers and resolvers treat it); one that is not a valid address is refused outright.
    """
    host = host.strip("[]")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as e:
            raise UrlRefused(f"has a host that is not a valid IPv6 address ({host})") from e
    bare = host[:-1] if host.endswith(".") else host
    if not _NUMBER.match(bare.rsplit(".", 1)[-1]):
        return None
    try:
        return parse_ipv4(bare)
    except ValueError as e:
        raise UrlRefused(f"has a numeric host that is not a valid IPv4 address ({host})") from e


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def kind_of(address: IPAddress) -> str | None:
    """What makes ``address`` not a public one ("a loopback address"), or None if it is.

    ``is_global`` alone is not enough: it calls multicast and IPv6 site-local global, and an
    IPv4 address wrapped in IPv6 (mapped, NAT64, 6to4) reaches that IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return kind_of(inner)
        if address.is_site_local:
            return "a site-local address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private or not address.is_global:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    return None


def _is_localhost(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """The private hosts an admin lets tenants reach; every other private address is refused."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def _names(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def _covers(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def check_address(self, host: str, address: IPAddress) -> None:
        """Connect time: raise UrlRefused unless ``address`` (``host`` resolved) may be called.

        A host name the admin listed may resolve anywhere: that is what naming it means.
        """
        kind = kind_of(address)
        if kind is None or self._names(host) or self._covers(address):
            return
        try:
            written: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:  # a DNS name, or an odd spelling of an IPv4 address
            written = None
        shown = host if written == address else f"{host}, which is {address}"
        raise UrlRefused(f"points to {kind} ({shown})", private=True)

    def check_host(self, host: str) -> None:
        """Request time: raise UrlRefused unless ``host`` as written may be called.

        DNS names pass (they are checked again at connect time), except localhost's.
        """
        host = host.lower()
        if not host:
            raise UrlRefused("has no host")
        address = literal_address(host)
        if address is not None:
            self.check_address(host, address)
            return
        if not _valid_name(host):
            raise UrlRefused(f"has a host that is not a valid host name ({host})")
        if _is_localhost(host.rstrip(".")) and not self._names(host):
            raise UrlRefused(f"points to a loopback address ({host})", private=True)

    def check_url(self, url: str, schemes: tuple[str, ...] = ("http", "https")) -> None:
        """Request time: raise UrlRefused unless Herald may call ``url``."""
        what = " or ".join(f"{s}://" for s in schemes)
        if any(c in url for c in "\\\t\r\n ") or not url.isprintable():
            raise UrlRefused(f"must be an absolute {what} URL without spaces or backslashes")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  # raises on a port that is not a number
        except ValueError as e:
            raise UrlRefused(f"must be an absolute {what} URL ({e})") from e
        if parts.scheme.lower() not in schemes or not parts.netloc:
            raise UrlRefused(f"must be an absolute {what} URL")
        if "@" in parts.netloc:
            # The user part is sent nowhere useful and is a classic way to disguise the host.
            raise UrlRefused("must not carry a user name or password (user:pass@)")
        self.check_host(parts.hostname or "")


def _valid_name(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_LABEL.match(label) for label in labels)


def policy_of(entries: Iterable[str]) -> UrlPolicy:
    """The policy for the setting's entries: host names, IPs or CIDRs (ValueError if bad)."""
    return _parse(tuple(entries))


@functools.lru_cache(maxsize=16)  # read from the settings on every request
def _parse(entries: tuple[str, ...]) -> UrlPolicy:
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        problem = f"{raw!r} is not a host name, an IP address or a CIDR such as 10.0.0.0/8"
        try:
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry.strip("[]")))
                continue
            address = literal_address(entry)
        except ValueError as e:  # UrlRefused is one
            raise ValueError(f"{problem} ({e})") from e
        if address is not None:
            networks.append(ipaddress.ip_network(address))
        elif _valid_name(entry):
            hosts.add(entry.rstrip("."))
        else:
            raise ValueError(problem)
    return UrlPolicy(frozenset(hosts), tuple(networks))


# No private host allowed: the default wherever no installation settings are at hand.
PUBLIC_ONLY = UrlPolicy()
