"""Group commit: write jobs that arrive together share one transaction.

While one transaction runs, new jobs queue; the next transaction takes all of
them (up to ``max_batch``). Nobody waits for a timer, so a lone job commits
at once and a burst pays for one commit instead of many (DESIGN.md, "durable
and fast at once").

A job receives the open connection and an :class:`InboxWrites` collector, and
returns its result. Jobs queue inbox entries on the collector instead of
writing them: at the end of the transaction the committer writes every queued
entry and ack at once (:func:`server.storage.messages.write_inboxes`), locking
the devices in id order, so that two transactions (two workers, two nodes)
never deadlock and each device's sequence numbers commit in order. Jobs must
not update ``devices`` rows themselves, for the same reason.

A bulk job (:meth:`GroupCommitter.run_bulk`) handles all the items of its kind
in a transaction in one call, in queue order, so that its statements are paid
once per transaction instead of once per item.

Acks (:meth:`GroupCommitter.ack`) join whatever transaction comes next. When
a batch holds nothing else, on PostgreSQL, they are one statement in
autocommit (:func:`server.storage.batch_pg.apply_acks`): no ``BEGIN``, no
``COMMIT``, one round trip instead of four. Every delivered message is acked,
so at low rates about half the transactions are acks alone.

Contract: a job raises a :class:`LienError` only *before* it writes anything,
so the batch can carry on without it. Any other exception rolls the whole
transaction back and every job of the batch is retried alone, so one bad job
cannot sink the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from lien import ledger as chain
from lien.protocol.errors import LienError
from server.storage import batch_pg, ledger, messages
from server.storage.database import Database

logger = logging.getLogger(__name__)

_TRANSIENT_STATES = frozenset({"40001", "40P01"})
"""PostgreSQL's serialization_failure and deadlock_detected."""
_TRANSIENT_RETRIES = 2


def _sqlstate(exc: Exception) -> str | None:
    """PostgreSQL's error code: from SQLAlchemy's wrapper, or from asyncpg (``batch_pg``'s statements)."""
    found = (
        getattr(exc.orig, "sqlstate", None) if isinstance(exc, DBAPIError) else getattr(exc, "sqlstate", None)
    )
    return found if isinstance(found, str) else None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


T = TypeVar("T")


class InboxWrites:
    """Inbox entries and acks queued by one transaction's jobs, written together just before it commits."""

    def __init__(self) -> None:
        self.entries: list[messages.QueuedEntry] = []
        self.acks: dict[int, int] = {}
        self.ledger: list[tuple[chain.LedgerEntry, str | None]] = []
        self.copy_hashes: list[tuple[str, int, bytes]] = []
        """(message id, device id, SHA-256) of ciphertexts stored for devices, inserted in one statement."""

    def record(self, entry: chain.LedgerEntry, ref: str | None) -> None:
        """Append ``entry`` to the ledger when the transaction ends (after the inbox writes)."""
        self.ledger.append((entry, ref))

    def add(
        self,
        device_id: int,
        kind: int,
        message_id: str,
        created_at: int,
        build_frame: Callable[[int], bytes],
        *,
        key: bytes | None = None,
        store_frame: bool = True,
    ) -> messages.QueuedEntry:
        """Queue an entry; its ``seq`` and ``frame`` are set when the transaction writes it."""
        entry = messages.QueuedEntry(
            device_id=device_id,
            kind=kind,
            message_id=message_id,
            created_at=created_at,
            build_frame=build_frame,
            key=key,
            store_frame=store_frame,
        )
        self.entries.append(entry)
        return entry

    def ack(self, device_id: int, up_to: int) -> None:
        """Purge the device's inbox up to ``up_to`` and remember the ack, when the transaction ends."""
        self.acks[device_id] = max(up_to, self.acks.get(device_id, 0))


Job = Callable[[AsyncConnection, InboxWrites], Awaitable[T]]
ItemT = TypeVar("ItemT")
BulkJob = Callable[[AsyncConnection, InboxWrites, list[ItemT]], Awaitable[list[T]]]
"""Jobs of one kind run together: one call with every item of the transaction, one result per item.

It refuses an item by returning the refusal as that item's result, never by
raising (the other items carry on); anything it raises sinks the transaction
like a job's exception.
"""


class _HeldConnection:
    """One worker's connection, kept from one transaction to the next.

    Checking a connection out of the pool costs some CPU (and a ping when it
    sat idle), once per transaction; a worker that writes all the time keeps
    its own instead. After any failure it is closed, and the next transaction
    opens a fresh one: a connection the database dropped (restart,
    terminated backend) costs one failed attempt, which the committer
    retries.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._connection: AsyncConnection | None = None

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """The connection with no transaction open: each statement sent to its driver commits alone."""
        if self._connection is None:
            self._connection = await self._database.connect_writer()
        try:
            yield self._connection
        except BaseException:
            await self.close()
            raise

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.autocommit() as connection, connection.begin():
            yield connection

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


@dataclass
class _Pending:
    job: Job[Any] | None
    future: asyncio.Future[Any]
    bulk: BulkJob[Any, Any] | None = None
    item: Any = None
    ack: tuple[int, int] | None = None
    """(device id, seq) for an ack: purge that device's inbox up to seq."""
    outcome: tuple[bool, Any] | None = field(default=None)


