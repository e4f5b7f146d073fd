"""``herald tasks`` run as a user runs it, against a real Herald with the sandbox sender."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import openpyxl

from herald.config import Settings
from tests.servers import running_herald

HERALD = str(Path(sys.executable).parent / "herald")


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HERALD, *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_sample_create_watch_and_results(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"data_dir": tmp_path / "data"})
    async with running_herald(settings) as herald, herald.client() as client:
        env = {"HERALD_URL": herald.url, "HERALD_API_KEY": herald.project.api_key}
        response = await client.post(
            "/api/v1/templates",
            json={"name": "t", "channels": {"sms": {"text": "Hi {{ name }}"}}},
        )
        template_id = response.json()["id"]

        sample = tmp_path / "sample.xlsx"
        done = await asyncio.to_thread(
            run, ["tasks", "sample", "--template", template_id, "-o", str(sample)], env, tmp_path
        )
        assert done.returncode == 0, done.stdout + done.stderr
        sheet = openpyxl.load_workbook(sample).worksheets[0]
        assert [c.value for c in sheet[1]] == ["phone", "name"]

        people = tmp_path / "people.csv"
        people.write_text(
            "phone;name\n+15005550006;Ann\n15005550006;Dup\nnot a phone;Bob\n", encoding="cp1251"
        )
        done = await asyncio.to_thread(
            run, ["tasks", "create", str(people), "--template", template_id], env, tmp_path
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2 row(s) rejected" in done.stderr
        listed = (await client.get("/api/v1/tasks")).json()
        task_id = listed["items"][0]["id"]
        assert listed["items"][0]["status"] == "done"

        done = await asyncio.to_thread(run, ["tasks", "watch", task_id], env, tmp_path)
        assert done.returncode == 0, done.stderr
        assert "done (1 delivered)" in done.stdout

        results = tmp_path / "results.csv"
        done = await asyncio.to_thread(
            run, ["tasks", "results", task_id, "-o", str(results)], env, tmp_path
        )
        assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader(io.StringIO(results.read_text(encoding="utf-8-sig"))))
        assert [(r["row"], r["status"]) for r in rows] == [
            ("2", "delivered"),
            ("3", "rejected"),
            ("4", "rejected"),
        ]

        done = await asyncio.to_thread(run, ["tasks", "pause", task_id], env, tmp_path)
        assert done.returncode == 1
        assert "task_not_running" in done.stderr
