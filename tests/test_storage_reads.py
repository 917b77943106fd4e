"""How PostgreSQL reads use the pool (``server/storage/database.py``).

Reads run in autocommit while writes stay transactions, and a pooled
connection is pinged only after it sat idle: a dropped idle connection is
replaced without an error; one in steady use fails once, and the next read
works.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from server.storage.database import Database
from server.storage.migrate import upgrade_to_head
from tests.databases import ADMIN_DSN
from tests.storage_helpers import migrated

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
