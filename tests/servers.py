"""Real servers for tests: Herald itself and webhook receivers, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald.api.app import create_app
from herald.bootstrap import Herald, build
from herald.config import Settings
from herald.domain.urls import policy_of
from herald.services.projects import CreatedProject, create_project


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Every fake and receiver listens on loopback, which Herald refuses as a tenant target unless
# named here; everything else private stays refused in tests too.
LOOPBACK_HOSTS = "127.0.0.1,::1,localhost"
LOOPBACK_POLICY = policy_of(LOOPBACK_HOSTS.split(","))


def make_settings(database_url: str, secret_key: str, **overrides: object) -> Settings:
    """Settings for a test: fast retries and polling, everything else as in production."""
    values: dict[str, object] = {
        "database_url": database_url,
        "secret_key": secret_key,
        "public_url": "http://127.0.0.1:1",
        "allowed_private_hosts": LOOPBACK_HOSTS,
        "dispatch_idle_sleep": 0.02,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "lease_seconds": 30.0,
        "price_fetch_delay_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def _serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError("server did not start")
    return server, task


@dataclass
class RunningHerald:
    herald: Herald
    url: str
    project: CreatedProject

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        key = api_key or self.project.api_key
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    async def new_project(self, name: str = "other") -> CreatedProject:
        async with self.herald.sessions() as session, session.begin():
            return await create_project(session, self.herald.vault, name)


@contextlib.asynccontextmanager
async def running_herald(
    settings: Settings, *, run_workers: bool = True, **build_kwargs: Any
) -> AsyncIterator[RunningHerald]:
    """Herald's real ASGI app under uvicorn on a free port, public URL pointing at it."""
    port = free_port()
    settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    herald = build(settings, **build_kwargs)
    async with herald.sessions() as session, session.begin():
        project = await create_project(session, herald.vault, "test")
    server, task = await _serve(create_app(herald, run_workers=run_workers), port)
    try:
        yield RunningHerald(herald, f"http://127.0.0.1:{port}", project)
    finally:
        server.should_exit = True
        await task
        await herald.aclose()


@dataclass
class ReceivedCallback:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    url: str
    received: list[ReceivedCallback] = field(default_factory=list)
    fail_first: int = 0
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[ReceivedCallback]:
        async with asyncio.timeout(timeout):
            while True:
                matching = [c for c in self.received if predicate(c.json)]
                if matching:
                    return matching
                self._event.clear()
                await self._event.wait()


@contextlib.asynccontextmanager
async def callback_receiver(fail_first: int = 0) -> AsyncIterator[CallbackReceiver]:
    """A client's webhook endpoint: records every POST; can refuse the first few with 500."""
    port = free_port()
    receiver = CallbackReceiver(url=f"http://127.0.0.1:{port}/hook", fail_first=fail_first)
    calls = 0

    async def hook(request: Request) -> Response:
        nonlocal calls
        calls += 1
        if calls <= receiver.fail_first:
            return Response("not now", status_code=500)
        receiver.received.append(ReceivedCallback(dict(request.headers), await request.body()))
        receiver._event.set()
        return Response("ok")

    server, task = await _serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), port)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task


@dataclass(frozen=True)
class Hit:
    """One POST a `ThreadedReceiver` got."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as text (form bodies are ASCII)."""
        return self.body.decode()


class ThreadedReceiver:
    """A plain HTTP server on its own thread standing in for Herald's webhook endpoints.

    For tests of the fakes, which run no event loop: it records every POST, and answers the
    next `failing` of them with a 503.
    """

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.failing = 0
        hits, receiver = self.hits, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                hits.append(Hit(self.path, dict(self.headers.items()), self.rfile.read(length)))
                failing, receiver.failing = receiver.failing > 0, max(0, receiver.failing - 1)
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
