"""TWIN's own PHP SDK (../shared/twin-sdk) against Herald over loopback.

The SDK signs in through TWIN's IAM, refreshes its expired token by itself, sends, lists and
cancels messages, manages a template and a task, all through its public classes
(tests/e2e/php/twin_sdk_flow.php). Its hosts are fixed; the script gives it a Guzzle client
whose middleware sends every request to this Herald instead. PHP is required: without it the
test fails and says how to install it, rather than skipping.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from herald.config import Settings
from herald.services import users
from herald.store.messages import Message
from herald.store.users import IamSession
from tests.servers import RunningHerald, running_herald

SCRIPT = Path(__file__).parent / "php" / "twin_sdk_flow.php"
SDK = Path(
    os.environ.get("HERALD_TWIN_SDK_DIR", Path(__file__).resolve().parents[3] / "shared/twin-sdk")
)
EMAIL = "sdk@example.com"
PASSWORD = "correct horse battery"
PHONE = "+14155552671"
INSTALL = "apt-get install -y php-cli php-curl php-mbstring php-xml"


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[RunningHerald]:
    async with running_herald(settings) as running:  # the sandbox sends: workers on
        async with running.herald.sessions() as session, session.begin():
            await users.create_user(
                session, running.project.project_id, EMAIL, "operator", PASSWORD
            )
        yield running


def php_binary() -> str:
    php = shutil.which("php")
    if php is None:
        pytest.fail(f"PHP is missing; TWIN's PHP SDK needs it. Install Debian's: {INSTALL}")
    if not (SDK / "autoload.php").is_file():
        pytest.fail(f"TWIN's PHP SDK is not at {SDK}; set HERALD_TWIN_SDK_DIR to its folder.")
    return php


async def test_twin_php_sdk_signs_in_refreshes_sends_and_manages(herald: RunningHerald) -> None:
    php = php_binary()
    port = herald.url.rsplit(":", 1)[1]
    # Asynchronous: Herald answers the script from this very event loop.
    process = await asyncio.create_subprocess_exec(
        php,
        str(SCRIPT),
        port,
        EMAIL,
        PASSWORD,
        PHONE,
        env={**os.environ, "TWIN_SDK_DIR": str(SDK)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, errors = await process.communicate()
    assert process.returncode == 0, f"stdout:\n{out.decode()}\nstderr:\n{errors.decode()}"
    steps = {line["step"]: line for line in map(json.loads, out.decode().splitlines())}
    assert steps["token refreshed by the SDK"]["refreshCalls"] >= 1
    assert steps["message cancelled"]["statuses"] == ["cancelled"]
    assert steps["task managed"]["statusWhilePaused"] == "paused"
    requests = steps["done"]["requests"]
    assert requests[0] == "POST /api/v1/auth/login"
    assert "POST /api/v1/auth/refresh" in requests

    async with herald.herald.sessions() as session:
        sign_ins = list(await session.scalars(select(IamSession)))
        sent = {m.id: m.status for m in await session.scalars(select(Message))}
    assert len(sign_ins) == 1 and sign_ins[0].refreshed_at is not None
    first, scheduled = steps["messages sent"]["ids"]
    assert sent[scheduled] == "cancelled"
    assert sent[first] != "cancelled"
