"""Rate limits hold across worker processes; the fake Twilio (not the test) measures them."""

from __future__ import annotations

import asyncio
import bisect
import gc
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from herald.config import Settings
from tests.e2e.helpers import FINAL, add_twilio_sender
from tests.e2e.test_crash_safety import start_worker
from tests.fakes.twilio import FakeTwilio
from tests.servers import running_herald

# A send can leave a little after its exact slot on a busy machine, and the next one then
# leaves on time, so any window may hold a few more than rate * window.
SLACK = 3


@pytest.fixture(autouse=True)
def no_collector_pause() -> Iterator[None]:
    """The fake stamps each request in this process's thread: a full garbage collection of
    the suite's heap in the middle (half a second, late in a whole run) holds its requests
    back and stamps them together, a burst Herald never sent. Collect first, then freeze."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered))


async def wait_all_final(client: httpx.AsyncClient, total: int, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while True:
            page = (
                await client.get(
                    "/api/v1/messages", params={"status": ",".join(sorted(FINAL)), "limit": 1}
                )
            ).json()
            if page["count"] >= total:
                return
            await asyncio.sleep(0.2)


async def post_many(client: httpx.AsyncClient, n: int, text: str = "rate") -> None:
    response = await client.post(
        "/api/v1/messages",
        json={
            "messages": [
                {
                    "destinations": [{"phone": f"+1415555{i:04d}"}],
                    "channels": {"sms": {"text": text}},
                }
                for i in range(n)
            ]
        },
    )
    assert response.status_code == 201, response.text


async def test_sender_rate_is_shared_by_two_worker_processes(
    settings: Settings, tmp_path: Path
) -> None:
    rate, total = 10, 45
    with FakeTwilio() as fake:
        async with running_herald(settings, run_workers=False) as herald, herald.client() as client:
            await add_twilio_sender(client, fake, rateLimit=rate)
            await post_many(client, total)
            workers = [start_worker(settings, herald.url, tmp_path, n) for n in (1, 2)]
            try:
                await wait_all_final(client, total)
            finally:
                for w in workers:
                    w.send_signal(signal.SIGTERM)
                for w in workers:
                    w.wait(timeout=20)
    times = [r.at for r in fake.requests]
    assert len(times) == total
    # Two processes each applying the limit alone would send at about twice the rate on
    # average; shared, the average stays at the limit.
    first, last = min(times), max(times)
    assert (total - 1) / (last - first) <= rate * 1.05
    assert max_in_window(times, 2.0) <= 2 * rate + SLACK
    gaps = [b - a for a, b in zip(sorted(times), sorted(times)[1:], strict=False)]
    assert sorted(gaps)[len(gaps) // 2] >= 0.9 / rate  # steady state: evenly spaced
    assert max(times) - min(times) >= (total - rate - 1) / rate


async def test_segments_count_against_the_rate(settings: Settings) -> None:
    with FakeTwilio() as fake:
        async with running_herald(settings) as herald, herald.client() as client:
            await add_twilio_sender(client, fake, rateLimit=6)
            await post_many(client, 15, text="x" * 200)  # two segments each
            await wait_all_final(client, 15)
    assert max_in_window([r.at for r in fake.requests], 2.0) <= 2 * 3 + SLACK  # 3 messages/s


async def test_project_cap_through_twin_bandwidth_api(settings: Settings) -> None:
    with FakeTwilio() as fake:
        async with running_herald(settings) as herald, herald.client() as client:
            await add_twilio_sender(client, fake)
            put = await client.put(
                "/api/v1/bandwidth/0", json={"bandwidthList": [{"bandwidth": 5}]}
            )
            assert put.status_code == 204
            listed = (await client.get("/api/v1/bandwidth")).json()
            assert listed == {
                "count": 1,
                "items": [{"companyId": 0, "channel": None, "provider": None, "bandwidth": "5.00"}],
            }
            bad = await client.put(
                "/api/v1/bandwidth/0", json={"bandwidthList": [{"bandwidth": 5, "channel": "SMS"}]}
            )
            assert bad.status_code == 422
            await post_many(client, 20)
            await wait_all_final(client, 20)
            settings_view = (await client.get("/api/v1/project")).json()
            assert settings_view["rateLimit"] == 5
            bad_zone = await client.patch("/api/v1/project", json={"defaultTimezone": "Nowhere"})
            assert bad_zone.status_code == 422 and bad_zone.json()["code"] == "invalid_timezone"
            ok_zone = await client.patch(
                "/api/v1/project", json={"defaultTimezone": "Europe/Moscow"}
            )
            assert ok_zone.json()["defaultTimezone"] == "Europe/Moscow"
            assert ok_zone.json()["rateLimit"] == 5  # untouched
    assert max_in_window([r.at for r in fake.requests], 2.0) <= 2 * 5 + SLACK
