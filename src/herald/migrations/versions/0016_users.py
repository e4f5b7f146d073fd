"""users: people who sign in, their web sessions, sign-in links, TWIN IAM tokens

Users belong to a project and have a role; the cabinet signs them in with a cookie
(web_sessions), a one-time link (sign_in_links) or TWIN's IAM (iam_sessions and their
rotating refresh_tokens, JWTs signed with a key kept sealed in signing_keys).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.store.base

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, herald.store.base.UTCDateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.String(length=36), nullable=False)


def _owner(column: str, table: str, name: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column(column, sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint([column], [f"{table}.id"], name=name, ondelete="CASCADE"),
    ]


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("key_encrypted", sa.String(length=500), nullable=False),
        _at("created_at"),
        sa.PrimaryKeyConstraint("purpose", name="pk_signing_keys"),
    )
    op.create_table(
        "users",
        _id(),
        *_owner("project_id", "projects", "fk_users_project_id_projects"),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        _at("created_at"),
        _at("disabled_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_index("ix_users_email", "users", ["email"], unique=True)
    op.create_index("ix_users_project_id", "users", ["project_id"])
    op.create_table(
        "iam_sessions",
        _id(),
        *_owner("user_id", "users", "fk_iam_sessions_user_id_users"),
        _at("created_at"),
        _at("refreshed_at", nullable=True),
        _at("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_iam_sessions"),
    )
    op.create_index("ix_iam_sessions_user_id", "iam_sessions", ["user_id"])
    op.create_table(
        "sign_in_links",
        _id(),
        *_owner("user_id", "users", "fk_sign_in_links_user_id_users"),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _at("created_at"),
        _at("expires_at"),
        _at("used_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sign_in_links"),
    )
    op.create_index("ix_sign_in_links_token_hash", "sign_in_links", ["token_hash"], unique=True)
    op.create_index("ix_sign_in_links_user_id", "sign_in_links", ["user_id"])
    op.create_table(
        "web_sessions",
        _id(),
        *_owner("user_id", "users", "fk_web_sessions_user_id_users"),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _at("created_at"),
        _at("last_seen_at"),
        _at("expires_at"),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        _at("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_web_sessions"),
    )
    op.create_index("ix_web_sessions_token_hash", "web_sessions", ["token_hash"], unique=True)
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "refresh_tokens",
        _id(),
        *_owner("iam_session_id", "iam_sessions", "fk_refresh_tokens_iam_session_id_iam_sessions"),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _at("created_at"),
        _at("expires_at"),
        _at("used_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
    )
    op.create_index("ix_refresh_tokens_token_hash", "refresh_tokens", ["token_hash"], unique=True)
    op.create_index("ix_refresh_tokens_iam_session_id", "refresh_tokens", ["iam_session_id"])


def downgrade() -> None:
    for table in ("refresh_tokens", "web_sessions", "sign_in_links", "iam_sessions", "users"):
        op.drop_table(table)  # their indexes go with them
    op.drop_table("signing_keys")
