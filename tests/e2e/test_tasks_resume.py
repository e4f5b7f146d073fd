"""A Herald killed in the middle of an import resumes it on start: no row lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from herald.config import Settings
from tests.e2e.helpers import wait_up
from tests.servers import LOOPBACK_HOSTS, free_port, running_herald

HERALD = str(Path(sys.executable).parent / "herald")
ROWS = 20_000
BAD_EVERY = 97  # every 97th row has a number that cannot be a phone


def start_server(
    settings: Settings, data_dir: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_SECRET_KEY": settings.secret_key or "",
        "HERALD_DATA_DIR": str(data_dir),
        "HERALD_RUN_DISPATCHER": "false",
        "HERALD_ALLOWED_PRIVATE_HOSTS": LOOPBACK_HOSTS,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [HERALD, "serve", "--port", str(port), "--no-workers"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def status(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_sigkill_mid_import_then_restart_resumes(settings: Settings, tmp_path: Path) -> None:
    lines = ["phone,text"] + [
        (f"12{i}" if i % BAD_EVERY == 0 else f"+14152{i:06d}") + f",row {i}" for i in range(ROWS)
    ]
    content = ("\n".join(lines) + "\n").encode()
    bad = sum(1 for i in range(ROWS) if i % BAD_EVERY == 0)
    data_dir, log = tmp_path / "data", tmp_path / "serve.log"
    # The test's own Herald only creates the project; the imports run in real processes.
    async with running_herald(settings, run_workers=False) as herald:
        api_key = herald.project.api_key
    port = free_port()
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
    ) as client:
        first = start_server(settings, data_dir, port, log)
        try:
            await wait_up(client, first, log)
            task_id = (await client.post("/api/v1/tasks", json={"name": "big"})).json()["id"]
            response = await client.post(
                f"/api/v1/tasks/{task_id}",
                files={"messages": ("big.csv", content)},
                data={"async": "1"},
            )
            assert response.status_code == 202, response.text
            async with asyncio.timeout(60):
                while (await status(client, task_id))["rowsRead"] < 2_000:
                    await asyncio.sleep(0.01)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        second = start_server(settings, data_dir, port, log)
        try:
            await wait_up(client, second, log)
            killed_at = await status(client, task_id)
            async with asyncio.timeout(120):
                while not (task := await status(client, task_id))["imported"]:
                    await asyncio.sleep(0.1)
            messages = (
                await client.get("/api/v1/messages", params={"taskId": task_id, "limit": 1})
            ).json()
            report = (await client.get(f"/api/v1/tasks/{task_id}/report?limit=1")).json()
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=20)
    assert killed_at["rowsRead"] < ROWS, "the import finished before the kill"
    assert task["status"] == "ready"
    assert (task["rowsRead"], task["rowsAccepted"], task["rowsRejected"]) == (
        ROWS,
        ROWS - bad,
        bad,
    )
    assert messages["count"] == ROWS - bad
    assert task["totalMessageCount"] == ROWS - bad
    assert report["count"] == bad
