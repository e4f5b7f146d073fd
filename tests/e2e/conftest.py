"""Fixtures most end-to-end tests share: a running Herald and an API client (the fake Twilio
they talk to is the root conftest's `fake`).

A test module that needs more (a sender registered, other fakes) overrides them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from herald.config import Settings
from tests.servers import RunningHerald, running_herald


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings) as running:
        yield running


@pytest.fixture
async def client(herald: RunningHerald) -> AsyncIterator[httpx.AsyncClient]:
    async with herald.client() as c:
        yield c
