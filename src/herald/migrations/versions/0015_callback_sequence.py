"""client_callbacks: sequence and status; projects.callback_url

A message's callbacks are numbered 1, 2, 3 … and sent strictly in that order; each keeps
the message status it reports, which the next one gives as previousStatus. Existing
callbacks are numbered in the order they were queued. A project may name a default
callbackUrl for messages that give none.

Revision ID: 0015
Revises: 0014
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("client_callbacks") as batch:
        batch.add_column(sa.Column("sequence", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("status", sa.String(length=20), nullable=True))
    callbacks = sa.table(
        "client_callbacks",
        sa.column("id", sa.String()),
        sa.column("message_id", sa.String()),
        sa.column("body", sa.Text()),
        sa.column("created_at", sa.DateTime()),
        sa.column("sequence", sa.Integer()),
        sa.column("status", sa.String()),
    )
    connection = op.get_bind()
    numbered: dict[str, int] = {}
    updates = []
    for id_, message_id, body in connection.execute(
        sa.select(callbacks.c.id, callbacks.c.message_id, callbacks.c.body).order_by(
            callbacks.c.message_id, callbacks.c.created_at, callbacks.c.id
        )
    ):
        numbered[message_id] = numbered.get(message_id, 0) + 1
        updates.append(
            {"_id": id_, "_sequence": numbered[message_id], "_status": json.loads(body)["status"]}
        )
    if updates:
        connection.execute(
            callbacks.update()
            .where(callbacks.c.id == sa.bindparam("_id"))
            .values(sequence=sa.bindparam("_sequence"), status=sa.bindparam("_status")),
            updates,
        )
    with op.batch_alter_table("client_callbacks") as batch:
        batch.alter_column("sequence", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("status", existing_type=sa.String(length=20), nullable=False)
        batch.create_index(
            "ix_client_callbacks_message_id_sequence", ["message_id", "sequence"], unique=True
        )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("callback_url", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("callback_url")
    with op.batch_alter_table("client_callbacks") as batch:
        batch.drop_index("ix_client_callbacks_message_id_sequence")
        batch.drop_column("status")
        batch.drop_column("sequence")
