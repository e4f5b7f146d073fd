"""Herald processes the fault suite starts, SIGKILLs and starts again, by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from herald.config import Settings
from tests.servers import LOOPBACK_HOSTS

HERALD = str(Path(sys.executable).parent / "herald")

# Short enough that a killed process's work is taken over, reconciled and read back within
# seconds: its leases run out, an unknown outcome is looked up, a lost report is fetched.
FAST = {
    "HERALD_LEASE_SECONDS": "2",
    "HERALD_RECONCILE_DELAY_SECONDS": "0.5",
    "HERALD_REPORT_POLL_DELAY_SECONDS": "1",
    "HERALD_RETRY_BASE_SECONDS": "0.2",
    "HERALD_RETRY_MAX_SECONDS": "1",
    "HERALD_DISPATCH_IDLE_SLEEP": "0.05",
    # Small batches, so a kill lands in the middle of one.
    "HERALD_DISPATCH_BATCH_SIZE": "20",
    "HERALD_DISPATCH_CONCURRENCY": "20",
}


def child_env(settings: Settings, public_url: str, data_dir: Path) -> dict[str, str]:
    """The environment of every Herald process of one run: the test's settings, made fast."""
    # The test runner's own HERALD_* (a developer's database, the suite's knobs) stay out.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return {
        **inherited,
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_SECRET_KEY": settings.secret_key or "",
        "HERALD_PUBLIC_URL": public_url,
        "HERALD_DATA_DIR": str(data_dir),
        "HERALD_ALLOWED_PRIVATE_HOSTS": LOOPBACK_HOSTS,
        **FAST,
    }


@dataclass
class HeraldProcess:
    """One `herald serve` or `herald worker` command line, run again after each kill."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        """Start (again), appending to the same log."""
        assert self.process is None or self.process.poll() is not None
        with self.log.open("ab") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [HERALD, *self.args],
                env=self.env,
                cwd=self.log.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine or the OOM killer stops it."""
        assert self.process is not None and self.alive(), self.crashed()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.kills += 1

    def stop(self) -> None:
        """End the process whatever its state: SIGTERM, then SIGKILL if it lingers."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def crashed(self) -> str:
        """Why the process is not running, with the end of its log."""
        code = self.process.returncode if self.process is not None else None
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return f"{self.name} exited ({code}) without being killed; end of {self.log}:\n{tail}"
