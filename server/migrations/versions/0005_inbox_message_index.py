"""index inbox entries by message, for retention (a group body goes when no entry points at it)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbox_message", "inbox", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_inbox_message", table_name="inbox")
