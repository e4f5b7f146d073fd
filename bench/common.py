"""Shared pieces of the benchmarks: starting real processes and waiting for them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-token"
# The fake providers listen on loopback, which Herald refuses as a tenant target unless named.
LOOPBACK_HOSTS = "127.0.0.1,::1,localhost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_fake_twilio() -> tuple[subprocess.Popen[str], str]:
    """The fake Twilio in its own process, so its CPU is not Herald's."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.twilio",
            "--port",
            "0",
            "--accounts",
            f"{ACCOUNT_SID}:{AUTH_TOKEN}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"fake Twilio did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def herald_env(workdir: Path, port: int, database_url: str | None, **extra: str) -> dict[str, str]:
    """The settings a benchmark's Herald runs with: its database (SQLite in `workdir` unless
    given), its public URL on `port`, and `extra` (`HERALD_*` names)."""
    return {
        "HERALD_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{workdir / 'herald.db'}",
        "HERALD_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **extra,
    }


def create_project(workdir: Path, env: dict[str, str], *, inherit_env: bool = False) -> str:
    """Create the "bench" project with the CLI; its API key.

    Without `inherit_env` the CLI sees only `env` (and no PATH), as a clean deployment would.
    """
    created = subprocess.run(
        [str(BIN / "herald"), "projects", "create", "bench", "--json"],
        cwd=workdir,
        env={**os.environ, **env} if inherit_env else {**env, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    api_key: str = json.loads(created.stdout)["apiKey"]
    return api_key


def start_herald(workdir: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    with (workdir / "herald.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "herald"), "serve", "--port", str(port)],
            cwd=workdir,
            env={**os.environ, "HERALD_ALLOWED_PRIVATE_HOSTS": LOOPBACK_HOSTS, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((workdir / "herald.log").read_text()) from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("Herald did not start within 60 s")


def start_workers(workdir: Path, env: dict[str, str], n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` separate ``herald worker`` processes (the API should run without its own)."""
    workers = []
    for i in range(n):
        with (workdir / f"worker{i}.log").open("wb") as log:
            workers.append(
                subprocess.Popen(
                    [str(BIN / "herald"), "worker"],
                    cwd=workdir,
                    env={**os.environ, "HERALD_ALLOWED_PRIVATE_HOSTS": LOOPBACK_HOSTS, **env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return workers


def cpu_seconds(pids: list[int]) -> float | None:
    """User plus system CPU these processes have used so far (Linux /proc; None elsewhere)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def add_fake_twilio_sender(client: httpx.AsyncClient, fake_url: str) -> None:
    """Register the fake Twilio as the project's SMS sender."""
    response = await client.post(
        "/api/v1/senders",
        json={
            "channel": "sms",
            "provider": "twilio",
            "from": "+15005550006",
            "accountSid": ACCOUNT_SID,
            "authToken": AUTH_TOKEN,
            "baseUrl": fake_url,
        },
    )
    response.raise_for_status()


async def post_messages(
    client: httpx.AsyncClient,
    n: int,
    *,
    batch: int,
    concurrency: int,
    text: str,
    **message: Any,
) -> None:
    """Send ``n`` SMS through the API in batches, as a bulk sender would post them."""
    semaphore = asyncio.Semaphore(concurrency)

    async def post(first: int) -> None:
        async with semaphore:
            body = {
                "messages": [
                    {
                        "destinations": [{"phone": f"+1415555{i % 10000:04d}"}],
                        "channels": {"sms": {"text": f"{text} {i}"}},
                        **message,
                    }
                    for i in range(first, min(n, first + batch))
                ]
            }
            (await client.post("/api/v1/messages", json=body)).raise_for_status()

    await asyncio.gather(*(post(first) for first in range(0, n, batch)))
