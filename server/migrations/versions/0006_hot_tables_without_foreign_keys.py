"""no foreign keys from the tables every delivery writes (messages, inbox, message_copies)

Each delivery inserted a message row, an inbox entry and a copy hash whose six
foreign-key checks (a trigger and an index lookup each) cost PostgreSQL about
as much as the inserts themselves. The rows are only ever written by the
committer for users and devices it has just read in the same transaction,
users and devices are never deleted (a device is marked removed), and
retention deletes copies and entries before their messages; so the checks
proved nothing the code does not already guarantee. ``messages.group_id``
keeps its key (one check per group message, not per delivery).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# SQLite's keys have no names: batch mode reflects them under these, then rebuilds the table without.
_NAMES = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}

# Children first: a table is rebuilt (copied, dropped, renamed back) only once no other table's key
# still points at it, except receipts -> messages, handled by _receipts_set_aside.
_DROPPED = {
    "message_copies": ["message_copies_message_id_fkey", "message_copies_device_id_fkey"],
    "inbox": ["inbox_device_id_fkey"],
    "messages": [
        "messages_sender_user_id_fkey",
        "messages_sender_device_id_fkey",
        "messages_recipient_user_id_fkey",
    ],
}


@contextmanager
def _receipts_set_aside() -> Iterator[None]:
    """On SQLite, rebuilding ``messages`` drops it, which the receipts' key to it forbids while
    receipts exist (``PRAGMA foreign_keys`` cannot be turned off inside the migration's
    transaction). The receipts wait in a temporary table meanwhile, then come back unchanged."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    op.execute("CREATE TEMP TABLE receipts_0006 AS SELECT * FROM receipts")
    op.execute("DELETE FROM receipts")
    yield
    op.execute("INSERT INTO receipts SELECT * FROM receipts_0006")
    op.execute("DROP TABLE receipts_0006")


def upgrade() -> None:
    for table, names in _DROPPED.items():
        with contextlib.ExitStack() as stack:
            if table == "messages":
                stack.enter_context(_receipts_set_aside())
            with op.batch_alter_table(table, naming_convention=_NAMES) as batch:
                for name in names:
                    batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with _receipts_set_aside(), op.batch_alter_table("messages") as batch:
        batch.create_foreign_key("messages_sender_user_id_fkey", "users", ["sender_user_id"], ["id"])
        batch.create_foreign_key("messages_sender_device_id_fkey", "devices", ["sender_device_id"], ["id"])
        batch.create_foreign_key("messages_recipient_user_id_fkey", "users", ["recipient_user_id"], ["id"])
    with op.batch_alter_table("inbox") as batch:
        batch.create_foreign_key("inbox_device_id_fkey", "devices", ["device_id"], ["id"])
    with op.batch_alter_table("message_copies") as batch:
        batch.create_foreign_key("message_copies_message_id_fkey", "messages", ["message_id"], ["id"])
        batch.create_foreign_key("message_copies_device_id_fkey", "devices", ["device_id"], ["id"])
