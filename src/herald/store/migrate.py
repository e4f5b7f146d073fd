"""Bring a database to the newest schema, from code (``herald serve`` migrates on start)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(url: str) -> None:
    """Run every pending migration against ``url``.

    Alembic's env runs its own event loop, so it gets a thread of its own: this works both
    from plain code and from inside a running loop (tests, the API's start-up).
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(alembic_config(url), "head")
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    thread = threading.Thread(target=run, name="herald-migrate")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
