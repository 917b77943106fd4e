"""The database handle: engines, transactions and dialect quirks, nothing else.

SQLite (the embedded default) allows one writer at a time, so write
transactions start with ``BEGIN IMMEDIATE`` (no lock upgrades, no deadlocks)
and wait on ``busy_timeout``; reads use a second engine with deferred
transactions so they never queue behind writers (WAL mode).

PostgreSQL uses one pool for both. Reads run in autocommit: under READ
COMMITTED, PostgreSQL's default and ours, each statement of a transaction
takes its own snapshot anyway, so wrapping reads in ``BEGIN`` ... ``COMMIT``
bought no consistency and cost two round trips per read. A connection is
checked for liveness only after it sat idle in the pool (see
:class:`Database`): SQLAlchemy's ``pool_pre_ping`` costs three round trips
per checkout (``BEGIN``, ``;``, ``ROLLBACK`` with asyncpg), more than the read
it guards.

Every engine hides statement parameters from its error messages: they would
put ciphertext and hashes into logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

logger = logging.getLogger(__name__)

KEYS_PER_QUERY = 1000
"""Keys per lookup: a pair's two parameters each stay far below SQLite's limit of 32,766 bound
variables and asyncpg's 32,767 arguments."""

KeyT = TypeVar("KeyT")


def in_chunks(keys: Sequence[KeyT]) -> Iterator[list[KeyT]]:
    """``keys`` in slices of :data:`KEYS_PER_QUERY`: one lookup each, however many a client caused."""
    for start in range(0, len(keys), KEYS_PER_QUERY):
        yield list(keys[start : start + KEYS_PER_QUERY])


PING_AFTER_IDLE_SECONDS = 10.0
"""A pooled PostgreSQL connection idle longer than this is pinged before use."""


class Database:
    """The engines of one database URL.

    On PostgreSQL, a pooled connection idle for ``ping_after_idle`` seconds
    or more is pinged when checked out, and replaced if the server dropped
    it. One in steady use is not: if the database restarts under it, the
    statement fails once, SQLAlchemy sees a disconnection and discards every
    connection of the pool opened before it, and the next checkout opens a
    fresh one. The group committer retries its transaction on a fresh
    connection itself (:mod:`server.storage.committer`).
    """

    def __init__(
        self, url: str, *, pool_size: int = 10, ping_after_idle: float = PING_AFTER_IDLE_SECONDS
    ) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.url = url
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._sqlite_engine(url, immediate=True)
            self._reader = self._sqlite_engine(url, immediate=False)
        else:
            self._writer = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True
            )
            _ping_after_idle(self._writer, ping_after_idle)
            self._reader = self._writer.execution_options(isolation_level="AUTOCOMMIT")

    @staticmethod
    def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
        engine = create_async_engine(url, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event, not the driver, open transactions.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, committed on normal exit, rolled back on error."""
        async with self._writer.begin() as connection:
            yield connection

    async def connect_writer(self) -> AsyncConnection:
        """A write connection for the caller to keep across transactions (``begin()`` on it for each).

        For a worker that writes all the time (the group committer): no pool
        checkout and no liveness ping per transaction. The caller closes it,
        and drops it after a failure.
        """
        return await self._writer.connect()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.begin() as connection:
            yield connection

    async def health(self) -> dict[str, object]:
        try:
            async with self.read() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # reported, not raised: /healthz must answer
            logger.warning("database health check failed: %s", type(exc).__name__)
            return {"backend": self.dialect, "ok": False}
        return {"backend": self.dialect, "ok": True}

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


def _ping_after_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a connection at checkout when it sat in the pool ``idle_seconds`` or more."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # just opened, or in steady use
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # The pool discards this connection and checks out another (a fresh one if need be).
            raise DisconnectionError("the database dropped an idle connection") from exc
