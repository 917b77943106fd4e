"""Upgrading a database that holds data: migration 0006 rebuilds three tables on SQLite."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, func, insert, select, text

from server.storage.database import Database
from server.storage.migrate import alembic_config, upgrade_to_head
from server.storage.schema import inbox, message_copies, messages, receipts, users


def _migrate(step: Callable[[Config, str], None], revision: str) -> Callable[[Connection], None]:
    def migrate(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        step(config, revision)

    return migrate


async def assert_one_row_each(database: Database) -> None:
    async with database.read() as connection:
        for table in (users, messages, inbox, message_copies, receipts):
            assert await connection.scalar(select(func.count()).select_from(table)) == 1, table.name


async def test_upgrading_past_0006_keeps_every_row_and_drops_only_the_hot_tables_keys(
    database_url: str,
) -> None:
    database = Database(database_url)
    try:
        async with database.write() as connection:
            await connection.run_sync(_migrate(command.upgrade, "0005"))
        async with database.write() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, display_name, created_at) "
                    "VALUES (1, 'ines', 'x', 'Inès', 1)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO devices (id, user_id, identity_signing_key, identity_exchange_key,"
                    " signed_prekey_id, signed_prekey, signed_prekey_signature, created_at, last_seen_at)"
                    " VALUES (1, 1, :k, :k, 1, :k, :s, 1, 1)"
                ),
                {"k": bytes(32), "s": bytes(64)},
            )
            await connection.execute(
                insert(messages).values(
                    id="m1",
                    sender_user_id=1,
                    sender_device_id=1,
                    recipient_user_id=1,
                    client_id="c1",
                    created_at=1,
                )
            )
            await connection.execute(
                insert(inbox).values(device_id=1, seq=1, kind=1, message_id="m1", frame=b"f", created_at=1)
            )
            await connection.execute(
                insert(message_copies).values(message_id="m1", device_id=1, sha256=bytes(32))
            )
            await connection.execute(
                insert(receipts).values(message_id="m1", device_id=1, kind="read", user_id=1, at=2)
            )
        await upgrade_to_head(database)
        await assert_one_row_each(database)
        async with database.write() as connection:  # and back, and up again
            await connection.run_sync(_migrate(command.downgrade, "0005"))
        await assert_one_row_each(database)
        await upgrade_to_head(database)
        await assert_one_row_each(database)
        async with database.write() as connection:
            # No key any more from the inbox to devices; receipts still check their message.
            await connection.execute(
                insert(inbox).values(device_id=99, seq=1, kind=1, message_id="m1", frame=b"f", created_at=1)
            )
    finally:
        await database.close()
