"""Shared fixtures: real databases (SQLite and PostgreSQL), real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet

from herald.config import Settings
from herald.store.migrate import upgrade
from tests.fakes.twilio import FakeTwilio
from tests.servers import make_settings

PG_ADMIN_DSN = os.environ.get("HERALD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG_ADMIN_DSN)
    except (OSError, asyncpg.PostgresError) as e:
        raise RuntimeError(
            f"PostgreSQL is required for the test suite and is not reachable at {PG_ADMIN_DSN}: "
            f"{e}. Start it (see .ci/run) or set HERALD_TEST_PG_DSN."
        ) from e


async def _create_pg_database(template: str | None = None) -> str:
    name = f"herald_test_{secrets.token_hex(6)}"
    conn = await _admin()
    try:
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return name


async def _drop_pg_database(name: str) -> None:
    conn = await _admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _pg_url(name: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Each database kind migrated once; every test gets a fresh copy of it."""
    sqlite_file = tmp_path_factory.mktemp("template") / "herald.db"
    upgrade(f"sqlite+aiosqlite:///{sqlite_file}")
    pg_name = asyncio.run(_create_pg_database())
    try:
        upgrade(_pg_url(pg_name))
        yield {"sqlite": str(sqlite_file), "postgresql": pg_name}
    finally:
        asyncio.run(_drop_pg_database(pg_name))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_templates: dict[str, str]
) -> Iterator[str]:
    """A fresh, migrated database of each kind."""
    if request.param == "sqlite":
        target = tmp_path / "herald.db"
        shutil.copyfile(migrated_templates["sqlite"], target)
        yield f"sqlite+aiosqlite:///{target}"
        return
    name = asyncio.run(_create_pg_database(template=migrated_templates["postgresql"]))
    try:
        yield _pg_url(name)
    finally:
        asyncio.run(_drop_pg_database(name))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'herald.db'}"
    upgrade(url)
    return url


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def settings(database_url: str, secret_key: str) -> Settings:
    return make_settings(database_url, secret_key)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A fake Twilio on a free port (end-to-end and API tests point their senders at it)."""
    with FakeTwilio() as twilio:
        yield twilio
