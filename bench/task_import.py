"""Send tasks at volume: import a CSV and an XLSX of N rows, then deliver them all.

For each format: a fresh `herald serve` (SQLite unless --database-url) and the fake Twilio
as separate processes on 127.0.0.1; the file (phone + two template variables) is uploaded
with async=false, so the answer comes when every row is stored as a message. Reports the
import time, Herald's peak RSS (VmHWM) after the import and at the end, its file reader
process's peak RSS, and the time from start until every message is delivered through the
fake provider.

    .venv/bin/python bench/task_import.py [--rows 100000] [--formats csv,xlsx] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    add_fake_twilio_sender,
    create_project,
    free_port,
    herald_env,
    start_fake_twilio,
    start_herald,
    stop,
)
from herald.domain import spreadsheets as sheets


def make_file(path: Path, fmt: str, rows: int) -> None:
    header = ["phone", "name", "code"]

    def row(i: int) -> list[str]:
        return [f"+14152{i:06d}", f"Customer {i}", f"{i % 10000:04d}"]

    if fmt == "xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet()
        sheet.append(header)
        for i in range(rows):
            sheet.append(row(i))
        workbook.save(path)
        return
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=";")
        writer.writerow(header)
        writer.writerows(row(i) for i in range(rows))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children_rss_mb(pid: int) -> float:
    """The highest peak RSS among ``pid``'s child processes now (its file reader)."""
    peak = 0.0
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(OSError):  # it may end between listing and reading
            peak = max(peak, peak_rss_mb(int(child)))
    return peak


async def children_peak_rss_mb(pid: int, until: asyncio.Future[Any]) -> float:
    """The highest peak RSS of ``pid``'s child processes, polled until ``until`` is done."""
    peak = 0.0
    while not until.done():
        peak = max(peak, children_rss_mb(pid))
        await asyncio.sleep(0.2)
    return peak


async def run_one(
    url: str, api_key: str, fake: str, file: Path, rows: int, pid: int, deliver: bool
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=1800) as client:
        await add_fake_twilio_sender(client, fake)
        r = await client.post(
            "/api/v1/templates",
            json={"name": "bench", "channels": {"sms": {"text": "Hi {{ name }}, code {{ code }}"}}},
        )
        r.raise_for_status()
        task = await client.post(
            "/api/v1/tasks", json={"name": file.name, "templateId": r.json()["id"]}
        )
        task.raise_for_status()
        task_id = task.json()["id"]
        start = time.perf_counter()
        with file.open("rb") as f:
            upload = asyncio.ensure_future(
                client.post(
                    f"/api/v1/tasks/{task_id}",
                    files={"messages": (file.name, f)},
                    data={"async": ""},
                )
            )
            rss_reader = await children_peak_rss_mb(pid, upload)
            r = await upload
        r.raise_for_status()
        imported = time.perf_counter() - start
        rss_import = peak_rss_mb(pid)
        body = r.json()
        assert body["rowsAccepted"] == rows, body
        if not deliver:
            return {"import_s": imported, "rss_import_mb": rss_import, "rss_reader_mb": rss_reader}
        start = time.perf_counter()
        (await client.post(f"/api/v1/startedTasks/{task_id}", json=[])).raise_for_status()
        while True:
            status = (await client.get(f"/api/v1/tasks/{task_id}/statuses")).json()
            if status["status"] == "done":
                break
            await asyncio.sleep(2.0)  # each status read counts the task's messages
        delivered = time.perf_counter() - start
        return {
            "import_s": imported,
            "rss_import_mb": rss_import,
            "rss_reader_mb": rss_reader,
            "deliver_s": delivered,
            "delivered": status["messages"].get("delivered", 0),
            "rss_end_mb": peak_rss_mb(pid),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument(
        "--no-deliver", action="store_true", help="measure the import only, do not send"
    )
    parser.add_argument("--database-url", default=None, help="default: fresh SQLite per format")
    args = parser.parse_args()
    fake_proc, fake = start_fake_twilio()
    results: dict[str, dict[str, float]] = {}
    try:
        for fmt in args.formats.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp)
                file = workdir / f"recipients.{fmt}"
                t = time.perf_counter()
                make_file(file, fmt, args.rows)
                print(
                    f"{fmt}: wrote {args.rows:,} rows ({file.stat().st_size / 1e6:.1f} MB) in "
                    f"{time.perf_counter() - t:.1f} s",
                    flush=True,
                )
                t = time.perf_counter()
                _, rows_read = sheets.read_rows(file, fmt)
                count = sum(1 for _ in rows_read)
                print(
                    f"{fmt}: parsed {count:,} rows alone (the reader's own work, no database) "
                    f"in {time.perf_counter() - t:.2f} s",
                    flush=True,
                )
                port = free_port()
                env = herald_env(
                    workdir, port, args.database_url, HERALD_DATA_DIR=str(workdir / "data")
                )
                api_key = create_project(workdir, env)
                herald = start_herald(workdir, env, port)
                try:
                    results[fmt] = asyncio.run(
                        run_one(
                            f"http://127.0.0.1:{port}",
                            api_key,
                            fake,
                            file,
                            args.rows,
                            herald.pid,
                            deliver=not args.no_deliver,
                        )
                    )
                except Exception:
                    print((workdir / "herald.log").read_text()[-3000:])
                    raise
                finally:
                    stop(herald)
                r = results[fmt]
                if args.no_deliver:
                    print(
                        f"{fmt}: imported and queued {args.rows:,} rows in {r['import_s']:.1f} s "
                        f"({args.rows / r['import_s']:,.0f} rows/s); Herald peak RSS "
                        f"{r['rss_import_mb']:.0f} MB, its file reader's "
                        f"{r['rss_reader_mb']:.0f} MB",
                        flush=True,
                    )
                    continue
                print(
                    f"{fmt}: imported and queued {args.rows:,} rows in {r['import_s']:.1f} s "
                    f"({args.rows / r['import_s']:,.0f} rows/s); Herald peak RSS "
                    f"{r['rss_import_mb']:.0f} MB after import (file reader "
                    f"{r['rss_reader_mb']:.0f} MB), {r['rss_end_mb']:.0f} MB at the "
                    f"end; {int(r['delivered']):,} delivered {r['deliver_s']:.1f} s after start "
                    f"({r['delivered'] / r['deliver_s']:,.0f}/s)",
                    flush=True,
                )
    finally:
        stop(fake_proc)


if __name__ == "__main__":
    main()
