"""A fake Twilio Messages API: a real HTTP server on loopback, speaking Twilio's wire format.

Herald's end-to-end tests and benchmarks point the Twilio adapter's base URL at it. It follows
`shared/reference/twilio.md`: form-encoded creates with HTTP Basic auth, Twilio's error bodies
(never `type`/`title`, which would switch twilio-python to its RFC 9457 exception), the test
credentials' magic numbers, list paging (newest `DateSent` first, the `DateSent` filters on
the date sent), and signed status callbacks.

In-process use::

    with FakeTwilio() as fake:
        ...  # point Herald at fake.base_url, then inspect fake.requests / fake.callbacks_sent

Standalone (benchmarks)::

    python -m tests.fakes.twilio --port 0 --accounts AC...:token   # prints "READY http://..."
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any, Final
from urllib.parse import SplitResult, parse_qs, parse_qsl, quote, urlencode, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

API_VERSION: Final = "2010-04-01"
DEFAULT_ACCOUNT_SID: Final = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN: Final = "test-token"

# The sender Twilio's test credentials treat as valid; stands in for the number a Messaging
# Service would pick from its pool.
_POOL_SENDER: Final = "+15005550006"
_MORE_INFO: Final = "https://www.twilio.com/docs/errors/"
_PRICE_PER_SEGMENT: Final = 0.0075
# Twilio's own defaults for status callbacks (reference §3): connect 5 s, read 15 s.
_CONNECT_TIMEOUT: Final = 5.0
_READ_TIMEOUT: Final = 15.0
# Status callbacks in flight at once. Twilio sends them from a fleet, so a bulk send meets
# many at a time; at 64 the fake, not Herald, set the pace in the SMS benchmark (Herald
# applies callbacks in batches, and small batches cost it ~20% more CPU per message).
_CALLBACK_CONCURRENCY: Final = 256
_MAX_RESPONSE_BYTES: Final = 1 << 20
# Printable ASCII stays as given in a request target; anything else is percent-encoded.
_TARGET_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F))
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

_CREATE_PATH: Final = re.compile(r"^/2010-04-01/Accounts/[^/]+/Messages\.json$")
_E164: Final = re.compile(r"^(?:whatsapp:)?\+[1-9]\d{6,14}$")
# E.164, a channel address, a short code, or an alphanumeric sender ID (at least one letter).
_SENDER: Final = re.compile(
    r"^(?:(?:whatsapp:)?\+[1-9]\d{6,14}|\d{5,6}|(?=[A-Za-z0-9 ]*[A-Za-z])[A-Za-z0-9 ]{1,11})$"
)
_DAY: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# "queued" keeps a message in Twilio's sender queue for good (a backed-up queue): no date_sent,
# no callback.
OUTCOMES: Final = frozenset({"delivered", "undelivered", "failed", "sent", "read", "queued"})
# A later status never gives way to an earlier one, so reversed callbacks leave the stored
# message at its final status, as Twilio's own resource would be.
_RANK: Final = {
    "accepted": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    # WhatsApp only: the recipient opened it (read receipts on).
    "read": 5,
}
_DEFAULT_ERROR: Final = {"undelivered": 30003, "failed": 30008}
_ASYNC_ERRORS: Final = {
    21610: "Attempt to send to unsubscribed recipient",
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30036: "Validity Period Expired",
    63016: "Failed to send freeform message because you are outside the allowed window.",
}

_FROM_MAGIC: Final = {
    "+15005550001": (
        21212,
        "The 'From' number +15005550001 is not a valid phone number, shortcode, "
        "or alphanumeric sender ID.",
    ),
    "+15005550007": (
        21606,
        "The 'From' phone number provided (+15005550007) is not a valid message-capable "
        "Twilio phone number for this destination.",
    ),
    "+15005550008": (
        21611,
        "This 'From' number has exceeded the maximum number of queued messages.",
    ),
}
_TO_MAGIC: Final = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (
        21612,
        "The 'To' phone number: +15005550002, is not currently reachable using the 'From' "
        "phone number via SMS.",
    ),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: +15005550003.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}

_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")


def twilio_signature(
    url: str, params: dict[str, list[str]] | dict[str, str], auth_token: str
) -> str:
    """Compute `X-Twilio-Signature` for a request to `url` carrying form `params` (reference §4)."""
    parts = [url]
    for name in sorted(params):
        value = params[name]
        # Repeated keys are deduplicated and sorted, exactly as twilio-python's validator does.
        for item in sorted({value} if isinstance(value, str) else set(value)):
            parts.append(name)
            parts.append(item)
    digest = hmac.digest(auth_token.encode(), "".join(parts).encode(), hashlib.sha1)
    return base64.b64encode(digest).decode("ascii")


def num_segments(body: str) -> int:
    """Count SMS segments: GSM-7 (160/153 septets) or, for any other character, UCS-2 (70/67)."""
    if not body:
        return 1
    septets = 0
    for char in body:
        if char in _GSM7_BASIC:
            septets += 1
        elif char in _GSM7_EXTENSION:
            septets += 2
        else:
            # Astral characters (emoji) take two UTF-16 code units.
            units = len(body.encode("utf-16-le")) // 2
            return 1 if units <= 70 else math.ceil(units / 67)
    return 1 if septets <= 160 else math.ceil(septets / 153)


@dataclass(frozen=True, slots=True)
class CreateRecord:
    """One create request the fake received, whatever it answered.

    `response_status` is 0 when the fake was down and dropped the connection unanswered.
    """

    params: dict[str, list[str]]
    at: float
    wall: float
    response_status: int
    sid: str | None
    account_sid: str
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """One status callback the fake tried to deliver.

    `status_code` is Herald's answer, or None when no answer came (`error` says why).
    """

    url: str
    params: dict[str, str]
    status_code: int | None
    at: float
    signature: str
    attempts: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InboundResult:
    """Herald's answer to one inbound-message webhook the fake posted (like a phone texting)."""

    status_code: int
    text: str
    content_type: str
    params: dict[str, str]
    signature: str


