"""The herald command line, run as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from herald.config import Settings
from tests.servers import running_herald

HERALD = str(Path(sys.executable).parent / "herald")


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HERALD, *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_projects_create_prints_json_once(tmp_path: Path) -> None:
    env = {"HERALD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    result = run(["projects", "create", "acme", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"projectId", "apiKey", "webhookSecret"}
    assert data["apiKey"].startswith("hrld_")
    listed = run(["projects", "list"], env, tmp_path)
    assert "acme" in listed.stdout
    assert data["apiKey"] not in listed.stdout  # only a prefix is ever shown again
    assert (tmp_path / "herald.key").exists()  # the generated encryption key


def test_help_is_helpful(tmp_path: Path) -> None:
    result = run(["--help"], {}, tmp_path)
    assert result.returncode == 0
    for command in ("serve", "worker", "send", "projects", "senders", "migrate"):
        assert command in result.stdout


async def test_send_shows_the_status_until_final(settings: Settings, tmp_path: Path) -> None:
    async with running_herald(settings) as herald:
        env = {"HERALD_URL": herald.url, "HERALD_API_KEY": herald.project.api_key}
        ok = await asyncio.to_thread(
            run, ["send", "--to", "+15005550006", "--text", "hi from the CLI"], env, tmp_path
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "delivered" in ok.stdout
        failed = await asyncio.to_thread(
            run, ["send", "--to", "+15005550001", "--text", "hi"], env, tmp_path
        )
        assert failed.returncode == 1
        assert "21211" in failed.stdout
        bad = await asyncio.to_thread(run, ["send", "--to", "555", "--text", "hi"], env, tmp_path)
        assert bad.returncode == 1
        assert "invalid_phone" in bad.stderr
        nokey = await asyncio.to_thread(
            run,
            ["send", "--to", "+15005550006", "--text", "hi"],
            {"HERALD_URL": herald.url, "HERALD_API_KEY": ""},
            tmp_path,
        )
        assert nokey.returncode == 1
        assert "API key" in nokey.stderr
