"""templates and short links

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.store.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "short_links",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("task_id", sa.String(length=100), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("first_clicked_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_clicked_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_short_links_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_short_links")),
    )
    with op.batch_alter_table("short_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_short_links_code"), ["code"], unique=True)
        batch_op.create_index(
            batch_op.f("ix_short_links_project_id_message_id"),
            ["project_id", "message_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_short_links_project_id_task_id"), ["project_id", "task_id"], unique=False
        )

    op.create_table(
        "templates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_templates_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
    )
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_templates_project_id_created_at"),
            ["project_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_templates_project_id_name"), ["project_id", "name"], unique=False
        )

    op.create_table(
        "link_clicks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("link_id", sa.String(length=36), nullable=False),
        sa.Column("at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["short_links.id"],
            name=op.f("fk_link_clicks_link_id_short_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_clicks")),
    )
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_link_clicks_link_id_at"), ["link_id", "at"], unique=False
        )

    op.create_table(
        "template_versions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("allowed_time_ranges", sa.JSON(), nullable=False),
        sa.Column("created_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_template_versions_template_id_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_versions")),
    )
    with op.batch_alter_table("template_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_template_versions_template_id_version"),
            ["template_id", "version"],
            unique=True,
        )

    with op.batch_alter_table("senders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("smart_encoding", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("senders", schema=None) as batch_op:
        batch_op.drop_column("smart_encoding")

    with op.batch_alter_table("template_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_template_versions_template_id_version"))

    op.drop_table("template_versions")
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_clicks_link_id_at"))

    op.drop_table("link_clicks")
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_templates_project_id_name"))
        batch_op.drop_index(batch_op.f("ix_templates_project_id_created_at"))

    op.drop_table("templates")
    with op.batch_alter_table("short_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_short_links_project_id_task_id"))
        batch_op.drop_index(batch_op.f("ix_short_links_project_id_message_id"))
        batch_op.drop_index(batch_op.f("ix_short_links_code"))

    op.drop_table("short_links")
