"""messages.cancelled_at, and messages indexed by (project, task, status)

A message cancelled while one channel is already with a provider keeps that channel's reports
and ends cancelled unless it is delivered: the message remembers when it was cancelled.

A task is marked done when its last message becomes final; whether any message of the task is
still in progress is then a few probes of an index that holds the status.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.store.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancelled_at", herald.store.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.drop_index(batch_op.f("ix_messages_project_id_task_id"))
        batch_op.create_index(
            batch_op.f("ix_messages_project_id_task_id_status"),
            ["project_id", "task_id", "status"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_project_id_task_id_status"))
        batch_op.create_index(
            batch_op.f("ix_messages_project_id_task_id"), ["project_id", "task_id"], unique=False
        )
        batch_op.drop_column("cancelled_at")
