"""senders: removed_at, so a sender with message history can be removed

Deleting the row failed on the deliveries that reference it. A removed sender is hidden
and never chosen again, but stays for its messages' history and late delivery reports.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.store.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("senders") as batch:
        batch.add_column(
            sa.Column("removed_at", herald.store.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("senders") as batch:
        batch.drop_column("removed_at")
