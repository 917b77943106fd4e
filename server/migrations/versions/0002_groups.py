"""care-team groups: groups, members, events; group messages stored once

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_by", _ID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("joined_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("group_id", "user_id"),
    )
    op.create_index("ix_group_members_user", "group_members", ["user_id"])
    op.create_table(
        "group_events",
        sa.Column("group_id", sa.String(length=32), nullable=False),
        sa.Column("epoch", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", _ID, nullable=False),
        sa.Column("subject_id", _ID, nullable=True),
        sa.Column("detail", sa.String(length=128), server_default="", nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"]),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["subject_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("group_id", "epoch"),
    )
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("recipient_user_id", existing_type=_ID, nullable=True)
        batch.add_column(sa.Column("group_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
        batch.create_foreign_key("fk_messages_group_id", "groups", ["group_id"], ["id"])
    with op.batch_alter_table("inbox") as batch:
        batch.alter_column("frame", existing_type=sa.LargeBinary(), nullable=True)
        batch.add_column(sa.Column("key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("key")
        batch.alter_column("frame", existing_type=sa.LargeBinary(), nullable=False)
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("fk_messages_group_id", type_="foreignkey")
        batch.drop_column("body")
        batch.drop_column("group_id")
        batch.alter_column("recipient_user_id", existing_type=_ID, nullable=False)
    op.drop_table("group_events")
    op.drop_index("ix_group_members_user", table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("groups")
