"""The cabinet's Messages page at volume: each filter's page time over 1,000,000 messages.

Fills a fresh database (Herald's migrations, then bulk inserts straight into its tables) with
``--messages`` messages over 90 days in three projects: SMS, e-mail and SMS-then-e-mail
cascades, a dozen statuses, templates, send tasks imported in bursts, client groups, a status
history per channel and some short links. Then, with a real ``herald serve`` on it and a
viewer signed in over HTTP, it times the Messages page (GET /messages, the full first view)
for the newest page, a page 50 cursors deep and each filter alone and combined, and the
service call the page makes (``services.messages.reading.list_messages``) in-process. Prints
p50/p95 milliseconds per case; never asserts a time.

    .venv/bin/python bench/cabinet_messages.py [--messages 1000000] [--repeat 15]
        [--database-url postgresql+asyncpg://…] [--keep DIR | --reuse DIR] [--plans]

``--keep DIR`` leaves the filled database in DIR; ``--reuse DIR`` measures it again without
filling (``herald serve`` runs any new migration on it first). ``--plans`` prints each case's
query plan (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BIN,
    free_port,
    herald_env,
    start_fake_twilio,
    start_herald,
    stop,
)
from herald.services.messages import reading
from herald.store.db import create_engine, session_factory
from herald.store.messages import MessageFilter, page_query
from herald.store.migrate import upgrade

DAYS = 90
PASSWORD = "bench password 1"
VIEWER = "viewer@bench.example"
# The measured project's share of the messages; the two others split the rest.
SHARES = (0.9, 0.05, 0.05)
TEMPLATES = 20
TASKS = 40
BATCH = 20_000
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
_PROBLEM = re.compile(r'class="problem"[^>]*>([^<]*)<')


# ---------------------------------------------------------------------------------- set-up


@dataclass
class Project:
    """A project of the fill: its id, key, senders, templates and tasks."""

    name: str
    api_key: str
    id: str = ""
    sms_sender: str = ""
    email_sender: str = ""
    templates: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)


def herald_cli(workdir: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "herald"), *args],
        cwd=workdir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


async def prepare(url: str, project: Project, fake_twilio: str, smtp_port: int) -> None:
    """Senders, templates and tasks made through the API, as a client would."""
    headers = {"Authorization": f"Bearer {project.api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        senders = [
            {
                "channel": "sms",
                "provider": "twilio",
                "from": "+15005550006",
                "accountSid": "AC" + "0" * 32,
                "authToken": "test-token",
                "baseUrl": fake_twilio,
            },
            {
                "channel": "email",
                "provider": "smtp",
                "from": f"news@{project.name}.example",
                "baseUrl": f"smtp://127.0.0.1:{smtp_port}",
            },
        ]
        for body in senders:
            r = await client.post("/api/v1/senders", json=body)
            r.raise_for_status()
            if body["channel"] == "sms":
                project.sms_sender = r.json()["id"]
            else:
                project.email_sender = r.json()["id"]
        for n in range(TEMPLATES):
            r = await client.post(
                "/api/v1/templates",
                json={
                    "name": f"{project.name} template {n:02d}",
                    "channels": {
                        "sms": {"text": f"Hi {{{{ name }}}}, your code {n} is {{{{ code }}}}"},
                        "email": {
                            "subject": f"Notice {n}",
                            "text": "Hello {{ name }}, your code is {{ code }}.",
                        },
                    },
                },
            )
            r.raise_for_status()
            project.templates.append(r.json()["id"])
        for n in range(TASKS):
            r = await client.post(
                "/api/v1/tasks",
                json={"name": f"{project.name} task {n:02d}", "templateId": project.templates[0]},
            )
            r.raise_for_status()
            project.tasks.append(r.json()["id"])


# ----------------------------------------------------------------------------------- rows


def uuid7_at(at: datetime, rng: random.Random) -> str:
    """Herald's id (UUIDv7) for a row made at ``at``: its time first, as ``new_id`` does."""
    ms = int(at.timestamp() * 1000)
    value = (ms << 80) | rng.getrandbits(80)
    value &= ~((0xF << 76) | (0x3 << 62))
    value |= (7 << 76) | (0x2 << 62)
    return str(uuid.UUID(int=value))