@dataclass(slots=True)
class _Failure:
    remaining: int
    http_status: int
    code: int
    retry_after: float | None


@dataclass(slots=True)
class _Message:
    seq: int
    sid: str
    account_sid: str
    status_callback: str | None
    messaging_service_sid: str | None
    segments: int
    whatsapp: bool
    steps: tuple[str, ...]
    error_code: int | None
    generation: int
    data: dict[str, Any]
    deleted: bool = False
    # When it left the queue (date_sent, to the microsecond for ordering the list).
    sent_at: datetime | None = None


@dataclass(slots=True)
class _Running:
    thread: threading.Thread
    server: uvicorn.Server
    sock: socket.socket
    ready: threading.Event
    loop: asyncio.AbstractEventLoop | None = None
    client: _CallbackClient | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    error: BaseException | None = None


class _ConnectFailed(Exception):
    """The callback's TCP (or TLS) connection could not be made: Twilio's one retry case."""


class _NoResponse(Exception):
    """The server closed the connection before sending a status line."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.x response; return its status and whether the connection can be reused."""
    status_line = await reader.readline()
    if not status_line:
        raise _NoResponse("connection closed without a response")
    version, _, rest = status_line.partition(b" ")
    status = int(rest[:3])
    keep_alive = version == b"HTTP/1.1"
    length: int | None = None
    chunked = False
    for _ in range(100):
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep_alive = b"close" not in value and (keep_alive or b"keep-alive" in value)
    else:
        raise ValueError("more than 100 response headers")
    if chunked:
        for _ in range(_MAX_RESPONSE_BYTES):
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                break
            await reader.readexactly(size + 2)
        for _ in range(100):  # trailers
            if (await reader.readline()) in (b"\r\n", b"\n", b""):
                break
    elif length is not None:
        await reader.readexactly(length)
    elif status >= 200 and status not in (204, 304):
        # No framing: the body runs to the end of the connection.
        await reader.read(_MAX_RESPONSE_BYTES)
        keep_alive = False
    return status, keep_alive


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Slots:
    """A FIFO limit on concurrent callbacks whose waiters leave in O(1) when cancelled.

    asyncio.Semaphore removes a cancelled waiter by scanning its deque, so stopping the
    fake with 100,000 callbacks queued (a benchmark's burst) took longer than the 10 s
    stop() allows.
    """

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiters: dict[asyncio.Future[None], None] = {}

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[fut] = None
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # handed a slot, then cancelled before using it
            raise
        finally:
            self._waiters.pop(fut, None)

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            fut = next(iter(self._waiters))
            del self._waiters[fut]
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the oldest waiter
                return
        self._free += 1


def _connection_overrides(fragment: str) -> tuple[int, frozenset[str]]:
    """Twilio's retries for one callback URL: how many (rc, at most 5) and on what (rp).

    Without overrides Twilio retries once, and only a connection it could not make.
    """
    overrides = dict(parse_qsl(fragment))
    try:
        retries = max(0, min(int(overrides.get("rc", "1")), 5))
    except ValueError:
        retries = 1
    return retries, frozenset(overrides.get("rp", "ct").split(","))


