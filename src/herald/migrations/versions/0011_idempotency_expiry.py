"""idempotent_requests: indexed by creation time, so expired answers can be purged

Stored answers were kept forever (a 10,000-message batch keeps about 2.4 MB). They now
expire after HERALD_IDEMPOTENCY_HOURS; each keyed request purges its project's expired ones.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_idempotent_requests_project_id_created_at",
        "idempotent_requests",
        ["project_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_idempotent_requests_project_id_created_at", "idempotent_requests")
