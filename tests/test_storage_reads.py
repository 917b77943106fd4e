"""The reads every socket and request starts with, and how PostgreSQL reads use the pool.

A socket's authentication and its start take one query each
(``accounts.live_session_owner``, ``devices.socket_start``): checked
here against every way a token stops standing for a device, on SQLite and
PostgreSQL. On PostgreSQL, reads run in autocommit while writes stay
transactions, and a pooled connection is pinged only after it sat idle
(``server/storage/database.py``): a dropped idle connection is replaced
without an error; one in steady use fails once, and the next read works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from lien.protocol.api import OneTimePrekey
from server.storage import accounts, devices
from server.storage.database import Database
from server.storage.migrate import upgrade_to_head
from server.storage.schema import devices as devices_table
from tests.databases import ADMIN_DSN
from tests.storage_helpers import add_devices, migrated

NOW = 1_000_000


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async with migrated(database_url) as db:
        yield db


async def _session(database: Database, device_id: int, token_hash: bytes, *, expires_at: int) -> None:
    async with database.write() as connection:
        owner = await devices.get_device(connection, device_id)
        assert owner is not None
        await accounts.create_session(
            connection,
            user_id=owner.user_id,
            device_id=device_id,
            token_hash=token_hash,
            now=NOW,
            expires_at=expires_at,
        )


async def test_a_token_stands_for_its_live_session_on_a_live_device_only(database: Database) -> None:
    live, revoked, expired, removed = await add_devices(database, 4, username="dr.roux")
    for device_id, tag in [(live, b"L"), (revoked, b"R"), (expired, b"E"), (removed, b"D")]:
        await _session(database, device_id, tag * 32, expires_at=NOW - 1 if tag == b"E" else NOW + 60_000)
    async with database.write() as connection:
        await accounts.revoke_device_sessions(connection, revoked, NOW)
        # Removed without revoking its session first: the device's removal alone must refuse the token.
        await devices.remove_device(connection, removed, NOW)

    async with database.read() as connection:
        owner = await accounts.live_session_owner(connection, b"L" * 32, NOW)
        refused = [
            await accounts.live_session_owner(connection, tag * 32, NOW) for tag in (b"R", b"E", b"D", b"?")
        ]
    assert owner is not None
    assert (owner.username, owner.session.device_id, owner.session.expires_at) == (
        "dr.roux",
        live,
        NOW + 60_000,
    )
    assert refused == [None, None, None, None]


async def test_a_socket_starts_from_its_acked_seq_last_seq_and_prekeys_left(database: Database) -> None:
    device_id, other = await add_devices(database, 2)
    async with database.write() as connection:
        await devices.add_prekeys(
            connection, device_id, [OneTimePrekey(id=n, key=bytes([n]) * 32) for n in (1, 2, 3)]
        )
        await connection.execute(
            update(devices_table).where(devices_table.c.id == device_id).values(acked_seq=7, next_seq=9)
        )
    async with database.read() as connection:
        assert await devices.socket_start(connection, device_id) == devices.SocketStart(7, 9, 3)
        assert await devices.socket_start(connection, other) == devices.SocketStart(0, 0, 0)
        assert await devices.socket_start(connection, 9_999) == devices.SocketStart(0, 0, 0)


# --- PostgreSQL: autocommit reads, liveness pings after idle -------------------------------------

_ONE_TRANSACTION = text("SELECT statement_timestamp() - transaction_timestamp() < interval '25 ms'")
"""True when the statement runs in a transaction of its own (autocommit), false after a 50 ms one."""


async def _one_statement_per_transaction(database: Database, *, write: bool) -> bool:
    block = database.write() if write else database.read()
    async with block as connection:
        await connection.execute(text("SELECT pg_sleep(0.05)"))  # a later statement starts later
        return bool(await connection.scalar(_ONE_TRANSACTION))


@pytest.mark.postgres
async def test_postgres_reads_run_in_autocommit_and_writes_in_a_transaction(
    postgres_database_url: str,
) -> None:
    async with migrated(postgres_database_url) as database:
        assert await _one_statement_per_transaction(database, write=False) is True
        assert await _one_statement_per_transaction(database, write=True) is False
        # After the pool lent the same connection to reads, writes are still transactions.
        assert await _one_statement_per_transaction(database, write=True) is False


def _database_name(url: str) -> str:
    return url.rpartition("/")[2]


async def _drop_every_connection_to(url: str) -> None:
    """Terminate the server side of every connection to this database, and wait until they are gone."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        name = _database_name(url)
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name):
            await asyncio.sleep(0.01)
    finally:
        await admin.close()


async def _backend_pid(database: Database) -> int:
    async with database.read() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


@pytest.mark.postgres
async def test_an_idle_connection_the_server_dropped_is_replaced_without_an_error(
    postgres_database_url: str,
) -> None:
    database = Database(postgres_database_url, ping_after_idle=0.0)  # every checkout counts as idle
    try:
        await upgrade_to_head(database)
        before = await _backend_pid(database)
        await _drop_every_connection_to(postgres_database_url)
        assert await _backend_pid(database) != before
    finally:
        await database.close()


@pytest.mark.postgres
async def test_a_connection_in_steady_use_that_the_server_dropped_fails_once_then_reads_work(
    postgres_database_url: str,
) -> None:
    database = Database(postgres_database_url, ping_after_idle=3600.0)  # never pinged
    try:
        await upgrade_to_head(database)
        before = await _backend_pid(database)
        await _drop_every_connection_to(postgres_database_url)
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(database)
        assert failed.value.connection_invalidated
        assert await _backend_pid(database) != before
    finally:
        await database.close()
