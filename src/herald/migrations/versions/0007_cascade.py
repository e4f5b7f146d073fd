"""cascade: channel steps, required channels, per-channel validity and rich content

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("content", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("step", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("required", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("validity_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("validity_minutes")
        batch.drop_column("required")
        batch.drop_column("step")
        batch.drop_column("content")
