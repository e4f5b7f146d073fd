"""Send tasks on the wire: TWIN's Task, with Herald's import and progress detail."""

from __future__ import annotations

from pydantic import Field

from herald.schemas.out.base import Free, Number, OutModel, Timestamp


class TaskError(OutModel):
    code: str | None
    message: str


class TaskItem(OutModel):
    id: str
    name: str
    status: str
    created_at: Timestamp
    updated_at: Timestamp
    allowed_time_ranges: list[list[str]]
    total_message_count: int
    total_processed_message_count: int
    in_progress_message_count: int
    completed_message_count: int
    progress: int
    template_id: str | None
    policy: str
    default_region: str | None
    settings: Free = Field(description="The message fields the task gives every message.")
    file_name: str | None
    file_format: str | None
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    imported: bool
    messages: dict[str, int] = Field(description="How many of its messages are in each status.")
    started_at: Timestamp | None
    finished_at: Timestamp | None
    error: TaskError | None


class TaskList(OutModel):
    count: int
    items: list[TaskItem]


class TaskStatus(OutModel):
    """TWIN's ``{"status"}``, with counts, the sending rate and an ETA."""

    status: str
    messages: dict[str, int]
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    imported: bool
    progress: int
    total_message_count: int
    total_processed_message_count: int
    rate_per_second: Number
    eta_seconds: int | None
    error: TaskError | None


class TaskState(OutModel):
    """The answer to start, pause, resume and cancel."""

    id: str
    status: str
    cancelled_message_count: int | None = None


class RejectedRow(OutModel):
    row: int
    column: str | None
    code: str | None
    message: str
    values: Free


class TaskReport(OutModel):
    count: int
    status: str
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    items: list[RejectedRow]
