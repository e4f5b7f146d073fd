"""messages.group_given: whether the client gave the groupId

A groupId the client gives means one person's devices: once one is delivered, the others'
fallbacks are skipped. Herald's own group of one message's destinations means nothing of
the kind (they may be different people).

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("group_given", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("messages", "group_given")