class _CallbackClient:
    """A keep-alive HTTP/1.1 client that only POSTs status callbacks.

    httpx was the first choice, but its async pool delivered only ~100-400 callbacks/s here
    with 4 to 64 connections; benchmarks need thousands per second, which plain asyncio
    streams give.
    """

    def __init__(self, max_connections: int) -> None:
        self._slots = _Slots(max_connections)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    async def post(self, parts: SplitResult, body: bytes, headers: dict[str, str]) -> int:
        """POST `body` to the URL; return the status. Raises _ConnectFailed, OSError, ValueError."""
        host = parts.hostname or ""
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        target = quote(parts.path or "/", safe=_TARGET_SAFE)
        if parts.query:
            target += "?" + quote(parts.query, safe=_TARGET_SAFE)
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [f"Content-Length: {len(body)}", "", ""]
        request = "\r\n".join(lines).encode("latin-1") + body
        key = (parts.scheme, host, port)
        async with self._slots:
            # A pooled connection may have been closed by the server while idle; that earns
            # one more try on a fresh connection, as any HTTP client does.
            for attempt in range(2):
                pooled = self._idle.get(key)
                reused = attempt == 0 and bool(pooled)
                connection = pooled.pop() if reused and pooled else None
                if connection is None:
                    connection = await self._connect(host, port, secure)
                reader, writer = connection
                try:
                    writer.write(request)
                    await writer.drain()
                    status, keep_alive = await asyncio.wait_for(
                        _read_response(reader), _READ_TIMEOUT
                    )
                except (_NoResponse, ConnectionError) as exc:
                    writer.close()
                    if reused:
                        continue
                    raise ConnectionError(str(exc)) from exc
                except BaseException:
                    writer.close()
                    raise
                if keep_alive:
                    self._idle.setdefault(key, []).append(connection)
                else:
                    writer.close()
                return status
        raise AssertionError("unreachable: the second attempt always returns or raises")

    async def _connect(self, host: str, port: int, secure: bool) -> _Connection:
        context = ssl.create_default_context() if secure else None
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context), _CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise _ConnectFailed(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the idle connections."""
        idle = [connection for pool in self._idle.values() for connection in pool]
        self._idle.clear()
        for _, writer in idle:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for _, writer in idle), return_exceptions=True)


class _Server(uvicorn.Server):
    """A uvicorn server that reports when its sockets accept connections."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._ready.set()


def _error(
    http_status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"{_MORE_INFO}{code}",
        "status": http_status,
    }
    return JSONResponse(body, status_code=http_status, headers=headers)


def _not_found(path: str) -> JSONResponse:
    return _error(404, 20404, f"The requested resource {path} was not found")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return _not_found(request.url.path)
    if status == 405:
        return _error(405, 20004, "Method not allowed")
    return _error(status, 20000 + status, "Internal Server Error")


def _parse_form(content_type: str, body: bytes) -> dict[str, list[str]]:
    # Twilio reads only form bodies: a JSON body arrives as no parameters at all (hence 21604).
    if content_type.split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _basic_auth_matches(header: str, account_sid: str, token: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    username, _, password = decoded.partition(":")
    return hmac.compare_digest(username, account_sid) & hmac.compare_digest(password, token)


def _validate(params: dict[str, list[str]]) -> tuple[int, str] | None:
    """Return Twilio's (code, message) for a create Twilio would refuse, else None."""
    to = _first(params, "To")
    sender = _first(params, "From")
    if not to:
        return 21604, "A 'To' phone number is required."
    if not sender and not _first(params, "MessagingServiceSid"):
        return 21603, "A 'From' phone number is required."
    body = _first(params, "Body") or ""
    if not body and not params.get("MediaUrl") and not _first(params, "ContentSid"):
        return 21602, "Message body is required."
    if len(body) > 1600:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    variables = _first(params, "ContentVariables")
    if variables is not None:
        # Code and wording [U]: Twilio documents ContentVariables as a JSON object string.
        try:
            decoded = json.loads(variables)
        except ValueError:
            decoded = None
        if not _first(params, "ContentSid") or not isinstance(decoded, dict):
            return 21656, "The ContentVariables Parameter is invalid."
    if not _E164.match(to):
        return 21211, f"The 'To' number {to} is not a valid phone number."
    if sender:
        if not _SENDER.match(sender):
            return (
                21212,
                f"The 'From' number {sender} is not a valid phone number, shortcode, "
                "or alphanumeric sender ID.",
            )
        magic = _FROM_MAGIC.get(sender.removeprefix("whatsapp:"))
        if magic is not None:
            return magic
    return _TO_MAGIC.get(to.removeprefix("whatsapp:"))


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    if not _DAY.match(value):
        raise ValueError(value)
    return date.fromisoformat(value)


_ListKey = tuple[int, int, int]


def _list_key(message: _Message) -> _ListKey:
    """Where a message sorts in a list, highest first: newest DateSent first (reference §8).

    A message not sent yet has no date_sent; it is listed before every sent one [U: Twilio
    does not document where], newest created first.
    """
    sent = message.sent_at
    if sent is None:
        return (1, 0, message.seq)
    return (0, int(sent.timestamp() * 1_000_000), message.seq)


def _page_token(key: _ListKey) -> str:
    return "PA" + "-".join(map(str, key))


def _parse_page_token(token: str) -> _ListKey:
    parts = token.removeprefix("PA").split("-")
    if not token.startswith("PA") or len(parts) != 3:
        raise ValueError(token)
    unsent, sent, seq = (int(p) for p in parts)
    return (unsent, sent, seq)


def _matches_date_sent(
    sent: datetime | None, on: date | None, after: date | None, before: date | None
) -> bool:
    """Whether a message sent at ``sent`` passes the DateSent filters given (None: not given).

    A message never sent has no date_sent, so it matches no DateSent filter at all.
    """
    if on is None and after is None and before is None:
        return True
    if sent is None:
        return False
    day = sent.date()
    return (
        (on is None or day == on)
        and (after is None or day >= after)
        and (before is None or day <= before)
    )


async def _read_body(receive: Receive) -> bytes:
    """A request's body, read to its end (a create is small; past 1 MiB the rest is left)."""
    body = bytearray()
    while len(body) <= 1 << 20:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(body)


async def _hang_up(receive: Receive, send: Send) -> None:
    """Close the request's connection without an answer."""
    # ASGI cannot abort a connection; uvicorn's `send` is a bound method of the request
    # cycle, which holds the transport. Closing it is what a dead Twilio looks like.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    close = getattr(transport, "close", None)
    if not callable(close):
        raise RuntimeError("dropping connections needs uvicorn's HTTP protocol")
    close()
    # Returning before uvicorn sees the disconnect would make it log a missing response.
    await asyncio.wait_for(receive(), timeout=5)


def _loopback_parts(url: str) -> SplitResult | None:
    """The parts of ``url`` if it is an http(s) URL on this machine, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK_HOSTS:
        return parts
    return None


_last_stamp: tuple[int, str] = (-1, "")


def _stamp(now: datetime) -> str:
    """``now`` as Twilio dates its messages (RFC 2822, whole seconds).

    Formatted once a second: email.utils' formatting was the fake's costliest single step
    in the SMS benchmark, where every message is stamped three times.
    """
    global _last_stamp
    second = int(now.timestamp())
    cached_second, text = _last_stamp
    if cached_second != second:
        text = format_datetime(now.replace(microsecond=0))
        _last_stamp = (second, text)
    return text


class FakeTwilio:
    """A fake Twilio REST API served by uvicorn on a background thread.

    Knobs may be turned from any thread; the records (`requests`, `messages`,
    `callbacks_sent`, `callbacks_failed`) are appended by the server thread and meant to be
    read by the test.
    """

    def __init__(
        self,
        *,
        accounts: dict[str, str] | None = None,
        callback_delay: float = 0.0,
        send_callbacks: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._accounts = (
            dict(accounts) if accounts is not None else {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}
        )
        if not self._accounts:
            raise ValueError("FakeTwilio needs at least one account")
        self.callback_delay = callback_delay
        self.send_callbacks = send_callbacks
        self._host = host
        self._port = port
        self.base_url = ""

        self.requests: list[CreateRecord] = []
        self.messages: dict[str, dict[str, Any]] = {}
        # Every fetch (the sid asked for) and every list (its query), whatever the answer.
        self.fetches: list[str] = []
        self.lists: list[dict[str, list[str]]] = []
        self.callbacks_sent: list[CallbackRecord] = []
        # Callbacks not answered with a 2xx (including those with no answer at all).
        self.callbacks_failed: list[CallbackRecord] = []

        self._lock = threading.Lock()
        self._callbacks_changed = threading.Condition(self._lock)
        self._outcomes: dict[str, tuple[str, int | None]] = {}
        self._failures: deque[_Failure] = deque()
        self._down = False
        self._answers_lost = False
        self._answer_delay = 0.0
        self._priced = True
        self._reversed = False
        self._generation = 0
        self._created = 0
        self._store: dict[str, _Message] = {}
        self._ordered: list[_Message] = []
        self._running: _Running | None = None

        prefix = "/2010-04-01/Accounts/{account_sid}"
        self._app = Starlette(
            routes=[
                Route(f"{prefix}/Messages.json", self._create, methods=["POST"]),
                Route(f"{prefix}/Messages.json", self._list, methods=["GET"]),
                Route(f"{prefix}/Messages/{{sid}}.json", self._fetch, methods=["GET"]),
                Route(f"{prefix}/Messages/{{sid}}.json", self._update, methods=["POST"]),
                Route(f"{prefix}/Messages/{{sid}}.json", self._delete, methods=["DELETE"]),
                Route("/_fake/stats", self._stats, methods=["GET"]),
                Route("/_fake/times", self._times, methods=["GET"]),
            ],
            exception_handlers={404: _http_error, 405: _http_error},
        )

    @property
    def account_sid(self) -> str:
        """The first configured account SID."""
        return next(iter(self._accounts))

    @property
    def auth_token(self) -> str:
        """The auth token of `account_sid`."""
        return self._accounts[self.account_sid]

    def auth_token_for(self, account_sid: str) -> str:
        """The auth token the fake signs `account_sid`'s callbacks with."""
        return self._accounts[account_sid]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Serve on a background thread; returns once the socket accepts connections."""
        if self._running is not None:
            raise RuntimeError("FakeTwilio is already running")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Lets stop() then start() rebind the same port while old connections sit in
            # TIME_WAIT, which is how tests simulate Twilio going away and coming back.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        netloc = f"[{self._host}]" if family == socket.AF_INET6 else self._host
        self.base_url = f"http://{netloc}:{self._port}"

        config = uvicorn.Config(
            self._asgi,
            loop="auto",
            http="auto",
            ws="none",
            lifespan="off",
            # uvicorn cannot tell a bound coroutine method from an ASGI2 factory.
            interface="asgi3",
            access_log=False,
            log_level="warning",
            # Leave the host process's logging alone; uvicorn's errors still reach the root.
            log_config=None,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
            backlog=2048,
        )
        ready = threading.Event()
        server = _Server(config, ready)
        thread = threading.Thread(target=self._run, name=f"fake-twilio-{self._port}", daemon=True)
        running = _Running(thread=thread, server=server, sock=sock, ready=ready)
        self._running = running
        thread.start()
        if not ready.wait(10) or running.error is not None or not server.started:
            server.should_exit = True
            thread.join(5)
            self._running = None
            raise RuntimeError("fake Twilio failed to start") from running.error

    def _run(self) -> None:
        running = self._running
        assert running is not None
        try:
            loop_factory = running.server.config.get_loop_factory()
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(self._serve(running))
        except BaseException as exc:  # surfaced by start()/stop() instead of dying unseen
            running.error = exc
        finally:
            running.sock.close()
            running.ready.set()

    async def _serve(self, running: _Running) -> None:
        running.loop = asyncio.get_running_loop()
        client = _CallbackClient(_CALLBACK_CONCURRENCY)
        running.client = client
        try:
            await running.server.serve(sockets=[running.sock])
        finally:
            await self._cancel_tasks(running)
            running.client = None
            await client.aclose()

    async def _cancel_tasks(self, running: _Running) -> None:
        tasks = list(running.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Stop serving; in-flight progressions are dropped, records and knobs kept."""
        running = self._running
        if running is None:
            return
        running.server.should_exit = True
        running.thread.join(10)
        self._running = None
        if running.thread.is_alive():
            raise RuntimeError("fake Twilio did not stop within 10 s")
        if running.error is not None:
            raise RuntimeError("fake Twilio's server thread failed") from running.error

    def __enter__(self) -> FakeTwilio:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget messages, records and knobs, and cancel status progressions in flight."""
        running = self._running
        if running is not None and running.loop is not None and running.loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._cancel_tasks(running), running.loop)
            future.result(timeout=10)
        with self._lock:
            self._generation += 1
            self.requests.clear()
            self.messages.clear()
            self.fetches.clear()
            self.lists.clear()
            self.callbacks_sent.clear()
            self.callbacks_failed.clear()
            self._store.clear()
            self._ordered.clear()
            self._outcomes.clear()
            self._failures.clear()
            self._down = False
            self._answers_lost = False
            self._answer_delay = 0.0
            self._priced = True
            self._reversed = False
            self._created = 0

    # -- knobs -------------------------------------------------------------------------------

    def set_outcome(self, to: str, status: str, error_code: int | None = None) -> None:
        """Set the final status of messages later created for `to` (delivered by default)."""
        if status not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {status!r}")
        if status == "read" and not to.startswith("whatsapp:"):
            raise ValueError("only WhatsApp messages are read (to must start with whatsapp:)")
        if error_code is None:
            error_code = _DEFAULT_ERROR.get(status)
        with self._lock:
            self._outcomes[to] = (status, error_code)

    def fail_next(
        self,
        count: int,
        *,
        http_status: int = 500,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `count` creates with this error, before auth, creating nothing."""
        if count <= 0:
            return
        failure = _Failure(
            remaining=count,
            http_status=http_status,
            code=code if code is not None else 20000 + http_status,
            retry_after=retry_after,
        )
        with self._lock:
            self._failures.append(failure)

    def set_down(self, down: bool) -> None:
        """While down, creates are read, recorded, and their connection closed unanswered."""
        with self._lock:
            self._down = down

    def lose_answers(self, lost: bool) -> None:
        """While set, creates are carried out (the message exists and goes on) but their
        connection is closed unanswered: Twilio took the message and the answer was lost.

        They are recorded as created (201, with their sid), which is what Twilio did.
        """
        with self._lock:
            self._answers_lost = lost

    def set_answer_delay(self, seconds: float) -> None:
        """Hold each successful create's 201 this long. The message exists from the moment
        the request is read, and goes on to its outcome whether or not the client waits.

        Twilio takes a few hundred milliseconds to answer, so a client that dies meanwhile
        leaves a message it never learnt the sid of: what reconciliation has to find.
        """
        if seconds < 0:
            raise ValueError("the answer delay cannot be negative")
        with self._lock:
            self._answer_delay = seconds

    def set_priced(self, priced: bool) -> None:
        """Whether messages sent from now on get a price (on by default; off: never priced)."""
        with self._lock:
            self._priced = priced

    def callback_order(self, order: str) -> None:
        """Send status callbacks of messages created from now on in "normal" or "reversed" order."""
        if order not in ("normal", "reversed"):
            raise ValueError(f"order must be 'normal' or 'reversed', not {order!r}")
        with self._lock:
            self._reversed = order == "reversed"

    def wait_for_callbacks(self, n: int, timeout: float = 10.0) -> None:
        """Block until `n` callbacks were answered (any HTTP status); TimeoutError otherwise."""
        with self._callbacks_changed:
            if not self._callbacks_changed.wait_for(lambda: len(self.callbacks_sent) >= n, timeout):
                raise TimeoutError(
                    f"{len(self.callbacks_sent)} of {n} callbacks answered after {timeout} s"
                )

    async def send_inbound(
        self,
        to: str,
        from_: str,
        body: str,
        *,
        url: str,
        media: list[str] | None = None,
        account_sid: str | None = None,
        message_sid: str | None = None,
        extra: dict[str, str] | None = None,
        sign_with: str | None = None,
        signed_url: str | None = None,
    ) -> InboundResult:
        """POST a signed inbound-message webhook to `url`, as Twilio does when `from_` texts
        the number `to` (reference §5); returns the TwiML answer.

        `message_sid` repeats a delivery; `extra` adds parameters (e.g. `OptOutType`);
        `sign_with` signs with another token and `signed_url` for another URL (forgeries).
        """
        sid = account_sid or self.account_sid
        media = media or []
        message_sid = message_sid or ("MM" if media else "SM") + uuid.uuid4().hex
        params = {
            "ToCountry": "US",
            "SmsMessageSid": message_sid,
            "NumMedia": str(len(media)),
            "SmsSid": message_sid,
            "SmsStatus": "received",
            "Body": body,
            "To": to,
            "NumSegments": str(num_segments(body)),
            "MessageSid": message_sid,
            "AccountSid": sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        for i, media_url in enumerate(media):
            params[f"MediaUrl{i}"] = media_url
            params[f"MediaContentType{i}"] = "image/jpeg"
        params.update(extra or {})
        token = sign_with if sign_with is not None else self._accounts.get(sid, "")
        signature = twilio_signature(signed_url or url, params, token)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": uuid.uuid4().hex,
        }
        # Twilio waits 15 s for the TwiML (reference §3 timeouts).
        async with httpx.AsyncClient(timeout=_READ_TIMEOUT) as client:
            response = await client.post(url, content=urlencode(params).encode(), headers=headers)
        return InboundResult(
            status_code=response.status_code,
            text=response.text,
            content_type=response.headers.get("content-type", ""),
            params=params,
            signature=signature,
        )

    def stats(self) -> dict[str, int]:
        """Counters, as served by GET /_fake/stats."""
        with self._lock:
            return {
                "creates": len(self.requests),
                "created": self._created,
                "callbacks_sent": len(self.callbacks_sent),
                "callbacks_failed": len(self.callbacks_failed),
                "messages": len(self._store),
            }

    # -- HTTP --------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            (self._down or self._answers_lost)
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and _CREATE_PATH.match(scope["path"])
        ):
            if self._down:
                await self._drop(scope, receive, send)
            else:
                await self._create_unanswered(scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a create, record it, and close its connection without answering."""
        body = await _read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        params = _parse_form(headers.get("content-type", ""), body)
        account_sid = scope["path"].split("/")[3]
        self._record_create(params, account_sid, 0, None, None)
        await _hang_up(receive, send)

    async def _create_unanswered(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Carry out a create, then close its connection instead of answering."""
        body = await _read_body(receive)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        routed = {**scope, "path_params": {"account_sid": scope["path"].split("/")[3]}}
        response = await self._create(Request(routed, replay))
        if response.background is not None:
            await response.background()
        await _hang_up(receive, send)

    def _authenticate(self, request: Request, account_sid: str) -> JSONResponse | None:
        token = self._accounts.get(account_sid)
        header = request.headers.get("authorization")
        if token is not None and header and _basic_auth_matches(header, account_sid, token):
            return None
        return _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})

    def _take_failure(self) -> _Failure | None:
        if not self._failures:
            return None
        with self._lock:
            if not self._failures:
                return None
            failure = self._failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failures.popleft()
            return failure

    def _record_create(
        self,
        params: dict[str, list[str]],
        account_sid: str,
        status: int,
        sid: str | None,
        code: int | None,
    ) -> None:
        record = CreateRecord(
            params=params,
            at=time.monotonic(),
            wall=time.time(),
            response_status=status,
            sid=sid,
            account_sid=account_sid,
            error_code=code,
        )
        with self._lock:
            self.requests.append(record)

    async def _create(self, request: Request) -> Response:
        account_sid: str = request.path_params["account_sid"]
        params = _parse_form(request.headers.get("content-type", ""), await request.body())
        # Injected failures model the edge (load balancer, concurrency limit): before auth.
        failure = self._take_failure()
        if failure is not None:
            headers = None
            if failure.retry_after is not None:
                headers = {"Retry-After": f"{failure.retry_after:g}"}
            message = "Too Many Requests" if failure.http_status == 429 else "Internal Server Error"
            self._record_create(params, account_sid, failure.http_status, None, failure.code)
            return _error(failure.http_status, failure.code, message, headers)
        denied = self._authenticate(request, account_sid)
        if denied is not None:
            self._record_create(params, account_sid, 401, None, 20003)
            return denied
        problem = _validate(params)
        if problem is not None:
            self._record_create(params, account_sid, 400, None, problem[0])
            return _error(400, *problem)
        message_ = self._new_message(account_sid, params)
        self._record_create(params, account_sid, 201, message_.sid, None)
        if self._answer_delay > 0:
            await asyncio.sleep(self._answer_delay)
        # A background task runs after the 201 is written, so Herald sees the sid before any
        # callback about it.
        return JSONResponse(
            message_.data, status_code=201, background=BackgroundTask(self._launch, message_)
        )

    def _new_message(self, account_sid: str, params: dict[str, list[str]]) -> _Message:
        to = _first(params, "To") or ""
        sender = _first(params, "From") or None
        service = _first(params, "MessagingServiceSid") or None
        body = _first(params, "Body") or ""
        media = params.get("MediaUrl", [])
        whatsapp = to.startswith("whatsapp:")
        sid = ("MM" if media else "SM") + secrets.token_hex(16)
        now = datetime.now(UTC)
        stamp = _stamp(now)
        segments = 1 if whatsapp or media else num_segments(body)
        # Without a From, a Messaging Service accepts first and picks a sender later.
        pooled = sender is None
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"
        data: dict[str, Any] = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": str(len(media)),
            "num_segments": "0" if pooled else str(segments),
            "price": None,
            "price_unit": None,
            "sid": sid,
            "status": "accepted" if pooled else "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": uri,
        }
        with self._lock:
            outcome, error_code = self._outcomes.get(to, ("delivered", None))
            steps = {
                "delivered": ("sent", "delivered"),
                "undelivered": ("sent", "undelivered"),
                "failed": ("failed",),
                "read": ("sent", "delivered", "read"),
                "sent": ("sent",),
                "queued": (),
            }[outcome]
            if pooled:
                steps = ("queued", *steps)
            if self._reversed:
                steps = steps[::-1]
            message = _Message(
                seq=len(self._ordered),
                sid=sid,
                account_sid=account_sid,
                status_callback=_first(params, "StatusCallback") or None,
                messaging_service_sid=service,
                segments=segments,
                whatsapp=whatsapp,
                steps=steps,
                error_code=error_code,
                generation=self._generation,
                data=data,
            )
            self._ordered.append(message)
            self._store[sid] = message
            self.messages[sid] = data
            self._created += 1
        return message

    def _message_for(self, request: Request) -> _Message | None:
        message = self._store.get(request.path_params["sid"])
        if message is None or message.deleted:
            return None
        return message if message.account_sid == request.path_params["account_sid"] else None

    async def _fetch(self, request: Request) -> Response:
        denied = self._authenticate(request, request.path_params["account_sid"])
        if denied is not None:
            return denied
        with self._lock:
            self.fetches.append(request.path_params["sid"])
        message = self._message_for(request)
        if message is None:
            return _not_found(request.url.path)
        return JSONResponse(message.data)

    async def _update(self, request: Request) -> Response:
        denied = self._authenticate(request, request.path_params["account_sid"])
        if denied is not None:
            return denied
        message = self._message_for(request)
        if message is None:
            return _not_found(request.url.path)
        params = _parse_form(request.headers.get("content-type", ""), await request.body())
        status = _first(params, "Status")
        if status is not None:
            # Only a scheduled message can be canceled, and this fake never schedules.
            if status == "canceled":
                return _error(400, 30409, "Message cannot be canceled")
            return _error(400, 20001, f"Invalid Status: {status}")
        body = _first(params, "Body")
        if body is not None:
            if body:
                return _error(400, 20001, "Body can only be redacted (set to an empty string)")
            self._replace_data(message, {**message.data, "body": ""})
        return JSONResponse(message.data)

    async def _delete(self, request: Request) -> Response:
        denied = self._authenticate(request, request.path_params["account_sid"])
        if denied is not None:
            return denied
        message = self._message_for(request)
        if message is None:
            return _not_found(request.url.path)
        with self._lock:
            message.deleted = True
            self._store.pop(message.sid, None)
            self.messages.pop(message.sid, None)
        return Response(status_code=204)

    async def _list(self, request: Request) -> Response:
        account_sid: str = request.path_params["account_sid"]
        denied = self._authenticate(request, account_sid)
        if denied is not None:
            return denied
        query = parse_qs(request.url.query, keep_blank_values=True)
        with self._lock:
            self.lists.append(query)
        filters = [
            (key, query[key][0])
            for key in ("To", "From", "DateSent", "DateSent<", "DateSent>")
            if key in query
        ]
        wanted = dict(filters)
        try:
            on = _parse_day(wanted.get("DateSent"))
            not_after = _parse_day(wanted.get("DateSent<"))
            not_before = _parse_day(wanted.get("DateSent>"))
            page_size = min(max(int(_first(query, "PageSize") or 50), 1), 1000)
            page = max(int(_first(query, "Page") or 0), 0)
            token = _first(query, "PageToken")
            # The PageToken is the list position of the last message served, so messages
            # created (or sent) between two page fetches do not shift what the next page holds.
            after = _parse_page_token(token) if token else None
        except ValueError:
            return _error(400, 20001, "Invalid paging or DateSent parameter")

        with self._lock:  # sent_at changes as messages progress
            snapshot = sorted(self._ordered, key=_list_key, reverse=True)
        skip = 0 if after is not None else page * page_size
        items: list[_Message] = []
        more = False
        for message in snapshot:
            if (
                (after is not None and _list_key(message) >= after)
                or message.deleted
                or message.account_sid != account_sid
                or ("To" in wanted and message.data["to"] != wanted["To"])
                or ("From" in wanted and message.data["from"] != wanted["From"])
                or not _matches_date_sent(message.sent_at, on, not_before, not_after)
            ):
                continue
            if skip:
                skip -= 1
                continue
            if len(items) == page_size:
                more = True
                break
            items.append(message)

        base = f"/2010-04-01/Accounts/{account_sid}/Messages.json"

        def page_uri(extra: list[tuple[str, str]]) -> str:
            return f"{base}?{urlencode([*filters, ('PageSize', str(page_size)), *extra])}"

        current = [("Page", str(page))] + ([("PageToken", token)] if token else [])
        start = page * page_size
        return JSONResponse(
            {
                "end": start + len(items) - 1 if items else start,
                "first_page_uri": page_uri([("Page", "0")]),
                "messages": [message.data for message in items],
                "next_page_uri": (
                    page_uri(
                        [("Page", str(page + 1)), ("PageToken", _page_token(_list_key(items[-1])))]
                    )
                    if more
                    else None
                ),
                "page": page,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": start,
                "uri": page_uri(current),
            }
        )

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.stats())

    async def _times(self, request: Request) -> Response:
        """Wall-clock time of every accepted create, for benchmarks that measure lateness."""
        with self._lock:
            times = [r.wall for r in self.requests if r.response_status == 201]
        return JSONResponse(times)

    # -- status progression and callbacks ----------------------------------------------------

    async def _launch(self, message: _Message) -> None:
        running = self._running
        if running is None:
            return
        # Spawned rather than awaited so the request cycle ends now and stop() can cancel it.
        task = asyncio.create_task(self._progress(message, running))
        running.tasks.add(task)
        task.add_done_callback(running.tasks.discard)

    async def _progress(self, message: _Message, running: _Running) -> None:
        url = message.status_callback if self.send_callbacks else None
        for status in message.steps:
            if self.callback_delay > 0:
                await asyncio.sleep(self.callback_delay)
            self._advance(message, status)
            if url is not None:
                await self._send_callback(message, status, url, running)

    def _replace_data(self, message: _Message, data: dict[str, Any]) -> None:
        # Copy-on-write: a reader in the test thread never sees a half-updated message.
        with self._lock:
            message.data = data
            if message.generation == self._generation and not message.deleted:
                self.messages[message.sid] = data

    def _advance(self, message: _Message, status: str) -> None:
        if _RANK[status] <= _RANK[message.data["status"]]:
            return
        now = datetime.now(UTC)
        stamp = _stamp(now)
        data = {**message.data, "status": status, "date_updated": stamp}
        if data["from"] is None:
            data["from"] = _POOL_SENDER
            data["num_segments"] = str(message.segments)
        if status in ("sent", "delivered", "undelivered"):
            if data["date_sent"] is None:
                data["date_sent"] = stamp
                with self._lock:
                    message.sent_at = now
            if self._priced:
                data["price"] = f"-{message.segments * _PRICE_PER_SEGMENT:.5f}"
                data["price_unit"] = "USD"
        if status in ("failed", "undelivered"):
            code = message.error_code or _DEFAULT_ERROR[status]
            data["error_code"] = code
            data["error_message"] = _ASYNC_ERRORS.get(code, "Unknown error")
        self._replace_data(message, data)

    def _callback_params(self, message: _Message, status: str) -> dict[str, str]:
        data = message.data
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": message.account_sid,
            "From": data["from"] or _POOL_SENDER,
            "To": data["to"],
            "ApiVersion": API_VERSION,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if status in ("failed", "undelivered"):
            code = message.error_code or _DEFAULT_ERROR[status]
            params["ErrorCode"] = str(code)
            params["ErrorMessage"] = _ASYNC_ERRORS.get(code, "Unknown error")
        if status in ("delivered", "undelivered") and not message.whatsapp:
            params["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
        if message.whatsapp:
            params["ChannelPrefix"] = "whatsapp"
            if status == "read":
                params["EventType"] = "READ"
        return params

    async def _send_callback(
        self, message: _Message, status: str, url: str, running: _Running
    ) -> None:
        # Twilio neither sends nor signs the fragment (it only carries connection overrides).
        url, _, fragment = url.partition("#")
        params = self._callback_params(message, status)
        signature = twilio_signature(url, params, self._accounts[message.account_sid])
        parts = _loopback_parts(url)
        if parts is None:
            self._record_callback(message, url, params, signature, None, 0, "not a loopback URL")
            return
        client = running.client
        assert client is not None
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        content = urlencode(params).encode()
        status_code: int | None = None
        error: str | None = None
        attempts = 0
        retries, policy = _connection_overrides(fragment)
        while True:
            attempts += 1
            status_code, error = None, None
            try:
                status_code = await client.post(parts, content, headers)
            except _ConnectFailed as exc:
                error, failure = f"connect failed: {exc}", "ct"
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                error, failure = f"{type(exc).__name__}: {exc}", "rt"
            else:
                failure = f"{status_code // 100}xx" if status_code >= 400 else ""
            if not failure or attempts > retries or not ({failure, "all"} & policy):
                break
        self._record_callback(message, url, params, signature, status_code, attempts, error)

    def _record_callback(
        self,
        message: _Message,
        url: str,
        params: dict[str, str],
        signature: str,
        status_code: int | None,
        attempts: int,
        error: str | None,
    ) -> None:
        record = CallbackRecord(
            url=url,
            params=params,
            status_code=status_code,
            at=time.monotonic(),
            signature=signature,
            attempts=attempts,
            error=error,
        )
        with self._callbacks_changed:
            if message.generation != self._generation:
                return
            if status_code is not None:
                self.callbacks_sent.append(record)
            if status_code is None or not 200 <= status_code < 300:
                self.callbacks_failed.append(record)
            self._callbacks_changed.notify_all()


def _parse_accounts(values: Sequence[str]) -> dict[str, str]:
    accounts: dict[str, str] = {}
    for value in values:
        for pair in filter(None, value.split(",")):
            sid, sep, token = pair.partition(":")
            if not sep or not sid or not token:
                raise ValueError(pair)
            accounts[sid] = token
    return accounts


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a fake Twilio until SIGTERM/SIGINT, after printing `READY <base_url>`."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.twilio", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--accounts",
        action="append",
        default=[],
        metavar="SID:TOKEN[,SID:TOKEN]",
        help=f"repeatable; default {DEFAULT_ACCOUNT_SID}:{DEFAULT_AUTH_TOKEN}",
    )
    parser.add_argument("--callback-delay", type=float, default=0.0)
    parser.add_argument("--no-callbacks", action="store_true")
    args = parser.parse_args(argv)
    try:
        accounts = _parse_accounts(args.accounts)
    except ValueError as exc:
        parser.error(f"--accounts expects SID:TOKEN, got {exc}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    fake = FakeTwilio(
        accounts=accounts or None,
        callback_delay=args.callback_delay,
        send_callbacks=not args.no_callbacks,
        host=args.host,
        port=args.port,
    )
    # Blocked before the server thread exists, so only sigwait below ever sees them.
    handled = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    fake.start()
    print(f"READY {fake.base_url}", flush=True)
    signal.sigwait(handled)
    fake.stop()


if __name__ == "__main__":
    main()