class GroupCommitter:
    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 256,
        workers: int = 1,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._database = database
        self._clock = clock
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self.on_batch: Callable[[int], None] | None = None
        """Called with each committed batch's size (metrics)."""

    @property
    def worker_count(self) -> int:
        """How many transactions may be open at once."""
        return self._workers

    @property
    def waiting(self) -> int:
        """Jobs queued and not yet taken by a transaction."""
        return self._queue.qsize()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(), name=f"group-commit-{n}") for n in range(self._workers)
            ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("storage is shutting down"))

    async def run(self, job: Job[T]) -> T:
        """Run ``job`` in the next shared transaction; returns once it has committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(job, future))
        return await future

    async def run_bulk(self, bulk: BulkJob[ItemT, T], item: ItemT) -> T:
        """Hand ``item`` to ``bulk`` in the next shared transaction, with every item of its kind there.

        The statements a kind of write needs are then paid once per
        transaction rather than once per item.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(None, future, bulk, item))
        return await future

    async def ack(self, device_id: int, up_to: int) -> None:
        """Purge the device's inbox up to ``up_to`` and remember the ack; returns once committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(None, future, ack=(device_id, up_to)))
        await future

    async def _work(self) -> None:
        held = _HeldConnection(self._database)
        try:
            while True:
                await self._take_and_commit(held)
        finally:
            await held.close()

    async def _take_and_commit(self, held: _HeldConnection) -> None:
        batch = [await self._queue.get()]
        while len(batch) < self._max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        try:
            await self._commit_with_retry(held, batch)
        except Exception:
            logger.warning("group commit of %d jobs failed; retrying each alone", len(batch), exc_info=True)
            for pending in batch:
                try:
                    await self._commit_together(held, [pending])
                except Exception as exc:
                    logger.exception("write job failed")
                    if not pending.future.done():
                        pending.future.set_exception(exc)
        for pending in batch:
            if pending.future.done() or pending.outcome is None:
                continue
            succeeded, value = pending.outcome
            if succeeded:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)

    async def _commit_with_retry(self, held: _HeldConnection, batch: list[_Pending]) -> None:
        """A deadlock or serialization failure is transient: run the batch again before splitting it."""
        for attempt in range(_TRANSIENT_RETRIES + 1):
            try:
                await self._commit_together(held, batch)
                return
            except Exception as exc:
                state = _sqlstate(exc)
                if attempt == _TRANSIENT_RETRIES or state not in _TRANSIENT_STATES:
                    raise
                logger.info("transient failure (SQLSTATE %s) on a batch of %d; retrying", state, len(batch))

    async def _commit_together(self, held: _HeldConnection, batch: list[_Pending]) -> None:
        if self._database.is_postgres and all(pending.ack is not None for pending in batch):
            await self._commit_acks_alone(held, batch)
            return
        async with held.transaction() as connection:
            writes = InboxWrites()
            kinds: dict[BulkJob[Any, Any], list[_Pending]] = {}
            for pending in batch:
                pending.outcome = None
                if pending.future.cancelled():
                    continue
                if pending.ack is not None:
                    writes.ack(*pending.ack)
                    pending.outcome = (True, None)
                    continue
                if pending.bulk is not None:
                    kinds.setdefault(pending.bulk, []).append(pending)
                    continue
                assert pending.job is not None
                try:
                    pending.outcome = (True, await pending.job(connection, writes))
                except LienError as refusal:
                    pending.outcome = (False, refusal)
            for bulk, members in kinds.items():
                results = await bulk(connection, writes, [pending.item for pending in members])
                for pending, result in zip(members, results, strict=True):
                    pending.outcome = (True, result)
            await finish_writes(connection, writes, self._clock())
        if self.on_batch is not None:
            self.on_batch(len(batch))

    async def _commit_acks_alone(self, held: _HeldConnection, batch: list[_Pending]) -> None:
        """A batch of nothing but acks, on PostgreSQL: one statement, no transaction around it."""
        acks = InboxWrites()
        for pending in batch:
            assert pending.ack is not None
            acks.ack(*pending.ack)
            pending.outcome = (True, None)
        async with held.autocommit() as connection:
            await batch_pg.apply_acks(await batch_pg.autocommit_driver_of(connection), acks.acks)
        if self.on_batch is not None:
            self.on_batch(len(batch))


async def finish_writes(connection: AsyncConnection, writes: InboxWrites, now: int) -> None:
    """Write what the transaction's jobs queued: inbox entries, acks, copy hashes, ledger records.

    Devices are locked before the ledger head, as by every other writer.
    """
    if connection.dialect.name != "postgresql":
        await messages.write_inboxes(connection, writes.entries, writes.acks, writes.copy_hashes)
        await ledger.append(connection, writes.ledger, now)
        return
    driver = await batch_pg.driver_of(connection)
    first_seqs, head = await batch_pg.number_devices(
        driver, messages.entry_counts(writes.entries), writes.acks, lock_head=bool(writes.ledger)
    )
    ledger_rows: list[dict[str, Any]] = []
    appended = ledger.Appended(0, b"")
    if head is not None:
        ledger_rows, appended = ledger.chain_rows(writes.ledger, ledger.Appended(*head), now)
    await batch_pg.write(
        driver,
        inbox_rows=messages.number_entries(writes.entries, first_seqs),
        acks=writes.acks,
        copy_hashes=writes.copy_hashes,
        ledger_rows=ledger_rows,
        head=(appended.seq, appended.hash),
    )
