"""Failed authentication is throttled per address; valid keys keep working; the key cache
forgets a deleted project's key within its time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import delete

from herald.config import Settings
from herald.store.projects import Project
from herald.store.senders import Sender
from tests.e2e.rawhttp import exchange, head
from tests.servers import RunningHerald, running_herald

BURST = 3


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    throttled = settings.model_copy(
        update={"failed_auth_burst": BURST, "failed_auth_per_minute": 1.0}
    )
    async with running_herald(throttled, run_workers=False) as running:
        yield running


async def test_wrong_keys_are_slowed_down_and_valid_keys_still_work(
    herald: RunningHerald,
) -> None:
    other = await herald.new_project()  # its key has never been used
    async with herald.client() as client:
        assert (await client.get("/api/v1/messages")).status_code == 200
    async with herald.client("hrld_guess") as guessing:
        for _ in range(BURST):
            refused = await guessing.get("/api/v1/messages")
            assert refused.status_code == 401
            assert refused.json()["code"] == "invalid_api_key"
        throttled = await guessing.get("/api/v1/messages")
    assert throttled.status_code == 429
    body = throttled.json()
    assert body["code"] == "too_many_failed_logins"
    retry_after = int(throttled.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert body["details"] == {"retryAfter": retry_after}
    assert f"try again in {retry_after} seconds" in body["error"]

    # Refused before any of a body is read, like a wrong key.
    large = {"Authorization": "Bearer hrld_guess", "Content-Length": str(50 * 1024 * 1024)}
    answer = await exchange(herald.url, head("POST", "/api/v1/messages", large))
    assert answer.status == 429
    assert answer.headers["retry-after"]

    # Only failures are throttled: valid keys from the same address go through at once,
    # one seen before as well as one never seen.
    async with herald.client() as client:
        assert (await client.get("/api/v1/messages")).status_code == 200
    async with herald.client(other.api_key) as client:
        assert (await client.get("/api/v1/project")).status_code == 200
    async with httpx.AsyncClient(base_url=herald.url) as anonymous:
        missing = await anonymous.get("/api/v1/messages")
    assert missing.status_code == 401  # no key at all costs no look-up: nothing to slow
    async with herald.client("hrld_guess") as guessing:
        assert (await guessing.get("/api/v1/senders")).status_code == 429


async def test_a_deleted_projects_key_stops_working_within_the_cache_time(
    settings: Settings,
) -> None:
    ttl = 0.5
    quick = settings.model_copy(update={"api_key_cache_seconds": ttl})
    async with running_herald(quick, run_workers=False) as herald:
        gone = await herald.new_project("gone")
        async with herald.client(gone.api_key) as client:
            assert (await client.get("/api/v1/project")).status_code == 200
            async with herald.herald.sessions() as session, session.begin():
                await session.execute(delete(Sender).where(Sender.project_id == gone.project_id))
                await session.execute(delete(Project).where(Project.id == gone.project_id))
            await asyncio.sleep(ttl)
            refused = await client.get("/api/v1/project")
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_api_key"
