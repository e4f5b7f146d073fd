"""A worker process killed mid-batch loses nothing and sends nothing twice."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from herald.config import Settings
from tests.e2e.helpers import FINAL, add_twilio_sender
from tests.fakes.twilio import FakeTwilio
from tests.servers import LOOPBACK_HOSTS, running_herald

HERALD = str(Path(sys.executable).parent / "herald")
TOTAL = 500


def start_worker(settings: Settings, public_url: str, tmp: Path, n: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_SECRET_KEY": settings.secret_key or "",
        "HERALD_PUBLIC_URL": public_url,
        "HERALD_ALLOWED_PRIVATE_HOSTS": LOOPBACK_HOSTS,
        # A short lease so the next worker takes over quickly; small batches so the kill
        # lands in the middle of one.
        "HERALD_LEASE_SECONDS": "2",
        "HERALD_RECONCILE_DELAY_SECONDS": "0.5",
        "HERALD_DISPATCH_BATCH_SIZE": "40",
        "HERALD_DISPATCH_CONCURRENCY": "8",
    }
    with (tmp / f"worker{n}.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([HERALD, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)


async def final_count(client: httpx.AsyncClient) -> int:
    response = await client.get(
        "/api/v1/messages", params={"status": ",".join(sorted(FINAL)), "limit": 1}
    )
    total: int = response.json()["count"]
    return total


async def test_sigkill_mid_batch_then_new_worker(settings: Settings, tmp_path: Path) -> None:
    with FakeTwilio() as fake:
        async with running_herald(settings, run_workers=False) as herald, herald.client() as client:
            await add_twilio_sender(client, fake)
            for start in range(0, TOTAL, 100):
                response = await client.post(
                    "/api/v1/messages",
                    json={
                        "messages": [
                            {
                                "destinations": [{"phone": f"+1415555{i:04d}"}],
                                "channels": {"sms": {"text": f"message {i}"}},
                            }
                            for i in range(start, start + 100)
                        ]
                    },
                )
                assert response.status_code == 201

            first = start_worker(settings, herald.url, tmp_path, 1)
            try:
                async with asyncio.timeout(60):
                    while len(fake.requests) < 120:
                        assert first.poll() is None, (tmp_path / "worker1.log").read_text()
                        await asyncio.sleep(0.005)
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait()
            killed_at = len(fake.requests)
            assert killed_at < TOTAL, "the worker finished before it could be killed"

            second = start_worker(settings, herald.url, tmp_path, 2)
            try:
                async with asyncio.timeout(90):
                    while await final_count(client) < TOTAL:
                        assert second.poll() is None, (tmp_path / "worker2.log").read_text()
                        await asyncio.sleep(0.2)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=20)

            delivered = (
                await client.get("/api/v1/messages", params={"status": "delivered", "limit": 1})
            ).json()
    assert delivered["count"] == TOTAL
    per_message = collections.Counter(r.params["Body"][0] for r in fake.requests)
    assert len(per_message) == TOTAL
    assert max(per_message.values()) == 1, per_message.most_common(3)
