"""The fake Twilio's callback sender: signed status callbacks, many at once, retried as Twilio does.

A plain-asyncio HTTP/1.1 client rather than httpx (see `_CallbackClient`), and Twilio's
connection overrides (``#rc=..&rp=..`` on the callback URL) for retries.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit

from tests.fakes.twilio.state import CallbackRecord, StoredMessage
from tests.fakes.twilio.wire import (
    API_VERSION,
    ASYNC_ERRORS,
    CONNECT_TIMEOUT,
    DEFAULT_ERROR,
    POOL_SENDER,
    READ_TIMEOUT,
    twilio_signature,
)

# Status callbacks in flight at once. Twilio sends them from a fleet, so a bulk send meets
# many at a time; at 64 the fake, not Herald, set the pace in the SMS benchmark (Herald
# applies callbacks in batches, and small batches cost it ~20% more CPU per message).
_CALLBACK_CONCURRENCY: Final = 256
_MAX_RESPONSE_BYTES: Final = 1 << 20
# Printable ASCII stays as given in a request target; anything else is percent-encoded.
_TARGET_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F))
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


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
                        _read_response(reader), READ_TIMEOUT
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
                asyncio.open_connection(host, port, ssl=context), CONNECT_TIMEOUT
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


def _loopback_parts(url: str) -> SplitResult | None:
    """The parts of ``url`` if it is an http(s) URL on this machine, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK_HOSTS:
        return parts
    return None


def callback_params(message: StoredMessage, status: str) -> dict[str, str]:
    """The form Twilio posts to a message's StatusCallback when it reaches `status`."""
    data = message.data
    params = {
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": message.account_sid,
        "From": data["from"] or POOL_SENDER,
        "To": data["to"],
        "ApiVersion": API_VERSION,
    }
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if status in ("failed", "undelivered"):
        code = message.error_code or DEFAULT_ERROR[status]
        params["ErrorCode"] = str(code)
        params["ErrorMessage"] = ASYNC_ERRORS.get(code, "Unknown error")
    if status in ("delivered", "undelivered") and not message.whatsapp:
        params["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
    if message.whatsapp:
        params["ChannelPrefix"] = "whatsapp"
        if status == "read":
            params["EventType"] = "READ"
    return params


def _record(
    url: str,
    params: dict[str, str],
    signature: str,
    status_code: int | None,
    attempts: int,
    error: str | None,
) -> CallbackRecord:
    return CallbackRecord(
        url=url,
        params=params,
        status_code=status_code,
        at=time.monotonic(),
        signature=signature,
        attempts=attempts,
        error=error,
    )


class CallbackSender:
    """Delivers status callbacks and runs the progressions that send them.

    It lives on the server's event loop: the server thread calls `open()` on startup and
    `close()` on shutdown, and `spawn()`, `cancel_all()` and `deliver()` run there too.
    """

    def __init__(self, concurrency: int = _CALLBACK_CONCURRENCY) -> None:
        self._concurrency = concurrency
        self._client: _CallbackClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Open the keep-alive client."""
        self._client = _CallbackClient(self._concurrency)

    async def close(self) -> None:
        """Cancel what is in flight, then close the client."""
        await self.cancel_all()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def spawn(self, progression: Coroutine[Any, Any, None]) -> None:
        """Run `progression` as a task that `cancel_all()` and `close()` cancel."""
        if self._client is None:  # the server is stopping
            progression.close()
            return
        task = asyncio.create_task(progression)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_all(self) -> None:
        """Cancel every progression in flight and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def deliver(self, url: str, params: dict[str, str], auth_token: str) -> CallbackRecord:
        """POST one signed callback to `url`, retried as its fragment says; return the outcome."""
        # Twilio neither sends nor signs the fragment (it only carries connection overrides).
        url, _, fragment = url.partition("#")
        signature = twilio_signature(url, params, auth_token)
        parts = _loopback_parts(url)
        if parts is None:
            return _record(url, params, signature, None, 0, "not a loopback URL")
        client = self._client
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
        return _record(url, params, signature, status_code, attempts, error)
