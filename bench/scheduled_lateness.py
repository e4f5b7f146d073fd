"""Scheduled sending: N messages all due at the same sendAt; drain time and lateness.

Lateness is the time from sendAt to the provider call, as the fake Twilio (a separate
process) records it. Runs Herald on SQLite (dispatcher inside `herald serve`) or on
PostgreSQL with `--workers N` separate `herald worker` processes.

    .venv/bin/python bench/scheduled_lateness.py [--messages 100000] [--lead 90]
    .venv/bin/python bench/scheduled_lateness.py --workers 2 \
        --database-url postgresql+asyncpg://postgres@127.0.0.1/DB
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    add_fake_twilio_sender,
    create_project,
    free_port,
    herald_env,
    post_messages,
    start_fake_twilio,
    start_herald,
    start_workers,
    stop,
)

BATCH = 1000


async def enqueue(url: str, api_key: str, fake: str, n: int, send_at: datetime) -> float:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:
        await add_fake_twilio_sender(client, fake)
        start = time.perf_counter()
        await post_messages(
            client, n, batch=BATCH, concurrency=2, text="Scheduled", sendAt=send_at.isoformat()
        )
        return time.perf_counter() - start


async def wait_sent(fake: str, n: int, timeout: float) -> list[float]:
    async with httpx.AsyncClient(base_url=fake, timeout=60) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = (await client.get("/_fake/stats")).json()
            if stats["created"] >= n:
                break
            await asyncio.sleep(0.5)
        times: list[float] = (await client.get("/_fake/times")).json()
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument(
        "--lead",
        type=float,
        default=90.0,
        help="seconds from start to sendAt (enqueueing must finish first)",
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="separate `herald worker` processes (0: dispatcher inside serve)",
    )
    args = parser.parse_args()
    fake_proc, fake = start_fake_twilio()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            port = free_port()
            env = herald_env(
                workdir,
                port,
                args.database_url,
                HERALD_SECRET_KEY_FILE=str(workdir / "herald.key"),
            )
            api_key = create_project(workdir, env, inherit_env=True)
            if args.workers:
                env["HERALD_RUN_DISPATCHER"] = "false"
            herald = start_herald(workdir, env, port)
            workers = start_workers(workdir, env, args.workers)
            try:
                send_at = datetime.now(UTC) + timedelta(seconds=args.lead)
                took = asyncio.run(
                    enqueue(f"http://127.0.0.1:{port}", api_key, fake, args.messages, send_at)
                )
                if datetime.now(UTC) >= send_at:
                    raise SystemExit(f"enqueueing took {took:.0f} s, past sendAt: raise --lead")
                times = asyncio.run(wait_sent(fake, args.messages, args.lead + args.messages / 50))
            finally:
                for w in workers:
                    stop(w)
                stop(herald)
    finally:
        stop(fake_proc)
    due = send_at.timestamp()
    lateness = sorted(t - due for t in times)
    q = statistics.quantiles(lateness, n=100)
    print(
        f"{args.messages:,} messages due at one instant, enqueued in {took:.1f} s; "
        f"database {'PostgreSQL' if args.database_url else 'SQLite'}, "
        f"{args.workers or 'in-process'} worker(s)"
    )
    print(
        f"sent {len(times):,}; first provider call {lateness[0]:+.3f} s after sendAt; "
        f"drained {lateness[-1]:.1f} s after sendAt ({len(times) / lateness[-1]:,.0f}/s)"
    )
    print(f"lateness p50 {q[49]:.2f} s, p99 {q[98]:.2f} s (queueing behind the burst included)")


if __name__ == "__main__":
    main()
