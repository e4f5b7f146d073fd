"""template_versions.created_by: the user who saved a version (null for an API key)

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite adds a foreign key only by rebuilding the table.
    with op.batch_alter_table("template_versions") as batch:
        batch.add_column(sa.Column("created_by", sa.String(length=36), nullable=True))
        batch.create_foreign_key(
            "fk_template_versions_created_by_users",
            "users",
            ["created_by"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("template_versions") as batch:
        batch.drop_constraint("fk_template_versions_created_by_users", type_="foreignkey")
        batch.drop_column("created_by")
