"""The one way a fake provider runs: an ASGI app under uvicorn on a background thread.

Every HTTP fake (Twilio, Telegram, Meta WhatsApp) serves through `ServerThread`; every fake,
the SMTP one included, gets its with-statement from `ThreadedFake` and its standalone mode
(``python -m tests.fakes.<name>``, used by the benchmarks) from `serve_until_signal`.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Literal, Protocol, Self, TypeVar

import uvicorn
from starlette.types import ASGIApp

T = TypeVar("T")


class _Counted(Protocol):
    remaining: int


C = TypeVar("C", bound=_Counted)


def take_next(queue: deque[C], lock: threading.Lock) -> C | None:
    """One use of the oldest queued fault (`fail_next` and kin), dropped once used up."""
    with lock:
        if not queue:
            return None
        item = queue[0]
        item.remaining -= 1
        if item.remaining <= 0:
            queue.popleft()
        return item


class _Server(uvicorn.Server):
    """A uvicorn server that reports when its socket accepts connections."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then tell the waiting thread."""
        await super().startup(sockets=sockets)
        self._ready.set()


class ServerThread:
    """An ASGI app under uvicorn on a background thread, on a socket bound before start.

    `startup`/`shutdown` run inside the server's event loop (to open and close clients that
    live there). `loop="auto"` takes uvloop when installed, which the fake Twilio needs to
    keep up with the SMS benchmark; the other fakes keep plain asyncio.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        startup: Callable[[], Awaitable[None]] | None = None,
        shutdown: Callable[[], Awaitable[None]] | None = None,
        loop: Literal["asyncio", "auto"] = "asyncio",
        backlog: int = 2048,
        timeout_keep_alive: int = 5,
    ) -> None:
        self._app = app
        self._name = name
        self._host = host
        self._port = port
        self._startup = startup
        self._shutdown = shutdown
        self._loop_kind = loop
        self._backlog = backlog
        self._timeout_keep_alive = timeout_keep_alive
        self.base_url = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Serve; returns once the socket accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Lets stop() then start() rebind the same port while old connections sit in
            # TIME_WAIT, which is how tests simulate a provider going away and coming back.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        netloc = f"[{self._host}]" if family == socket.AF_INET6 else self._host
        self.base_url = f"http://{netloc}:{self._port}"
        config = uvicorn.Config(
            self._app,
            loop=self._loop_kind,
            lifespan="off",
            ws="none",
            # uvicorn cannot tell a bound coroutine method from an ASGI2 factory.
            interface="asgi3",
            access_log=False,
            log_level="warning",
            # Leave the host process's logging alone; uvicorn's errors still reach the root.
            log_config=None,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=self._timeout_keep_alive,
            timeout_graceful_shutdown=2,
            backlog=self._backlog,
        )
        ready = threading.Event()
        server = _Server(config, ready)
        thread = threading.Thread(
            target=self._run, args=(server, sock, ready), name=self._name, daemon=True
        )
        self._server, self._thread, self._error = server, thread, None
        thread.start()
        if not ready.wait(10) or self._error is not None or not server.started:
            server.should_exit = True
            thread.join(5)
            self._thread = self._server = None
            raise RuntimeError(f"{self._name} failed to start") from self._error

    def _run(self, server: _Server, sock: socket.socket, ready: threading.Event) -> None:
        try:
            loop_factory = server.config.get_loop_factory()
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(self._serve(server, sock))
        except BaseException as exc:  # surfaced by start()/stop() instead of dying unseen
            self._error = exc
        finally:
            sock.close()
            ready.set()

    async def _serve(self, server: _Server, sock: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        if self._startup is not None:
            await self._startup()
        try:
            await server.serve(sockets=[sock])
        finally:
            if self._shutdown is not None:
                await self._shutdown()
            self.loop = None

    def call(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run `coroutine` on the server's loop (from any other thread)."""
        loop = self.loop
        if loop is None:
            coroutine.close()
            raise RuntimeError(f"{self._name} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(10)
        self._server = self._thread = None
        if thread.is_alive():
            raise RuntimeError(f"{self._name} did not stop within 10 s")
        if self._error is not None:
            raise RuntimeError(f"{self._name}'s server thread failed") from self._error


class ThreadedFake:
    """A fake that serves on a background thread between `start()` and `stop()`."""

    def start(self) -> None:
        """Serve on a background thread; returns once connections are accepted."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving; records and knobs are kept."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class HttpFake(ThreadedFake):
    """A fake whose HTTP server is a `ServerThread` (set as `_server` by the subclass)."""

    _server: ServerThread

    def start(self) -> None:
        """Serve on a background thread; returns once the socket accepts connections."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving; work in flight is dropped, records and knobs are kept."""
        self._server.stop()


class _Standalone(Protocol):
    @property
    def base_url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def serve_until_signal(fake: _Standalone) -> None:
    """Serve `fake` until SIGTERM/SIGINT, after printing `READY <base_url>` for the parent."""
    # Blocked before the server thread exists, so only sigwait below ever sees them.
    handled = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    fake.start()
    print(f"READY {fake.base_url}", flush=True)
    signal.sigwait(handled)
    fake.stop()
