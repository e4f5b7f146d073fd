"""projects.provider_aliases: TWIN provider names mapped to Herald's providers

TWIN's clients send "provider": "INFOBIP" (or RAPPORTO, ...); a project maps each such name
to the Herald provider that stands in for it.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("provider_aliases", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("projects", "provider_aliases")
