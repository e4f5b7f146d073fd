"""Fixtures most end-to-end tests share: the fake Twilio, a running Herald, an API client.

A test module that needs more (a sender registered, other fakes) overrides them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from herald.config import Settings
from tests.fakes.twilio import FakeTwilio
from tests.servers import RunningHerald, running_herald


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as twilio:
        yield twilio


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings) as running:
        yield running


@pytest.fixture
async def client(herald: RunningHerald) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        yield c
