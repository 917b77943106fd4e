"""ledger: hash-chained log, signed heads, signed receipts, ciphertext hashes

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.add_column(sa.Column("sha256", sa.LargeBinary(length=32), nullable=True))
        batch.add_column(sa.Column("device_time", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("signature", sa.LargeBinary(length=64), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("body_sha256", sa.LargeBinary(length=32), nullable=True))
    op.create_table(
        "message_copies",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("device_id", _ID, nullable=False),
        sa.Column("sha256", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.PrimaryKeyConstraint("message_id", "device_id", "sha256"),
    )
    op.create_table(
        "ledger",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("ref", sa.String(length=48), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_ledger_ref", "ledger", ["ref"])
    head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": bytes(32)}])
    op.create_table(
        "ledger_signed_heads",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signed_at", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )


def downgrade() -> None:
    op.drop_table("ledger_signed_heads")
    op.drop_table("ledger_head")
    op.drop_index("ix_ledger_ref", table_name="ledger")
    op.drop_table("ledger")
    op.drop_table("message_copies")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("body_sha256")
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("signature")
        batch.drop_column("device_time")
        batch.drop_column("sha256")
