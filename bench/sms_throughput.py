"""End-to-end SMS throughput: API accepted → dispatcher → fake Twilio → callbacks → delivered.

Starts the fake Twilio and `herald serve` as separate processes on 127.0.0.1, measures the
fake's own ceiling first (creates/s straight from an HTTP client, same run, same machine),
then sends N messages through Herald and reports messages/second until all are delivered.

    .venv/bin/python bench/sms_throughput.py [--messages 20000] [--database-url URL] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    LOOPBACK_HOSTS,
    add_fake_twilio_sender,
    cpu_seconds,
    create_project,
    free_port,
    herald_env,
    post_messages,
    start_fake_twilio,
    start_herald,
    start_workers,
    stop,
)
from herald.channels.http import provider_http_client
from herald.domain.urls import policy_of

BATCH = 500  # messages per API request, as a bulk sender would post them


async def fake_ceiling(base: str, n: int, concurrency: int = 64) -> float:
    """Creates/s the fake sustains from the client Herald itself uses (no callbacks)."""
    url = f"{base}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    async with provider_http_client(
        timeout=30, max_connections=concurrency, urls=policy_of(LOOPBACK_HOSTS.split(","))
    ) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                form = {"To": "+14155550100", "From": "+15005550006", "Body": f"ceiling {i}"}
                answer = await client.post_form(url, form, auth=(ACCOUNT_SID, AUTH_TOKEN))
                assert answer.status_code == 201, answer.content

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - start)


async def through_herald(url: str, api_key: str, fake: str | None, n: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        if fake:
            await add_fake_twilio_sender(client, fake)
        start = time.perf_counter()
        await post_messages(client, n, batch=BATCH, concurrency=4, text="Benchmark message")
        accepted = time.perf_counter() - start
        delivered = 0
        deadline = time.monotonic() + max(120.0, n / 50)
        while delivered < n and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            page = (
                await client.get("/api/v1/messages", params={"status": "delivered", "limit": 1})
            ).json()
            delivered = page["count"]
        total = time.perf_counter() - start
        return {
            "accepted_s": accepted,
            "total_s": total,
            "delivered": delivered,
            "accept_rate": n / accepted,
            "e2e_rate": delivered / total,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="send through the in-process sandbox instead of the fake Twilio "
        "(measures Herald without any provider HTTP)",
    )
    parser.add_argument(
        "--database-url", default=None, help="default: a fresh SQLite file in a temporary directory"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="separate `herald worker` processes (default: the dispatcher inside `herald serve`)",
    )
    args = parser.parse_args()
    fake_proc, fake = start_fake_twilio()
    try:
        ceiling = asyncio.run(fake_ceiling(fake, min(args.messages, 5000)))
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            port = free_port()
            env = herald_env(workdir, port, args.database_url)
            api_key = create_project(workdir, env)
            if args.workers:
                env["HERALD_RUN_DISPATCHER"] = "false"
            herald = start_herald(workdir, env, port)
            workers = start_workers(workdir, env, args.workers)
            pids = [herald.pid, *(w.pid for w in workers)]
            cpu_before = cpu_seconds(pids)
            serve_before = cpu_seconds([herald.pid])
            fake_before = cpu_seconds([fake_proc.pid])
            try:
                result = asyncio.run(
                    through_herald(
                        f"http://127.0.0.1:{port}",
                        api_key,
                        None if args.sandbox else fake,
                        args.messages,
                    )
                )
                cpu_after = cpu_seconds(pids)
                serve_after = cpu_seconds([herald.pid])
                fake_after = cpu_seconds([fake_proc.pid])
            finally:
                for worker in workers:
                    stop(worker)
                stop(herald)
    finally:
        stop(fake_proc)
    where = f"{args.workers} worker process(es)" if args.workers else "in-process dispatcher"
    print(f"dispatch: {where}")
    print(f"fake Twilio ceiling (Herald's HTTP client, 64 connections): {ceiling:,.0f} creates/s")
    print(
        f"Herald accepted {args.messages:,} messages in {result['accepted_s']:.2f} s "
        f"({result['accept_rate']:,.0f}/s)"
    )
    print(
        f"Herald end to end (accepted → delivered): {int(result['delivered']):,} delivered in "
        f"{result['total_s']:.2f} s = {result['e2e_rate']:,.0f} messages/s"
    )
    print_cpu("Herald CPU (all its processes)", cpu_before, cpu_after, args.messages)
    if args.workers:
        # Which side saturates first: serve (accepting, status callbacks) or the workers.
        print_cpu("  of which herald serve", serve_before, serve_after, args.messages)
    if not args.sandbox:
        # The fake shares the machine: its CPU per message bounds what Herald can reach.
        print_cpu(
            "fake Twilio CPU (creates and both status callbacks)",
            fake_before,
            fake_after,
            args.messages,
        )
        spent = [
            (after - before) / args.messages
            for before, after in ((cpu_before, cpu_after), (fake_before, fake_after))
            if before is not None and after is not None
        ]
        if len(spent) == 2 and sum(spent) > 0:
            cores = os.cpu_count() or 1
            print(
                f"CPU bound on this machine: {cores} core(s) / ({1000 * spent[0]:.2f} + "
                f"{1000 * spent[1]:.2f} ms per message) = {cores / sum(spent):,.0f} messages/s "
                "at most, with every core busy"
            )


def print_cpu(label: str, before: float | None, after: float | None, messages: int) -> None:
    if before is not None and after is not None:
        spent = after - before
        print(f"{label}: {spent:.1f} s = {1000 * spent / messages:.2f} ms per message")


if __name__ == "__main__":
    main()
