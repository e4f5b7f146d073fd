"""timing: scheduling, quiet hours, validity and project rate caps

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.store.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("timezone_source", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("allowed_time_ranges", sa.JSON(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("expires_at", herald.store.base.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("default_timezone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("rate_limit", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("rate_next_at", herald.store.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("rate_next_at")
        batch.drop_column("rate_limit")
        batch.drop_column("default_timezone")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("allowed_time_ranges")
        batch.drop_column("timezone_source")
        batch.drop_column("timezone")
