"""The connect-time guard: tenant-chosen targets are checked on the addresses actually dialled.

A URL checked when it was given can still lead inside: its DNS name may resolve to a
private address later (or to both a public and a private one). So every connection Herald
opens for a tenant resolves the name itself, keeps only the addresses the UrlPolicy allows,
and connects to those: HTTP through aiohttp's resolver hook (an IP literal skips resolvers,
so the transport checks literals itself), SMTP through a socket opened here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from herald.domain.urls import SETTING, UrlPolicy, UrlRefused, literal_address


class TargetRefused(OSError):
    """Raised inside aiohttp's connector, which only passes OSErrors on as connect errors."""


class TargetNotAllowed(httpx.ConnectError):
    """Herald did not connect: the target is a private address the policy does not allow.

    A ConnectError, so code that treats "could not connect" alike keeps working; adapters
    that can tell make it a permanent failure (retrying changes nothing).
    """


def refusal(error: UrlRefused) -> str:
    """The sentence a refused connection is reported with."""
    return (
        f"Herald did not connect: the target {error.reason}; it only calls public addresses "
        f"unless {SETTING} names them."
    )


def check_literal(policy: UrlPolicy, host: str) -> None:
    """Raise TargetNotAllowed if ``host`` is an IP address the policy refuses."""
    try:
        address = literal_address(host)
        if address is not None:
            policy.check_address(host, address)
    except UrlRefused as e:
        raise TargetNotAllowed(refusal(e)) from e


def refused_connect(error: BaseException) -> TargetNotAllowed | None:
    """The TargetNotAllowed a connect error from aiohttp stands for, if the guard caused it."""
    seen: BaseException | None = error
    while seen is not None:
        for candidate in (seen, getattr(seen, "os_error", None)):  # aiohttp keeps it there
            if isinstance(candidate, TargetRefused):
                return TargetNotAllowed(str(candidate))
        seen = seen.__cause__
    return None


def allowed_only(
    policy: UrlPolicy, host: str, addresses: list[str]
) -> tuple[list[str], UrlRefused | None]:
    """The addresses of ``host`` the policy allows, and why the first other one was refused."""
    kept: list[str] = []
    first: UrlRefused | None = None
    for text in addresses:
        try:
            policy.check_address(host, ipaddress.ip_address(text))
        except UrlRefused as e:
            first = first or e
            continue
        kept.append(text)
    return kept, first


class GuardedResolver(AbstractResolver):
    """aiohttp's own resolver, answering only with the addresses the policy allows."""

    def __init__(self, policy: UrlPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``; raise TargetRefused when none of its addresses may be called."""
        results = await self._inner.resolve(host, port, family)
        kept, refused = allowed_only(self._policy, host, [r["host"] for r in results])
        if not kept:
            assert refused is not None  # a resolver answers with at least one address
            raise TargetRefused(refusal(refused))
        return [r for r in results if r["host"] in kept]

    async def close(self) -> None:
        await self._inner.close()


async def open_checked_socket(policy: UrlPolicy, host: str, port: int) -> socket.socket:
    """A TCP socket connected to an address of ``host`` the policy allows.

    For clients that take a connected socket (SMTP): the name stays theirs for TLS and SNI,
    while the address is the one checked here. Raises TargetNotAllowed, or OSError when no
    allowed address answers; the caller bounds the time it may take.
    """
    loop = asyncio.get_running_loop()
    check_literal(policy, host)
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    kept, refused = allowed_only(policy, host, [str(info[4][0]) for info in infos])
    if not kept:
        assert refused is not None  # getaddrinfo answers with an address or raises
        raise TargetNotAllowed(refusal(refused))
    last: OSError | None = None
    for family, kind, proto, _name, address in infos:
        if str(address[0]) not in kept:
            continue
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except BaseException as e:
            sock.close()
            if not isinstance(e, OSError):
                raise
            last = e
            continue
        return sock
    assert last is not None
    raise last
