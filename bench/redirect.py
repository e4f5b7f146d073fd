"""Requests/s of the short-link redirect (``GET /{code}`` → 302, click recorded).

    .venv/bin/python bench/redirect.py [--links 10000] [--seconds 10] [--connections 32]
                                       [--database-url postgresql+asyncpg://...]

Seeds a fresh database (SQLite file by default) with N short links, starts ``herald serve
--no-workers`` on 127.0.0.1, and loads it with ``wrk`` (random codes from a Lua script) when
wrk is installed, else with a bounded httpx loop. Every request is a real click: one UPDATE of
the link's counters and one INSERT of the click, committed before the 302 goes out. At the
end the clicks stored in the database are checked against the requests answered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from herald.bootstrap import build
from herald.config import Settings
from herald.domain.links import new_code
from herald.services.projects import create_project
from herald.services.short_links import LinkBatch, PlannedLink, save_short_links_many
from herald.store.migrate import upgrade
from herald.store.short_links import LinkClick, ShortLink

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def seed(settings: Settings, links: int) -> list[str]:
    herald = build(settings)
    codes: list[str] = []
    try:
        async with herald.sessions() as session, session.begin():
            project = await create_project(session, herald.vault, "bench")
        for first in range(0, links, 1000):
            batch = [
                LinkBatch(
                    f"bench-message-{i}",
                    None,
                    [PlannedLink(new_code(), f"https://shop.example.com/orders/{i}?utm=sms")],
                )
                for i in range(first, min(links, first + 1000))
            ]
            async with herald.sessions() as session, session.begin():
                renamed = await save_short_links_many(
                    session, project.project_id, batch, now=herald.clock.now(), retention=None
                )
            codes += [renamed.get(b.links[0].code, b.links[0].code) for b in batch]
    finally:
        await herald.aclose()
    return codes


async def stored_clicks(settings: Settings) -> tuple[int, int]:
    herald = build(settings)
    try:
        async with herald.sessions() as session:
            rows = await session.scalar(select(func.count()).select_from(LinkClick))
            counters = await session.scalar(select(func.sum(ShortLink.clicks)))
    finally:
        await herald.aclose()
    return rows or 0, counters or 0


def start_herald(workdir: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    log = (workdir / "herald.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "herald"), "serve", "--port", str(port), "--no-workers"],
        cwd=workdir,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"herald exited: {(workdir / 'herald.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("herald did not start within 60 s")


LUA = """
local codes = {%s}
request = function()
  return wrk.format("GET", "/" .. codes[math.random(#codes)])
end
"""


def run_wrk(url: str, codes: list[str], seconds: int, connections: int, workdir: Path) -> int:
    script = workdir / "codes.lua"
    sample = random.sample(codes, min(len(codes), 5000))
    script.write_text(LUA % ",".join(f'"{c}"' for c in sample))
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            "User-Agent: herald-bench",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    print(result.stdout)
    if "Non-2xx or 3xx" in result.stdout:
        raise RuntimeError("some redirects failed; see wrk's output above")
    done = re.search(r"(\d+) requests in", result.stdout)
    return int(done.group(1)) if done else 0


async def run_httpx(url: str, codes: list[str], seconds: int, connections: int) -> int:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                response = await client.get(f"/{random.choice(codes)}")
                assert response.status_code == 302, response.text
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    print(
        f"httpx load loop ({connections} connections, {seconds} s; wrk not installed): "
        f"{len(latencies) / elapsed:,.0f} requests/s, latency p50 "
        f"{latencies[len(latencies) // 2] * 1000:.1f} ms, p99 "
        f"{latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms"
    )
    return len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'herald.db'}"
        env = {
            "HERALD_DATABASE_URL": url,
            "HERALD_SECRET_KEY": Fernet.generate_key().decode(),
            "HERALD_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "HERALD_ALLOWED_PRIVATE_HOSTS": "127.0.0.1,::1,localhost",
        }
        settings = Settings(
            database_url=url,
            secret_key=env["HERALD_SECRET_KEY"],
            public_url=env["HERALD_PUBLIC_URL"],
        )
        upgrade(url)
        started = time.perf_counter()
        codes = asyncio.run(seed(settings, args.links))
        print(f"seeded {len(codes):,} short links in {time.perf_counter() - started:.1f} s ({url})")
        herald = start_herald(workdir, env, port)
        try:
            target = f"http://127.0.0.1:{port}"
            if shutil.which("wrk"):
                done = run_wrk(target, codes, args.seconds, args.connections, workdir)
            else:
                done = asyncio.run(run_httpx(target, codes, args.seconds, args.connections))
        finally:
            herald.terminate()
            herald.wait(timeout=30)
        rows, counters = asyncio.run(stored_clicks(settings))
        print(
            f"clicks stored: {rows:,} rows, counters sum {counters:,} "
            f"(requests completed by the load generator: {done:,})"
        )


if __name__ == "__main__":
    main()