MESSAGE_COLUMNS = [
    "id",
    "project_id",
    "bulk_id",
    "group_id",
    "group_given",
    "task_id",
    "phone",
    "destination",
    "channels",
    "channel",
    "status",
    "status_at",
    "error_code",
    "error_message",
    "callback_url",
    "callback_data",
    "send_at",
    "timezone",
    "timezone_source",
    "allowed_time_ranges",
    "template_id",
    "template_version",
    "template_variables",
    "created_at",
    "sent_at",
    "delivered_at",
    "cancelled_at",
]
DELIVERY_COLUMNS = [
    "id",
    "message_id",
    "project_id",
    "channel",
    "sender_id",
    "to_address",
    "from_address",
    "body",
    "content",
    "step",
    "required",
    "validity_minutes",
    "status",
    "next_attempt_at",
    "expires_at",
    "lease_owner",
    "attempt_count",
    "provider_message_id",
    "provider_status",
    "error_code",
    "error_message",
    "error_more_info",
    "num_segments",
    "price",
    "price_unit",
    "created_at",
    "updated_at",
    "sent_at",
    "delivered_at",
]
EVENT_COLUMNS = ["message_id", "delivery_id", "status", "source", "detail", "error_code", "at"]
LINK_COLUMNS = [
    "id",
    "code",
    "project_id",
    "message_id",
    "task_id",
    "url",
    "created_at",
    "expires_at",
    "clicks",
    "first_clicked_at",
    "last_clicked_at",
]
JSON_COLUMNS = {"destination", "channels", "allowed_time_ranges", "template_variables", "content"}

# A finished message's status, and the weights of each.
FINAL = (
    ("delivered", 72),
    ("read", 4),
    ("sent", 5),
    ("failed", 6),
    ("undelivered", 5),
    ("expired", 3),
    ("cancelled", 3),
    ("scheduled", 2),
)
# The last hour's messages are still on their way.
RECENT = (("queued", 20), ("sending", 20), ("sent", 40), ("delivered", 20))
PATH = {
    "queued": ["queued"],
    "scheduled": ["scheduled"],
    "cancelled": ["queued", "cancelled"],
    "sending": ["queued", "sending"],
    "sent": ["queued", "sending", "sent"],
    "delivered": ["queued", "sending", "sent", "delivered"],
    "read": ["queued", "sending", "sent", "delivered", "read"],
    "failed": ["queued", "sending", "failed"],
    "undelivered": ["queued", "sending", "sent", "undelivered"],
    "expired": ["queued", "sending", "sent", "expired"],
}
ERRORS = {
    "failed": ("21211", "The 'To' number is not a valid phone number."),
    "undelivered": ("30003", "Unreachable destination handset."),
    "expired": ("validity_expired", "No delivery report within the validity period."),
}


