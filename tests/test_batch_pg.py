"""server.storage.batch_pg: the committer's writes sent straight to asyncpg, on a real PostgreSQL.

What the module relies on and the rest of the suite would not notice if it
broke: the statements run inside the SQLAlchemy transaction (they roll back
with it), and their texts do not change with the number of rows (prepared
once per connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text

from lien import ledger as chain
from server.storage import batch_pg, devices, ledger, messages
from server.storage.committer import InboxWrites, finish_writes
from server.storage.database import Database
from server.storage.schema import INBOX_MESSAGE
from server.storage.schema import devices as devices_table
from server.storage.schema import inbox as inbox_table
from server.storage.schema import ledger as ledger_table
from tests.storage_helpers import add_devices, migrated

pytestmark = pytest.mark.postgres


class Abort(Exception):
    pass


@pytest.fixture
async def database(postgres_database_url: str) -> AsyncIterator[Database]:
    async with migrated(postgres_database_url) as db:
        yield db


def queue(writes: InboxWrites, device_ids: list[int], tag: str) -> None:
    for device_id in device_ids:
        writes.add(device_id, INBOX_MESSAGE, tag, 1_000, lambda seq: f"{tag}|{seq}".encode())


def record() -> chain.LedgerEntry:
    return chain.DeviceRemoved(user="owner", device=1, at=5)


async def test_writes_sent_first_in_a_transaction_roll_back_with_it(database: Database) -> None:
    """No SQLAlchemy statement before them: the transaction must still have begun."""
    [device_id] = await add_devices(database, 1)
    with pytest.raises(Abort):
        async with database.write() as connection:
            writes = InboxWrites()
            queue(writes, [device_id], "lost")
            writes.record(record(), "d1")
            await finish_writes(connection, writes, now=5)
            raise Abort
    async with database.read() as connection:
        assert await messages.inbox_depth(connection, device_id) == 0
        next_seq = await connection.scalar(
            select(devices_table.c.next_seq).where(devices_table.c.id == device_id)
        )
        assert next_seq == 0
        assert await connection.scalar(select(func.count()).select_from(ledger_table)) == 0


async def test_writes_after_sqlalchemy_statements_share_their_transaction(database: Database) -> None:
    [device_id] = await add_devices(database, 1)
    async with database.write() as connection:
        await connection.execute(devices_table.update().values(last_seen_at=77))
        writes = InboxWrites()
        queue(writes, [device_id], "kept")
        await finish_writes(connection, writes, now=5)
        # SQLAlchemy sees the asyncpg insert: one connection, one transaction.
        assert await connection.scalar(select(func.count()).select_from(inbox_table)) == 1
    async with database.read() as connection:
        assert await messages.inbox_depth(connection, device_id) == 1


async def test_statement_texts_do_not_change_with_the_number_of_rows(database: Database) -> None:
    device_ids = await add_devices(database, 6)
    counts = []
    async with database.write() as connection:
        for size in range(1, 7):
            writes = InboxWrites()
            queue(writes, device_ids[:size], f"m{size}")
            writes.ack(device_ids[0], size - 1)
            for _ in range(size):
                writes.record(record(), "d1")
            await finish_writes(connection, writes, now=5)
            await ledger.append(connection, [(record(), "d2")] * size, now=5)
            await devices.device_ids_of(connection, [1] * size)
            await messages.insert_messages_reading_devices(
                connection, [message(f"m{size}-{n}", device_ids[0]) for n in range(size)], [1] * size
            )
            prepared = await connection.execute(text("SELECT count(*) FROM pg_prepared_statements"))
            counts.append(prepared.scalar_one())
    assert counts[0] >= 6  # number, write, lock head, append, devices of, messages (and this count)
    assert counts == [counts[0]] * 6


def message(message_id: str, device_id: int, client_id: str | None = None) -> messages.StoredMessage:
    return messages.StoredMessage(
        id=message_id,
        sender_user_id=1,
        sender_device_id=device_id,
        recipient_user_id=1,
        client_id=client_id or message_id,
        created_at=1,
    )


async def test_a_withdrawn_message_frees_its_client_id_for_a_transaction_waiting_on_it(
    postgres_database_url: str,
) -> None:
    """The envelope store inserts rows before checking them, and deletes those it then refuses.

    Another node inserting the same (device, client id) meanwhile waits for that
    transaction, then stores its own row: the refused one never existed for it.
    """
    async with migrated(postgres_database_url) as first, migrated(postgres_database_url) as second:
        [device_id] = await add_devices(first, 1)
        live = {device_id}

        async def insert_later() -> set[str]:
            async with second.write() as connection:
                inserted, devices_read = await messages.insert_messages_reading_devices(
                    connection, [message("m-second", device_id, "c-1")], [1]
                )
                assert set(devices_read) == live
                return inserted

        async with first.write() as connection:
            inserted, _ = await messages.insert_messages_reading_devices(
                connection, [message("m-first", device_id, "c-1")], []
            )
            assert inserted == {"m-first"}
            waiting = asyncio.create_task(insert_later())
            async with asyncio.timeout(20):
                while not await _someone_waits_for_a_lock(first):
                    assert not waiting.done()
                    await asyncio.sleep(0.01)
            await messages.withdraw_messages(connection, ["m-first"])
        async with asyncio.timeout(20):
            assert await waiting == {"m-second"}
        async with first.read() as connection:
            stored = await messages.messages_by_client_ids(connection, [(device_id, "c-1")])
        assert [found.id for found in stored.values()] == ["m-second"]


async def _someone_waits_for_a_lock(database: Database) -> bool:
    async with database.read() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def _chain_is_lien_ledgers(database: Database) -> int:
    """Check every ledger row against lien.ledger's definition (§10.2); the number of rows."""
    async with database.read() as connection:
        rows = (await connection.execute(select(ledger_table).order_by(ledger_table.c.seq))).all()
        head = (await connection.execute(text("SELECT seq, hash FROM ledger_head WHERE id = 1"))).one()
    previous = chain.GENESIS
    for expected_seq, row in enumerate(rows, start=1):
        assert row.seq == expected_seq
        assert bytes(row.digest) == chain.digest(bytes(row.entry))
        assert bytes(row.hash) == chain.chain_hash(previous, bytes(row.digest)), f"seq {row.seq}"
        previous = bytes(row.hash)
    assert (head.seq, bytes(head.hash)) == (len(rows), previous)
    return len(rows)


