"""directory: unlisted profiles and accent-free search columns

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.normalise import normalise

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("unlisted", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("norm_name", sa.String(length=300), server_default="", nullable=False))
        batch.add_column(sa.Column("norm_profession", sa.String(length=128), server_default="", nullable=False))
        batch.add_column(sa.Column("norm_organisation", sa.String(length=128), server_default="", nullable=False))
        batch.add_column(sa.Column("norm_city", sa.String(length=128), server_default="", nullable=False))
        batch.create_index("ix_users_directory", ["norm_name", "id"])
    users = sa.table(
        "users",
        sa.column("id"),
        sa.column("username"),
        sa.column("display_name"),
        sa.column("profession"),
        sa.column("organisation"),
        sa.column("city"),
        sa.column("norm_name"),
        sa.column("norm_profession"),
        sa.column("norm_organisation"),
        sa.column("norm_city"),
    )
    connection = op.get_bind()
    for row in connection.execute(sa.select(users)).fetchall():
        connection.execute(
            users.update()
            .where(users.c.id == row.id)
            .values(
                norm_name=normalise(f"{row.display_name} {row.username}"),
                norm_profession=normalise(row.profession),
                norm_organisation=normalise(row.organisation),
                norm_city=normalise(row.city),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_directory")
        for column in ("norm_city", "norm_organisation", "norm_profession", "norm_name", "unlisted"):
            batch.drop_column(column)