def pick(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


@dataclass
class Burst:
    """A send task's import: a run of consecutive messages that mostly belong to it."""

    task: str
    template: str
    first: int
    last: int


def bursts(rng: random.Random, project: Project, n: int) -> list[Burst]:
    """Where each task of ``project`` was imported among its ``n`` messages."""
    found = []
    for k, task in enumerate(project.tasks):
        # A few big tasks and many small ones (Zipf-like): the largest ~8% of the project.
        size = max(200, int(n * 0.08 / (k + 1)))
        first = rng.randrange(max(1, n - size))
        found.append(
            Burst(task, project.templates[k % len(project.templates)], first, first + size)
        )
    return found


def rows_for(
    rng: random.Random,
    project: Project,
    i: int,
    at: datetime,
    now: datetime,
    burst: Burst | None,
    people: int,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """One message of ``project`` made at ``at``: its row, deliveries, history, short link."""
    message_id = uuid7_at(at, rng)
    person = rng.randrange(people)
    phone = f"+14152{person:06d}"
    email = f"person{person}@example.com" if person % 10 else f"Person{person}@Example.COM"
    kind = rng.random()
    chain = ["sms"] if kind < 0.6 else ["email"] if kind < 0.85 else ["sms", "email"]
    in_task = burst is not None and rng.random() < 0.9
    template = (
        burst.template
        if in_task and burst
        else (
            project.templates[min(int(rng.paretovariate(1.2)) - 1, TEMPLATES - 1)]
            if rng.random() < 0.7
            else None
        )
    )
    status = pick(rng, RECENT if now - at < timedelta(hours=1) else FINAL)
    # One client group in ten: an order's notices, a few messages in a row sharing its id.
    group_given = (i // 4) % 10 == 0
    group = f"order-{i // 4}" if group_given else uuid7_at(at, rng)
    variables = {"name": f"Customer {person}", "code": f"{i % 10000:04d}"} if template else None
    text = (
        f"Hi Customer {person}, your code is {i % 10000:04d}"
        if template
        else f"Your order {i} has shipped and arrives tomorrow. Track it in the app."
    )
    destination: dict[str, Any] = {}
    if "sms" in chain:
        destination["phone"] = phone
    if "email" in chain:
        destination["email"] = email
    # Which channel speaks for the message: the cascade moves to e-mail when SMS failed.
    reached = chain if len(chain) == 1 or status not in ("delivered", "read") else ["sms"]
    if len(chain) == 2 and status in ("failed", "undelivered", "expired"):
        reached = chain
    deliveries: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for step, channel in enumerate(chain):
        delivery_id = uuid7_at(at, rng)
        if channel in reached:
            d_status = status if channel == reached[-1] else "failed"
        else:
            d_status = "skipped"
        error = ERRORS.get(d_status)
        done_at = at + timedelta(seconds=2 + step * 600)
        deliveries.append(
            {
                "id": delivery_id,
                "message_id": message_id,
                "project_id": project.id,
                "channel": channel,
                "sender_id": project.sms_sender if channel == "sms" else project.email_sender,
                "to_address": phone if channel == "sms" else email,
                "from_address": "+15005550006"
                if channel == "sms"
                else f"news@{project.name}.example",
                "body": text,
                "content": {"subject": "Your order"} if channel == "email" else None,
                "step": step,
                "required": False,
                "validity_minutes": 10 if len(chain) == 2 and step == 0 else None,
                "status": d_status,
                # No row is due: the dispatcher of the measured Herald has nothing to do.
                "next_attempt_at": None,
                "expires_at": at + timedelta(minutes=10) if len(chain) == 2 else None,
                "lease_owner": None,
                "attempt_count": 0 if d_status in ("skipped", "queued", "scheduled") else 1,
                "provider_message_id": (
                    None
                    if d_status in ("skipped", "queued", "scheduled", "cancelled")
                    else ("SM" if channel == "sms" else "<")
                    + uuid.UUID(int=rng.getrandbits(128)).hex
                ),
                "provider_status": None,
                "error_code": error[0] if error else None,
                "error_message": error[1] if error else None,
                "error_more_info": (
                    f"https://www.twilio.com/docs/errors/{error[0]}"
                    if error and channel == "sms"
                    else None
                ),
                "num_segments": 1 if channel == "sms" else None,
                "price": "-0.0079" if channel == "sms" and d_status != "skipped" else None,
                "price_unit": "USD" if channel == "sms" and d_status != "skipped" else None,
                "created_at": at,
                "updated_at": done_at,
                "sent_at": done_at if d_status in ("sent", "delivered", "read") else None,
                "delivered_at": done_at if d_status in ("delivered", "read") else None,
            }
        )
        path = PATH.get(d_status, ["pending", "skipped"] if d_status == "skipped" else [d_status])
        for n, ev_status in enumerate(path):
            events.append(
                {
                    "message_id": message_id,
                    "delivery_id": delivery_id,
                    "status": ev_status,
                    "source": "api" if n == 0 else "provider",
                    "detail": None,
                    "error_code": error[0] if error and ev_status == d_status else None,
                    "at": at + timedelta(seconds=n + step * 600),
                }
            )
    primary = next(
        (d for d in deliveries if d["status"] in ("delivered", "read")),
        max(deliveries, key=lambda d: d["step"] if d["status"] != "skipped" else -1),
    )
    final_at = at + timedelta(seconds=2 + primary["step"] * 600)
    message = {
        "id": message_id,
        "project_id": project.id,
        "bulk_id": (
            str(uuid.uuid5(uuid.NAMESPACE_OID, f"{burst.task}-{i // 1000}"))  # a chunk of rows
            if in_task and burst
            else uuid7_at(at, rng)
        ),
        "group_id": group,
        "group_given": group_given,
        "task_id": burst.task if in_task and burst else None,
        "phone": phone if "sms" in chain else None,
        "destination": destination,
        "channels": {c: {"text": text} for c in chain},
        "channel": primary["channel"],
        "status": status,
        "status_at": final_at,
        "error_code": primary["error_code"],
        "error_message": primary["error_message"],
        "callback_url": "https://client.example/herald" if i % 4 == 0 else None,
        "callback_data": None,
        "send_at": at + timedelta(days=1) if status == "scheduled" else None,
        "timezone": "America/Los_Angeles" if "sms" in chain else None,
        "timezone_source": "phone" if "sms" in chain else None,
        "allowed_time_ranges": None,
        "template_id": template,
        "template_version": 1 if template else None,
        "template_variables": variables,
        "created_at": at,
        "sent_at": primary["sent_at"],
        "delivered_at": primary["delivered_at"],
        "cancelled_at": final_at if status == "cancelled" else None,
    }
    link = None
    if rng.random() < 0.1:
        code = uuid.UUID(int=rng.getrandbits(128)).hex[:10]
        clicked = at + timedelta(minutes=5) if rng.random() < 0.3 else None
        link = {
            "id": uuid7_at(at, rng),
            "code": code,
            "project_id": project.id,
            "message_id": message_id,
            "task_id": message["task_id"],
            "url": f"https://shop.example/orders/{i}",
            "created_at": at,
            "expires_at": None,
            "clicks": 1 if clicked else 0,
            "first_clicked_at": clicked,
            "last_clicked_at": clicked,
        }
    return message, deliveries, events, link


@dataclass
class Batch:
    messages: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)


def generate(projects: list[Project], total: int, now: datetime, seed: int) -> Iterator[Batch]:
    """Every message of the fill, oldest first, in batches of BATCH."""
    rng = random.Random(seed)
    counts = [int(total * share) for share in SHARES]
    counts[0] += total - sum(counts)
    plans = {p.name: bursts(rng, p, c) for p, c in zip(projects, counts, strict=True)}
    made = {p.name: 0 for p in projects}
    start = now - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / total
    batch = Batch()
    for i in range(total):
        at = start + step * (i + rng.random())
        project = rng.choices(projects, SHARES)[0]
        if made[project.name] >= counts[projects.index(project)]:
            project = next(p for p in projects if made[p.name] < counts[projects.index(p)])
        k = made[project.name]
        made[project.name] += 1
        burst = next((b for b in plans[project.name] if b.first <= k < b.last), None)
        people = max(10, total // 5)
        message, deliveries, events, link = rows_for(rng, project, i, at, now, burst, people)
        batch.messages.append(message)
        batch.deliveries.extend(deliveries)
        batch.events.extend(events)
        if link:
            batch.links.append(link)
        if len(batch.messages) >= BATCH:
            yield batch
            batch = Batch()
    if batch.messages:
        yield batch


def _sqlite_time(value: datetime | None) -> str | None:
    # Herald's storage text for a UTC timestamp (store.base.UTCDateTime): "+00:00" cut off.
    return None if value is None else value.isoformat(" ", "microseconds")[:-6]


def _sqlite_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def sqlite_rows(columns: Sequence[str], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as SQLite stores them, a converter per column chosen once (the fill's cost
    is mostly Python's)."""
    converters: list[tuple[str, Callable[[Any], Any] | None]] = []
    for column in columns:
        if column in JSON_COLUMNS:
            converters.append((column, _sqlite_json))
        elif column.endswith("_at") or column == "at":
            converters.append((column, _sqlite_time))
        else:
            converters.append((column, None))  # SQLite stores a bool as 0/1 by itself
    return [tuple(row[c] if f is None else f(row[c]) for c, f in converters) for row in rows]


def fill_sqlite(path: Path, projects: list[Project], total: int, now: datetime) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    # The fill is a bench's, not a service's: nothing here must survive a crash.
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    tables = (
        ("messages", MESSAGE_COLUMNS, "messages"),
        ("deliveries", DELIVERY_COLUMNS, "deliveries"),
        ("status_events", EVENT_COLUMNS, "events"),
        ("short_links", LINK_COLUMNS, "links"),
    )
    started = time.perf_counter()
    done = 0
    for batch in generate(projects, total, now, seed=20):
        db.execute("BEGIN")
        for table, columns, attr in tables:
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            db.executemany(sql, sqlite_rows(columns, getattr(batch, attr)))
        db.execute("COMMIT")
        done += len(batch.messages)
        progress(done, total, started)
    db.execute("UPDATE tasks SET status = 'done', rows_accepted = 1")
    db.close()
    print(flush=True)


async def fill_postgres(url: str, projects: list[Project], total: int, now: datetime) -> None:
    import asyncpg  # type: ignore[import-untyped]

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    tables = (
        ("messages", MESSAGE_COLUMNS, "messages"),
        ("deliveries", DELIVERY_COLUMNS, "deliveries"),
        ("status_events", EVENT_COLUMNS, "events"),
        ("short_links", LINK_COLUMNS, "links"),
    )
    started = time.perf_counter()
    done = 0
    try:
        for batch in generate(projects, total, now, seed=20):
            async with conn.transaction():
                for table, columns, attr in tables:
                    records = [
                        tuple(
                            json.dumps(row[c])
                            if c in JSON_COLUMNS and row[c] is not None
                            else row[c]
                            for c in columns
                        )
                        for row in getattr(batch, attr)
                    ]
                    await conn.copy_records_to_table(table, records=records, columns=columns)
            done += len(batch.messages)
            progress(done, total, started)
        await conn.execute("UPDATE tasks SET status = 'done', rows_accepted = 1")
        # What autovacuum would do soon after a load this size.
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    print(flush=True)


def progress(done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed else 0
    left = (total - done) / rate if rate else 0
    print(
        f"\rfilled {done:,}/{total:,} messages, {rate:,.0f}/s, ~{left:.0f} s left   ",
        end="",
        flush=True,
    )


# ----------------------------------------------------------------------------- the cases


@dataclass
class Case:
    """One Messages page to time: the page's query string and the store's filter for it."""

    name: str
    params: dict[str, str]
    query: MessageFilter
    cursor: str | None = None
    # The live stream's read (cabinet.messages._read): the statuses of the rows of the page
    # named here, by id; timed in-process only.
    live_of: str | None = None


def pick_values(db_url: str, project_id: str, total: int) -> dict[str, str]:
    """Real values of the measured project to filter by (a person with several messages,
    the biggest and a small task, a client group, a common and a rare template)."""
    sql = {
        "phone": "SELECT phone FROM messages WHERE project_id = :p AND phone IS NOT NULL "
        "ORDER BY created_at DESC LIMIT 1 OFFSET :far",
        "email": "SELECT to_address FROM deliveries WHERE project_id = :p "
        "AND channel = 'email' ORDER BY created_at DESC LIMIT 1 OFFSET :mid",
        "task_big": "SELECT task_id FROM messages WHERE project_id = :p AND task_id IS NOT NULL "
        "GROUP BY task_id ORDER BY count(*) DESC LIMIT 1",
        "task_small": "SELECT task_id FROM messages WHERE project_id = :p AND task_id IS NOT NULL "
        "GROUP BY task_id ORDER BY count(*) LIMIT 1",
        "group": "SELECT group_id FROM messages WHERE project_id = :p AND group_given "
        "ORDER BY created_at DESC LIMIT 1 OFFSET :near",
        "template_common": "SELECT template_id FROM messages WHERE project_id = :p "
        "AND template_id IS NOT NULL GROUP BY template_id ORDER BY count(*) DESC LIMIT 1",
        "template_rare": "SELECT template_id FROM messages WHERE project_id = :p "
        "AND template_id IS NOT NULL GROUP BY template_id ORDER BY count(*) LIMIT 1",
    }

    # Far enough from the newest that the person's messages are not all on the first page.
    offsets = {"p": project_id, "far": total // 10, "mid": total // 20, "near": total // 1000}

    async def read() -> dict[str, str]:
        from sqlalchemy import text

        engine = create_engine(db_url)
        try:
            async with engine.connect() as conn:
                return {
                    k: str((await conn.execute(text(q), offsets)).scalar_one())
                    for k, q in sql.items()
                }
        finally:
            await engine.dispose()

    return asyncio.run(read())


def cases(v: dict[str, str], now: datetime) -> list[Case]:
    day = (now - timedelta(days=45)).replace(hour=0, minute=0, second=0, microsecond=0)
    week = now - timedelta(days=7)
    frm, until = (
        day.isoformat(timespec="minutes"),
        (day + timedelta(days=1)).isoformat(timespec="minutes"),
    )
    wk = week.isoformat(timespec="minutes")
    t_from, t_until = day, day + timedelta(days=1)

    def c(name: str, query: MessageFilter, **params: str) -> Case:
        return Case(name, {"from" if k == "from_" else k: p for k, p in params.items()}, query)

    return [
        c("newest page, no filter", MessageFilter()),
        c("page 51, no filter", MessageFilter()),
        c("status=delivered", MessageFilter(statuses=["delivered"]), status="delivered"),
        c("status=failed", MessageFilter(statuses=["failed"]), status="failed"),
        c("status=failed, page 51", MessageFilter(statuses=["failed"]), status="failed"),
        c("channel=sms", MessageFilter(channel="sms"), channel="sms"),
        c("channel=email", MessageFilter(channel="email"), channel="email"),
        c("channel=whatsapp (never used)", MessageFilter(channel="whatsapp"), channel="whatsapp"),
        c("phone", MessageFilter(phone=v["phone"]), to=v["phone"]),
        c("e-mail", MessageFilter(email=v["email"]), to=v["email"]),
        c("e-mail, other case", MessageFilter(email=v["email"].upper()), to=v["email"].upper()),
        c("phone nobody has", MessageFilter(phone="+14159999999"), to="+14159999999"),
        c(
            "time range: one day",
            MessageFilter(created_from=t_from, created_to=t_until),
            from_=frm,
            until=until,
        ),
        c("task (biggest)", MessageFilter(task_ids=[v["task_big"]]), task=v["task_big"]),
        c("task (smallest)", MessageFilter(task_ids=[v["task_small"]]), task=v["task_small"]),
        c("group", MessageFilter(group_ids=[v["group"]]), group=v["group"]),
        c(
            "template (common)",
            MessageFilter(template_ids=[v["template_common"]]),
            template=v["template_common"],
        ),
        c(
            "template (rare)",
            MessageFilter(template_ids=[v["template_rare"]]),
            template=v["template_rare"],
        ),
        c(
            "status=failed + channel=email",
            MessageFilter(statuses=["failed"], channel="email"),
            status="failed",
            channel="email",
        ),
        c(
            "task (biggest) + status=failed",
            MessageFilter(task_ids=[v["task_big"]], statuses=["failed"]),
            task=v["task_big"],
            status="failed",
        ),
        c(
            "task (biggest) + status=queued (none)",
            MessageFilter(task_ids=[v["task_big"]], statuses=["queued"]),
            task=v["task_big"],
            status="queued",
        ),
        c(
            "task (biggest) + channel=email",
            MessageFilter(task_ids=[v["task_big"]], channel="email"),
            task=v["task_big"],
            channel="email",
        ),
        c(
            "template (rare) + last 7 days",
            MessageFilter(template_ids=[v["template_rare"]], created_from=week),
            template=v["template_rare"],
            from_=wk,
        ),
        c(
            "channel=email + one day",
            MessageFilter(channel="email", created_from=t_from, created_to=t_until),
            channel="email",
            from_=frm,
            until=until,
        ),
        c(
            "phone + status=delivered",
            MessageFilter(phone=v["phone"], statuses=["delivered"]),
            to=v["phone"],
            status="delivered",
        ),
        c(
            "status=expired + channel=email + template (rare)",
            MessageFilter(statuses=["expired"], channel="email", template_ids=[v["template_rare"]]),
            status="expired",
            channel="email",
            template=v["template_rare"],
        ),
        Case("live statuses of page 51's rows (by id)", {}, MessageFilter(), None, "page 51"),
        Case("live statuses of task's rows (by id)", {}, MessageFilter(), None, "task (smallest)"),
    ]


# --------------------------------------------------------------------------------- timing


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def runs(repeat: int, budget: float) -> Iterator[int]:
    """Run numbers, 0 being a warm-up, up to ``repeat``; fewer (3 timed at least) once the
    case has taken ``budget`` seconds, so a slow case does not hold the bench for long."""
    started = time.perf_counter()
    for n in range(repeat + 1):
        if n > 3 and time.perf_counter() - started > budget:
            return
        yield n


async def measure_service(
    db_url: str, project_id: str, all_cases: list[Case], repeat: int, budget: float, plans: bool
) -> dict[str, tuple[list[float], int]]:
    """Each case's list_messages call, as the page makes it (its own session each time)."""
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    out: dict[str, tuple[list[float], int]] = {}
    shown: dict[str, list[str]] = {}  # the ids each case's page showed
    try:
        for case in all_cases:
            if "page 51" in case.name:
                cursor = None
                for _ in range(50):  # follow the cursor as a person pressing "Older"
                    async with sessions() as session:
                        listed = await reading.list_messages(
                            session,
                            project_id,
                            case.query,
                            limit=50,
                            cursor=cursor,
                            with_count=False,
                        )
                    cursor = listed["nextCursor"]
                case.cursor = cursor
            if case.live_of:
                case.query = MessageFilter(ids=shown[case.live_of])
            samples: list[float] = []
            found = 0
            for n in runs(repeat, budget):
                async with sessions() as session:
                    t = time.perf_counter()
                    listed = await reading.list_messages(
                        session,
                        project_id,
                        case.query,
                        limit=len(case.query.ids) if case.query.ids else 50,
                        cursor=case.cursor,
                        with_count=False,
                    )
                    elapsed = time.perf_counter() - t
                if n:  # the first is a warm-up
                    samples.append(elapsed * 1000)
                found = len(listed["items"])
            shown[case.name.split(",")[0]] = [item["id"] for item in listed["items"]]
            out[case.name] = (samples, found)
            if plans:
                await print_plan(engine, project_id, case)
    finally:
        await engine.dispose()
    return out


async def print_plan(engine: Any, project_id: str, case: Case) -> None:
    """The plan of the page's main statement (its follow-ups read its rows by key)."""
    from sqlalchemy import text

    after = reading._decode_cursor(case.cursor) if case.cursor else None
    query = page_query(
        project_id,
        reading._checked(case.query),
        limit=51,
        after=after,
        offset=0,
        sort=("createdAt", True),
    )
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
        rows = (await conn.execute(text(explain + sql))).all()
    print(f"  plan [{case.name}]")
    for row in rows:
        print("    " + " | ".join(str(x) for x in row[-1:]))


async def sign_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/sign-in")
    token = _CSRF.search(form.text)
    assert token, "no CSRF field on the sign-in page"
    r = await client.post(
        "/sign-in", data={"email": VIEWER, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert r.status_code in (200, 303), r.text[:500]


async def measure_http(
    url: str, all_cases: list[Case], repeat: int, budget: float
) -> dict[str, tuple[list[float], int]]:
    """Each case's page over HTTP (GET /messages, the whole first view) as a signed-in viewer."""
    out: dict[str, tuple[list[float], int]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await sign_in(client)
        for case in all_cases:
            if case.live_of:
                continue
            params = dict(case.params)
            if case.cursor:
                params["cursor"] = case.cursor
            path = "/messages?" + urlencode(params)
            samples = []
            rows = 0
            for n in runs(repeat, budget):
                t = time.perf_counter()
                r = await client.get(path)
                elapsed = time.perf_counter() - t
                if r.status_code != 200 or ("data-live-list" not in r.text and not case.cursor):
                    raise RuntimeError(f"{case.name}: {r.status_code} {r.text[:300]}")
                problem = _PROBLEM.search(r.text)
                if problem:
                    raise RuntimeError(f"{case.name}: the page says {problem.group(1)!r}")
                if n:
                    samples.append(elapsed * 1000)
                rows = r.text.count("data-message-id=")
            out[case.name] = (samples, rows)
    return out


def report(
    all_cases: list[Case],
    http: dict[str, tuple[list[float], int]],
    service: dict[str, tuple[list[float], int]],
) -> None:
    print()
    print(
        f"{'case':<50} {'rows':>4}  {'page p50':>8} {'page p95':>8}  "
        f"{'list p50':>8} {'list p95':>8}"
    )
    for case in all_cases:
        s, found = service[case.name]
        h, rows = http.get(case.name, ([], found))
        line = f"{case.name:<50} {found:>4}  "
        line += f"{pct(h, 0.5):>8.1f} {pct(h, 0.95):>8.1f}  " if h else f"{'-':>8} {'-':>8}  "
        line += f"{pct(s, 0.5):>8.1f} {pct(s, 0.95):>8.1f}"
        if h and rows != found:
            line += f"  (page showed {rows} rows)"
        print(line)
    print(
        "\npage: GET /messages through `herald serve` on loopback (the whole first view, "
        "ms);\nlist: services.messages.reading.list_messages in-process (the page's query and "
        "its follow-ups, ms)."
    )


# ----------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per case")
    parser.add_argument(
        "--budget", type=float, default=10.0, help="seconds a case may take before fewer runs"
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--keep", type=Path, help="fill into DIR and leave it there")
    parser.add_argument("--reuse", type=Path, help="measure DIR's database again, no fill")
    parser.add_argument("--plans", action="store_true", help="print each case's query plan")
    parser.add_argument("--no-http", action="store_true", help="time the service call only")
    parser.add_argument(
        "--no-migrate",
        action="store_true",
        help="with --reuse and --no-http: measure the schema as it is (after `alembic downgrade`)",
    )
    args = parser.parse_args()
    if args.no_migrate and not (args.reuse and args.no_http):
        parser.error("--no-migrate goes with --reuse and --no-http (`herald serve` migrates)")

    workdir = args.reuse or args.keep or Path(tempfile.mkdtemp(prefix="herald-cabinet-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    state_file = workdir / "bench-state.json"
    port = free_port()
    env = herald_env(workdir, port, args.database_url, HERALD_DATA_DIR=str(workdir / "data"))
    db_url = env["HERALD_DATABASE_URL"]
    fake_proc, fake_url = start_fake_twilio()
    herald = None
    try:
        if args.reuse:
            state = json.loads(state_file.read_text())
            # New migrations first, timed (`herald serve` would run them within its start-up).
            if not args.no_migrate:
                t = time.perf_counter()
                upgrade(db_url)
                print(f"migrated to the newest schema in {time.perf_counter() - t:.1f} s")
            if not args.no_http:
                herald = start_herald(workdir, env, port)
        else:
            projects = [new_project(workdir, env, name) for name in ("bench", "other1", "other2")]
            herald_cli(
                workdir,
                env,
                "users",
                "create",
                VIEWER,
                "--project",
                "bench",
                "--role",
                "viewer",
                "--password",
                PASSWORD,
            )
            herald = start_herald(workdir, env, port)
            for project in projects:
                asyncio.run(prepare(f"http://127.0.0.1:{port}", project, fake_url, free_port()))
            now = datetime.now(UTC)
            t = time.perf_counter()
            if db_url.startswith("sqlite"):
                fill_sqlite(workdir / "herald.db", projects, args.messages, now)
            else:
                asyncio.run(fill_postgres(db_url, projects, args.messages, now))
            print(f"filled {args.messages:,} messages in {time.perf_counter() - t:.0f} s")
            state = {
                "project_id": projects[0].id,
                "now": now.isoformat(),
                "messages": args.messages,
            }
            state_file.write_text(json.dumps(state))
            if db_url.startswith("sqlite"):
                size = (workdir / "herald.db").stat().st_size / 1e9
                print(f"database: {workdir / 'herald.db'} ({size:.2f} GB)")
        project_id = state["project_id"]
        values = pick_values(db_url, project_id, state["messages"])
        all_cases = cases(values, datetime.fromisoformat(state["now"]))
        service = asyncio.run(
            measure_service(db_url, project_id, all_cases, args.repeat, args.budget, args.plans)
        )
        http = (
            {}
            if args.no_http
            else asyncio.run(
                measure_http(f"http://127.0.0.1:{port}", all_cases, args.repeat, args.budget)
            )
        )
        report(all_cases, http, service)
    except Exception:
        log = workdir / "herald.log"
        if log.exists():
            print(log.read_text()[-3000:])
        raise
    finally:
        if herald is not None:
            stop(herald)
        stop(fake_proc)
        if not (args.keep or args.reuse):
            shutil.rmtree(workdir, ignore_errors=True)


def new_project(workdir: Path, env: dict[str, str], name: str) -> Project:
    """A project made with the CLI (which migrates a fresh database first)."""
    created = json.loads(herald_cli(workdir, env, "projects", "create", name, "--json"))
    return Project(name, created["apiKey"], created["projectId"])


if __name__ == "__main__":
    main()