async def test_the_chain_is_lien_ledgers_and_gapless_when_two_nodes_append_at_once(
    postgres_database_url: str,
) -> None:
    """Two writers (two nodes) race for the head: each waits for its lock and chains after the other."""
    async with migrated(postgres_database_url) as first, migrated(postgres_database_url) as second:
        device_ids = await add_devices(first, 4)

        async def transactions(database: Database, tag: str) -> None:
            for number in range(15):
                async with database.write() as connection:
                    writes = InboxWrites()
                    queue(writes, device_ids[number % 2 :: 2], f"{tag}{number}")
                    for _ in range(1 + number % 3):
                        writes.record(chain.DeviceRemoved(user=tag, device=number, at=number), f"d{number}")
                    await finish_writes(connection, writes, now=number)
                    if number % 5 == 0:  # also the appends of sign-ins and device removals
                        await ledger.append(connection, [(record(), "d9")], now=number)

        await asyncio.gather(transactions(first, "a"), transactions(second, "b"))
        assert await _chain_is_lien_ledgers(first) == 2 * (sum(1 + n % 3 for n in range(15)) + 3)


async def test_a_transaction_without_ledger_entries_leaves_the_head_alone(database: Database) -> None:
    [device_id] = await add_devices(database, 1)
    async with database.write() as connection:
        writes = InboxWrites()
        queue(writes, [device_id], "quiet")
        await finish_writes(connection, writes, now=5)
    assert await _chain_is_lien_ledgers(database) == 0
    async with database.write() as connection:
        writes = InboxWrites()
        writes.record(record(), "d1")
        await finish_writes(connection, writes, now=6)
    assert await _chain_is_lien_ledgers(database) == 1


async def test_receipt_facts_look_messages_and_copies_up_by_key_even_with_a_plan_made_when_tables_were_empty(
    database: Database,
) -> None:
    """A plan made while ``messages`` and ``message_copies`` were empty must not scan them once they grow.

    Prepared statements keep their generic plan until statistics change; on a server
    where they are not gathered yet (a new deployment, no autovacuum), a plan chosen for
    empty tables would otherwise read every row of both for every batch of receipts.
    """
    [device_id] = await add_devices(database, 1)
    device = f"ARRAY[{device_id}]::bigint[]"
    arguments = f"('{{m1}}'::varchar[], {device}, '{{m1}}'::varchar[], {device}, '{{1}}')"
    async with database.write() as connection:
        driver = await batch_pg.driver_of(connection)
        await driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await driver.execute(f"PREPARE facts AS {batch_pg._RECEIPT_FACTS}")
        await driver.fetch(f"EXPLAIN EXECUTE facts{arguments}")  # the generic plan, made now
        await driver.execute(
            "INSERT INTO messages"
            " (id, sender_user_id, sender_device_id, recipient_user_id, client_id, created_at)"
            " SELECT 'm' || n, 1, $1, 1, 'c' || n, n FROM generate_series(1, 20000) AS n",
            device_id,
        )
        await driver.execute(
            "INSERT INTO message_copies (message_id, device_id, sha256)"
            " SELECT 'm' || n, $1, sha256(n::text::bytea) FROM generate_series(1, 20000) AS n",
            device_id,
        )
        plan = "\n".join(row[0] for row in await driver.fetch(f"EXPLAIN EXECUTE facts{arguments}"))
        rows = await driver.fetch(f"EXECUTE facts{arguments}")
        await driver.execute("DEALLOCATE facts")
    assert "Seq Scan on messages" not in plan, plan
    assert "Seq Scan on message_copies" not in plan, plan
    assert sorted(row["fact"] for row in rows) == ["a", "d", "h", "o"]
