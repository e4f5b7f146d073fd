"""bots: two-way SMS bots, conversations, opt-out suppressions, contact activity

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.store.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("account_sid", sa.String(length=100), nullable=False),
        sa.Column("credentials_encrypted", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=True),
        sa.Column("webhook_url", sa.String(length=1000), nullable=True),
        sa.Column("reply_timeout", sa.Float(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("default_reply", sa.Text(), nullable=True),
        sa.Column("help_text", sa.Text(), nullable=True),
        sa.Column("created_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_bots_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bots")),
    )
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bots_project_id_phone"), ["project_id", "phone"], unique=True
        )

    op.create_table(
        "contact_activity",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("last_inbound_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_contact_activity_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "project_id", "channel", "address", name=op.f("pk_contact_activity")
        ),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("from_address", sa.String(length=200), nullable=False),
        sa.Column("to_address", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("created_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_suppressions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
    )
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_suppressions_project_id_channel_to_address_from_address"),
            ["project_id", "channel", "to_address", "from_address"],
            unique=True,
        )

    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("bot_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("unread", sa.Integer(), nullable=False),
        sa.Column("last_message_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_direction", sa.String(length=10), nullable=True),
        sa.Column("last_body", sa.Text(), nullable=True),
        sa.Column("created_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", herald.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.id"], name=op.f("fk_conversations_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_conversations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversations_bot_id_channel_address"),
            ["bot_id", "channel", "address"],
            unique=True,
        )
        batch_op.create_index(
            batch_op.f("ix_conversations_bot_id_last_message_at"),
            ["bot_id", "last_message_at"],
            unique=False,
        )

    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=True),
        sa.Column("provider_sid", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("created_at", herald.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_messages")),
    )
    with op.batch_alter_table("conversation_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_messages_conversation_id_id"),
            ["conversation_id", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_conversation_messages_provider_sid"), ["provider_sid"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("conversation_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_messages_provider_sid"))
        batch_op.drop_index(batch_op.f("ix_conversation_messages_conversation_id_id"))

    op.drop_table("conversation_messages")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_bot_id_last_message_at"))
        batch_op.drop_index(batch_op.f("ix_conversations_bot_id_channel_address"))

    op.drop_table("conversations")
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_suppressions_project_id_channel_to_address_from_address")
        )

    op.drop_table("suppressions")
    op.drop_table("contact_activity")
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bots_project_id_phone"))

    op.drop_table("bots")
