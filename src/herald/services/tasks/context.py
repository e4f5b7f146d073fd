"""What the task services use of a running Herald, handed to them by their callers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.clock import Clock
from herald.config import Settings
from herald.store.tasks import Task


@dataclass(frozen=True, slots=True)
class TaskContext:
    """Sessions, settings and clock, and the event that wakes an in-process dispatcher."""

    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    clock: Clock
    # Set when messages become due, so an in-process dispatcher does not wait for its poll.
    work_available: asyncio.Event


def task_dir(settings: Settings, task_id: str) -> Path:
    """The directory of a task's uploaded file."""
    return settings.data_dir / "tasks" / task_id


def task_file(settings: Settings, task: Task) -> Path:
    """The task's uploaded file, once it has one."""
    return task_dir(settings, task.id) / f"upload.{task.file_format}"
