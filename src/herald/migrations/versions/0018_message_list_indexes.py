"""messages: an index per filter of the message list, each ending in (created_at, id)

The cabinet's Messages page filters by phone, group, task, template and e-mail address and
reads 50 rows newest first. On SQLite without statistics the planner walked a project's
messages by time for any of these (a phone nobody has: 1 s at 1,000,000 messages). With an
index ending in (created_at, id) per filter a page is read in order and stops after 50 rows;
(project_id, phone) and (project_id, group_id) are their prefixes, so they go. The e-mail
filter gets an index on the address in lower case; the channel filter one on
(project_id, channel), to tell a rare channel and start from its deliveries; the list's link
counts one on short_links.message_id. Figures: bench/cabinet_messages.py.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORDERED = ("phone", "group_id", "task_id", "template_id")


def upgrade() -> None:
    for column in _ORDERED:
        op.create_index(
            f"ix_messages_project_id_{column}_created_at_id",
            "messages",
            ["project_id", column, "created_at", "id"],
        )
    op.drop_index("ix_messages_project_id_phone", table_name="messages")
    op.drop_index("ix_messages_project_id_group_id", table_name="messages")
    op.create_index(
        "ix_deliveries_project_id_lower_to_address",
        "deliveries",
        ["project_id", sa.text("lower(to_address)")],
    )
    op.create_index("ix_deliveries_project_id_channel", "deliveries", ["project_id", "channel"])
    op.create_index("ix_short_links_message_id", "short_links", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_short_links_message_id", table_name="short_links")
    op.drop_index("ix_deliveries_project_id_channel", table_name="deliveries")
    op.drop_index("ix_deliveries_project_id_lower_to_address", table_name="deliveries")
    op.create_index("ix_messages_project_id_group_id", "messages", ["project_id", "group_id"])
    op.create_index("ix_messages_project_id_phone", "messages", ["project_id", "phone"])
    for column in reversed(_ORDERED):
        op.drop_index(f"ix_messages_project_id_{column}_created_at_id", table_name="messages")
