"""The connect-time guard: the addresses actually dialled are checked, not only the URL."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald.channels.base import OutboundMessage, PermanentError, SenderAccount
from herald.channels.egress import GuardedResolver, TargetNotAllowed, TargetRefused
from herald.channels.email import SmtpEmail
from herald.channels.http import provider_http_client, transport_errors
from herald.domain.urls import PUBLIC_ONLY, policy_of
from tests.fakes.smtp import FakeSmtp
from tests.servers import LOOPBACK_POLICY, _serve, free_port


class StubResolver(AbstractResolver):
    """A DNS that answers from a table: what a name resolves to is the attacker's choice."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        return None


STUB = StubResolver(
    {
        "hooks.example": ["93.184.216.34", "10.0.0.7", "2606:2800:220:1::1", "fd00::7"],
        "rebound.example": ["169.254.169.254"],
        "inside.example": ["10.0.0.7", "::ffff:10.0.0.8"],
        "relay.corp.example": ["10.0.0.9"],
    }
)


async def test_only_the_public_addresses_of_a_name_are_dialled() -> None:
    found = await GuardedResolver(PUBLIC_ONLY, STUB).resolve("hooks.example", 443)
    assert [r["host"] for r in found] == ["93.184.216.34", "2606:2800:220:1::1"]


@pytest.mark.parametrize("name", ["rebound.example", "inside.example"])
async def test_a_name_that_resolves_only_inside_is_refused(name: str) -> None:
    with pytest.raises(TargetRefused, match="HERALD_ALLOWED_PRIVATE_HOSTS"):
        await GuardedResolver(PUBLIC_ONLY, STUB).resolve(name, 443)


async def test_allowed_names_and_networks_pass_at_connect_time() -> None:
    by_name = GuardedResolver(policy_of(["relay.corp.example"]), STUB)
    assert [r["host"] for r in await by_name.resolve("relay.corp.example")] == ["10.0.0.9"]
    with pytest.raises(TargetRefused):
        await by_name.resolve("inside.example")
    by_network = GuardedResolver(policy_of(["10.0.0.0/24"]), STUB)
    assert [r["host"] for r in await by_network.resolve("inside.example")] == [
        "10.0.0.7",
        "::ffff:10.0.0.8",
    ]


# -- over real sockets ---------------------------------------------------------------------------


@pytest.fixture
async def listening() -> AsyncIterator[tuple[int, list[str]]]:
    """A server on 127.0.0.1 that records every request it gets."""
    port, seen = free_port(), []

    async def anything(request: Request) -> Response:
        seen.append(request.url.path)
        return Response("inside")

    app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
    server, task = await _serve(app, port)
    try:
        yield port, seen
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "0x7f.1", "2130706433", "127.1", "[::ffff:127.0.0.1]"],
)
async def test_the_client_for_tenant_targets_does_not_connect_inside(
    listening: tuple[int, list[str]], host: str
) -> None:
    port, seen = listening
    async with provider_http_client(timeout=5.0) as client:
        with pytest.raises(TargetNotAllowed, match="loopback"):
            await client.get(f"http://{host}:{port}/get")
        with pytest.raises(TargetNotAllowed, match="loopback"):
            await client.post_form(f"http://{host}:{port}/form", {"a": "b"}, auth=("u", "p"))
    assert seen == []  # a listening server, and nothing reached it


async def test_a_refused_connection_is_a_permanent_provider_error(
    listening: tuple[int, list[str]],
) -> None:
    port, seen = listening
    async with provider_http_client(timeout=5.0, urls=policy_of(["127.0.0.2"])) as client:
        with pytest.raises(PermanentError) as caught, transport_errors("Twilio"):
            await client.post_form(f"http://localhost:{port}/x", {"a": "b"}, auth=("u", "p"))
    assert caught.value.code == "url_not_allowed"
    assert "localhost, which is 127.0.0.1" in caught.value.message
    assert seen == []


async def test_allowed_hosts_are_reached(listening: tuple[int, list[str]]) -> None:
    port, seen = listening
    async with provider_http_client(timeout=5.0, urls=LOOPBACK_POLICY) as client:
        assert (await client.get(f"http://127.0.0.1:{port}/a")).text == "inside"
        assert (await client.get(f"http://localhost:{port}/b")).text == "inside"
    async with provider_http_client(timeout=5.0, urls=policy_of(["127.0.0.0/8"])) as client:
        assert (await client.get(f"http://localhost:{port}/c")).text == "inside"
    assert seen == ["/a", "/b", "/c"]


async def test_redirects_are_not_followed(listening: tuple[int, list[str]]) -> None:
    target_port, seen = listening
    port = free_port()

    async def moved(_request: Request) -> Response:
        return Response(
            status_code=307, headers={"Location": f"http://127.0.0.1:{target_port}/followed"}
        )

    server, task = await _serve(Starlette(routes=[Route("/", moved, methods=["POST"])]), port)
    try:
        async with provider_http_client(timeout=5.0, urls=LOOPBACK_POLICY) as client:
            response = await client.post(f"http://127.0.0.1:{port}/", content=b"{}")
    finally:
        server.should_exit = True
        await task
    assert response.status_code == 307
    assert seen == []


# -- SMTP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smtps() -> Iterator[FakeSmtp]:
    fake = FakeSmtp("tls")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def mail_account(base_url: str) -> SenderAccount:
    return SenderAccount("s", "smtp", "notify@herald.example", None, {}, base_url)


@pytest.mark.parametrize("allowed", [(), ("127.0.0.2",)])
async def test_an_smtp_host_inside_is_not_connected_to(
    smtps: FakeSmtp, allowed: tuple[str]
) -> None:
    smtps.reset()
    url = smtps.base_url_with_ca.replace("127.0.0.1", "localhost")
    with pytest.raises(PermanentError) as caught:
        await SmtpEmail(timeout=5.0, urls=policy_of(allowed)).send(
            mail_account(url), OutboundMessage(to="ann@example.org", body="x")
        )
    assert caught.value.code == "url_not_allowed"
    assert smtps.messages == []


async def test_smtp_connects_to_the_checked_address_and_keeps_the_name_for_tls(
    smtps: FakeSmtp,
) -> None:
    """The certificate names localhost, not 127.0.0.1's socket: TLS still checks the name."""
    smtps.reset()
    url = smtps.base_url_with_ca.replace("127.0.0.1", "localhost")
    receipt = await SmtpEmail(timeout=5.0, urls=policy_of(["localhost"])).send(
        mail_account(url), OutboundMessage(to="ann@example.org", body="x")
    )
    assert receipt.provider_status == "accepted"
    assert len(smtps.messages) == 1
