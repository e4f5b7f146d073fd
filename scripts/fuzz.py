"""``make fuzz``: schemathesis against a live Herald on 127.0.0.1, every check, bounded time.

Herald runs as ``herald serve`` on a free port with a fresh database and one project made
with ``herald projects create``; schemathesis reads its OpenAPI document and calls every
operation with that project's key. Each database runs in turn, ``--seconds`` each: SQLite in
a temporary directory, then PostgreSQL in a throwaway database created on
``FUZZ_POSTGRES_DSN`` (default postgres@127.0.0.1:5432, trust auth) and dropped afterwards;
PostgreSQL refuses what SQLite stores (a NUL in text), so a run on one alone misses bugs.
Exits non-zero when schemathesis found a failure on either (a 5xx, a response the document
does not describe, valid data refused, invalid data accepted...) or Herald logged a crash,
and prints each database's figures.

The dispatcher does not run (``--no-workers``): the fuzzer registers senders and callback
URLs of its own invention, and nothing may leave the machine. Every request is still
accepted and stored as it would be; only the sending is left out.

    .venv/bin/python scripts/fuzz.py [--database sqlite|postgresql ...] [--seconds 360]
                                     [--max-examples N] [--seed N] [-- st options]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = ROOT / "scripts" / "schemathesis.toml"
DATABASES = ("sqlite", "postgresql")
PG_ADMIN_DSN = os.environ.get("FUZZ_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
# schemathesis's summary lines that carry the figures, kept for the closing table.
_FIGURES = re.compile(r"^\s*(Tested: \d+|\d+ generated.*|=+ .* in [\d.]+s =+)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def throwaway_database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database of ``kind``: its URL; a PostgreSQL one is dropped after."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'herald.db'}"
        return
    name = f"herald_fuzz_{os.getpid()}_{int(time.time())}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        base = PG_ADMIN_DSN.rsplit("/", 1)[0]
        yield base.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_admin(statement: str) -> None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
    except (OSError, asyncpg.PostgresError) as e:
        raise SystemExit(
            f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({e}); start it, set "
            "FUZZ_POSTGRES_DSN, or fuzz SQLite alone with --database sqlite."
        ) from e
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def herald_env(workdir: Path, port: int, database_url: str) -> dict[str, str]:
    """The environment of a throwaway Herald: everything it keeps lives in ``workdir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(
        HERALD_DATABASE_URL=database_url,
        HERALD_SECRET_KEY_FILE=str(workdir / "herald.key"),
        HERALD_DATA_DIR=str(workdir / "data"),
        HERALD_PUBLIC_URL=f"http://127.0.0.1:{port}",
        HERALD_ALLOWED_PRIVATE_HOSTS="127.0.0.1,::1,localhost",
        # schemathesis sends thousands of wrong keys on purpose (is every operation closed
        # without one?); past the default burst they would all be 429, not the 401 it checks.
        HERALD_FAILED_AUTH_BURST="1000000",
    )
    return env


def create_project(env: dict[str, str], workdir: Path) -> str:
    out = subprocess.run(
        [str(BIN / "herald"), "projects", "create", "fuzz", "--json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key: str = json.loads(out.stdout)["apiKey"]
    return key


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"Herald exited at start:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("Herald did not answer /healthz within 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def server_errors(log: Path) -> dict[str, int]:
    """The errors Herald logged with a traceback (a 5xx's cause, which schemathesis cannot
    see): each traceback's last lines, with how often they came."""
    found: dict[str, int] = {}
    for block in log.read_text(errors="replace").split("Traceback (most recent call last):")[1:]:
        lines = [line for line in block.split("\nINFO:", 1)[0].splitlines() if line.strip()]
        tail = "\n".join(lines[-3:])
        found[tail] = found.get(tail, 0) + 1
    return found


@dataclass
class Outcome:
    database: str
    status: int
    figures: list[str]
    crashes: dict[str, int]
    kept: Path | None


def run_schemathesis(command: list[str], cwd: Path) -> tuple[int, list[str]]:
    """schemathesis's exit status, its output passed through, and the lines with figures."""
    figures: list[str] = []
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as st:
        assert st.stdout is not None
        for line in st.stdout:
            sys.stdout.write(line)
            if _FIGURES.match(line):
                figures.append(line.strip(" =\n"))
    sys.stdout.flush()
    return st.returncode, figures


def fuzz(database: str, args: argparse.Namespace) -> Outcome:
    """One schemathesis run against a fresh Herald on ``database``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"herald-fuzz-{database}-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = workdir / "herald.log"
    with throwaway_database(database, workdir) as database_url:
        env = herald_env(workdir, port, database_url)
        key = create_project(env, workdir)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(BIN / "herald"), "serve", "--port", str(port), "--no-workers"],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_ready(base, proc, log)
            command = [
                str(BIN / "st"),
                "--config-file",
                str(CONFIG),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {key}",
                "--max-time",
                str(args.seconds),
                "--report",
                "junit",
                "--report-dir",
                str(workdir / "report"),
            ]
            if args.max_examples:
                command += ["--max-examples", str(args.max_examples)]
            if args.seed is not None:
                command += ["--seed", str(args.seed)]
            shown = [part if key not in part else "Authorization: Bearer <key>" for part in command]
            print(f"# {database}\n$", " ".join(shown), flush=True)
            rc, figures = run_schemathesis([*command, *args.st_args], workdir)
        finally:
            stop(proc)
    crashes = server_errors(log)
    if rc == 0 and not crashes:
        shutil.rmtree(workdir, ignore_errors=True)
        return Outcome(database, 0, figures, crashes, None)
    return Outcome(database, rc or 1, figures, crashes, workdir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database",
        action="append",
        choices=DATABASES,
        help="the database to fuzz on, repeatable (FUZZ_DATABASES, default sqlite,postgresql)",
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=int(os.environ.get("FUZZ_SECONDS", "360")),
        help="schemathesis's time budget per database (FUZZ_SECONDS, default 360)",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=int(os.environ.get("FUZZ_EXAMPLES", "0")) or None,
        help="test cases per operation and phase (FUZZ_EXAMPLES; schemathesis's default)",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("st_args", nargs="*", help="more `st run` options, after --")
    args = parser.parse_args()
    databases = args.database or os.environ.get("FUZZ_DATABASES", ",".join(DATABASES)).split(",")
    unknown = sorted(set(databases) - set(DATABASES))
    if unknown:
        parser.error(f"unknown database {unknown[0]!r}; choose among {', '.join(DATABASES)}")

    outcomes = [fuzz(database, args) for database in databases]

    print("\n# make fuzz: schemathesis, every check, per database")
    for outcome in outcomes:
        verdict = "passed" if outcome.status == 0 else f"FAILED (exit {outcome.status})"
        print(f"{outcome.database}: {verdict}; {'; '.join(outcome.figures)}")
        for tail, times in outcome.crashes.items():
            print(f"  Herald logged this {times} time(s):\n{tail}\n", file=sys.stderr)
        if outcome.kept is not None:
            print(f"  Herald's log and schemathesis's report: {outcome.kept}", file=sys.stderr)
    return max(outcome.status for outcome in outcomes)


if __name__ == "__main__":
    sys.exit(main())
