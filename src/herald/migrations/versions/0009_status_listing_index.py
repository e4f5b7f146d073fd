"""messages: list by status newest first from one index

A page of messages with a given status ("failed", newest first) walked the
(project_id, created_at, id) index back through every newer message of other statuses.
(project_id, status, created_at, id) serves the filter, the order and the count alike, so
it replaces (project_id, status).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.create_index(
            batch.f("ix_messages_project_id_status_created_at_id"),
            ["project_id", "status", "created_at", "id"],
            unique=False,
        )
        batch.drop_index(batch.f("ix_messages_project_id_status"))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.create_index(
            batch.f("ix_messages_project_id_status"), ["project_id", "status"], unique=False
        )
        batch.drop_index(batch.f("ix_messages_project_id_status_created_at_id"))
