"""``make fuzz``: schemathesis against a live Herald on 127.0.0.1, every check, bounded time.

Herald runs as ``herald serve`` on a free port with a fresh SQLite database in a temporary
directory and one project made with ``herald projects create``; schemathesis reads its
OpenAPI document and calls every operation with that project's key. Exits with
schemathesis's status: non-zero when it found a failure (a 5xx, a response the document
does not describe, valid data refused, invalid data accepted...).

The dispatcher does not run (``--no-workers``): the fuzzer registers senders and callback
URLs of its own invention, and nothing may leave the machine. Every request is still
accepted and stored as it would be; only the sending is left out.

    .venv/bin/python scripts/fuzz.py [--seconds 420] [--max-examples N] [-- st options]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = ROOT / "scripts" / "schemathesis.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def herald_env(workdir: Path, port: int) -> dict[str, str]:
    """The environment of a throwaway Herald: everything it keeps lives in ``workdir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(
        HERALD_DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'herald.db'}",
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds",
        type=int,
        default=int(os.environ.get("FUZZ_SECONDS", "420")),
        help="schemathesis's time budget (FUZZ_SECONDS, default 420)",
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

    workdir = Path(tempfile.mkdtemp(prefix="herald-fuzz-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = herald_env(workdir, port)
    key = create_project(env, workdir)
    log = workdir / "herald.log"
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
        print("$", " ".join(shown), flush=True)
        rc = subprocess.run([*command, *args.st_args], cwd=workdir).returncode
    finally:
        stop(proc)
    crashes = server_errors(log)
    for tail, times in crashes.items():
        print(f"Herald logged this {times} time(s):\n{tail}\n", file=sys.stderr)
    if rc == 0 and not crashes:
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    print(f"Herald's log and schemathesis's report are kept in {workdir}", file=sys.stderr)
    return rc or 1


if __name__ == "__main__":
    sys.exit(main())
