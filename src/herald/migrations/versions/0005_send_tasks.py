"""send tasks: bulk sending from CSV and XLSX files

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.store.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("template_id", sa.String(length=36), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("policy", sa.String(length=20), nullable=False),
        sa.Column("default_region", sa.String(length=2), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("file_format", sa.String(length=10), nullable=True),
        sa.Column("columns", sa.JSON(), nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_accepted", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=50), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("imported_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_tasks_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tasks_project_id_created_at"), ["project_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tasks_status"), ["status"], unique=False)

    op.create_table(
        "task_rows",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("destination", sa.String(length=200), nullable=True),
        sa.Column("error_column", sa.String(length=200), nullable=True),
        sa.Column("error_code", sa.String(length=50), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_rows_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "row_number", name=op.f("pk_task_rows")),
    )


def downgrade() -> None:
    op.drop_table("task_rows")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_status"))
        batch_op.drop_index(batch_op.f("ix_tasks_project_id_created_at"))
    op.drop_table("tasks")
