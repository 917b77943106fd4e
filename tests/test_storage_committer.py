"""server.storage.committer (group commit) on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from lien.protocol import errors
from server.storage import devices, messages
from server.storage.committer import GroupCommitter, InboxWrites
from server.storage.database import Database
from server.storage.schema import INBOX_MESSAGE
from server.storage.schema import devices as devices_table
from server.storage.schema import messages as messages_table
from tests.storage_helpers import add_devices, migrated

TIMEOUT = 20.0


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async with migrated(database_url) as db:
        yield db


@pytest.fixture
async def committer(database: Database) -> AsyncIterator[GroupCommitter]:
    """A committer whose worker is not started yet: the test queues jobs, then starts it."""
    group = GroupCommitter(database)
    yield group
    await group.close()


def frame_for(tag: str, device_id: int) -> Callable[[int], bytes]:
    return lambda seq: f"{tag}|{device_id}|{seq}".encode()


def queue_entries(writes: InboxWrites, tag: str, device_ids: list[int]) -> list[messages.QueuedEntry]:
    return [
        writes.add(device_id, INBOX_MESSAGE, tag, 1_000, frame_for(tag, device_id))
        for device_id in device_ids
    ]


async def inbox_of(database: Database, device_id: int) -> list[tuple[int, str]]:
    async with database.read() as connection:
        entries = await messages.read_inbox(connection, device_id, after_seq=0, limit=10_000)
    result = []
    for entry in entries:
        tag, device, seq = entry.frame.decode().split("|")
        assert int(device) == device_id and int(seq) == entry.seq  # the frame was built with its seq
        result.append((entry.seq, tag))
    return result


async def gather(*awaitables: Any) -> list[Any]:
    async with asyncio.timeout(TIMEOUT):
        return list(await asyncio.gather(*awaitables, return_exceptions=True))


# --- batching ----------------------------------------------------------------------------


async def test_jobs_queued_together_commit_in_one_batch(
    database: Database, committer: GroupCommitter
) -> None:
    [device] = await add_devices(database, 1)
    batches: list[int] = []
    committer.on_batch = batches.append

    def job(n: int) -> Any:
        async def run(connection: AsyncConnection, writes: InboxWrites) -> int:
            queue_entries(writes, f"job{n}", [device])
            return n * 10

        return run

    tasks = [asyncio.create_task(committer.run(job(n))) for n in range(6)]
    committer.start()
    assert await gather(*tasks) == [0, 10, 20, 30, 40, 50]
    assert batches == [6]
    assert await inbox_of(database, device) == [(n + 1, f"job{n}") for n in range(6)]


async def test_jobs_arriving_during_a_commit_share_the_next_one(
    database: Database, committer: GroupCommitter
) -> None:
    batches: list[int] = []
    committer.on_batch = batches.append
    running, release = asyncio.Event(), asyncio.Event()

    async def slow(connection: AsyncConnection, writes: InboxWrites) -> str:
        running.set()
        await release.wait()
        return "slow"

    async def quick(connection: AsyncConnection, writes: InboxWrites) -> str:
        return "quick"

    committer.start()
    first = asyncio.create_task(committer.run(slow))
    async with asyncio.timeout(TIMEOUT):
        await running.wait()
    rest = [asyncio.create_task(committer.run(quick)) for _ in range(4)]
    release.set()
    assert await gather(first, *rest) == ["slow"] + ["quick"] * 4
    assert batches == [1, 4]


async def test_a_lone_job_commits_at_once(database: Database, committer: GroupCommitter) -> None:
    committer.start()

    async def job(connection: AsyncConnection, writes: InboxWrites) -> int:
        result = await connection.execute(select(func.count()).select_from(devices_table))
        return int(result.scalar_one())

    async with asyncio.timeout(TIMEOUT):
        assert await committer.run(job) == 0


# --- failures ----------------------------------------------------------------------------


async def test_a_refused_job_does_not_sink_the_others(database: Database, committer: GroupCommitter) -> None:
    [device] = await add_devices(database, 1)
    batches: list[int] = []
    committer.on_batch = batches.append

    async def accepted(connection: AsyncConnection, writes: InboxWrites) -> str:
        queue_entries(writes, "ok", [device])
        return "ok"

    async def refused(connection: AsyncConnection, writes: InboxWrites) -> str:
        raise errors.DevicesMismatch(details={"missing": [device]})

    tasks = [asyncio.create_task(committer.run(job)) for job in (accepted, refused, accepted)]
    committer.start()
    first, refusal, third = await gather(*tasks)
    assert first == third == "ok"
    assert isinstance(refusal, errors.DevicesMismatch) and refusal.details == {"missing": [device]}
    assert batches == [3]  # one transaction, not retried
    assert await inbox_of(database, device) == [(1, "ok"), (2, "ok")]


def storing(device: int, calls: dict[str, int], name: str) -> Any:
    """A job that queues an inbox entry and inserts a message row, counting its runs."""

    async def run(connection: AsyncConnection, writes: InboxWrites) -> str:
        calls[name] = calls.get(name, 0) + 1
        queue_entries(writes, name, [device])
        await messages.insert_message(
            connection,
            messages.StoredMessage(
                id=f"m-{name}",
                sender_user_id=1,
                sender_device_id=device,
                recipient_user_id=1,
                client_id=name,
                created_at=1,
            ),
        )
        return name

    return run


async def message_ids(database: Database) -> list[str]:
    async with database.read() as connection:
        rows = await connection.execute(select(messages_table.c.id).order_by(messages_table.c.id))
        return list(rows.scalars())


async def test_a_failing_job_is_retried_alone_and_only_it_fails(
    database: Database, committer: GroupCommitter, caplog: pytest.LogCaptureFixture
) -> None:
    [device] = await add_devices(database, 1)
    batches: list[int] = []
    committer.on_batch = batches.append
    calls: dict[str, int] = {}

    async def bug(connection: AsyncConnection, writes: InboxWrites) -> str:
        calls["bug"] = calls.get("bug", 0) + 1
        queue_entries(writes, "bug", [device])
        raise RuntimeError("a programming error")

    jobs = (storing(device, calls, "a"), bug, storing(device, calls, "b"))
    tasks = [asyncio.create_task(committer.run(job)) for job in jobs]
    committer.start()
    a, failure, b = await gather(*tasks)
    assert (a, b) == ("a", "b")
    assert isinstance(failure, RuntimeError) and str(failure) == "a programming error"
    # The batch ran up to the failure and rolled back; then each job ran alone.
    assert calls == {"a": 2, "bug": 2, "b": 1}
    assert batches == [1, 1]
    # Nothing of the rolled-back attempt remains: each survivor's writes exist once, seqs from 1.
    assert await inbox_of(database, device) == [(1, "a"), (2, "b")]
    assert await message_ids(database) == ["m-a", "m-b"]
    assert any("write job failed" in record.getMessage() for record in caplog.records)


async def test_a_transient_failure_costs_a_retry_only(database: Database, committer: GroupCommitter) -> None:
    [device] = await add_devices(database, 1)
    batches: list[int] = []
    committer.on_batch = batches.append
    calls: dict[str, int] = {}
    store_flaky = storing(device, calls, "flaky")

    async def flaky(connection: AsyncConnection, writes: InboxWrites) -> str:
        if "flaky" not in calls:
            calls["flaky"] = 1
            await messages.insert_message(  # a write that the rollback must undo
                connection,
                messages.StoredMessage(
                    id="m-torn", sender_user_id=1, sender_device_id=device, recipient_user_id=1,
                    client_id="torn", created_at=1,
                ),
            )  # fmt: skip
            raise ConnectionResetError("transient")
        return str(await store_flaky(connection, writes))

    jobs = (storing(device, calls, "a"), flaky, storing(device, calls, "b"))
    tasks = [asyncio.create_task(committer.run(job)) for job in jobs]
    committer.start()
    assert await gather(*tasks) == ["a", "flaky", "b"]
    assert batches == [1, 1, 1]
    assert await inbox_of(database, device) == [(1, "a"), (2, "flaky"), (3, "b")]
    assert await message_ids(database) == ["m-a", "m-b", "m-flaky"]


@pytest.mark.postgres
async def test_a_connection_the_database_dropped_costs_one_attempt_only(
    postgres_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker keeps its connection between transactions; a dropped one is replaced, nothing lost."""
    async with migrated(postgres_database_url) as database:
        committer = GroupCommitter(database)
        try:
            [device] = await add_devices(database, 1)
            committer.start()
            calls: dict[str, int] = {}
            assert await committer.run(storing(device, calls, "a")) == "a"
            admin = await asyncpg.connect(postgres_database_url.replace("+asyncpg", ""))
            try:
                terminated = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            finally:
                await admin.close()
            assert terminated >= 1  # the worker's own connection among them
            assert await gather(committer.run(storing(device, calls, "b"))) == ["b"]
            assert calls == {"a": 1, "b": 2}  # the attempt on the dead connection, then alone on a new one
            assert await inbox_of(database, device) == [(1, "a"), (2, "b")]
            assert any("retrying each alone" in record.getMessage() for record in caplog.records)
        finally:
            await committer.close()


# --- acks --------------------------------------------------------------------------------


async def test_acks_of_several_devices_in_one_transaction_each_purge_up_to_their_own_seq(
    database: Database, committer: GroupCommitter
) -> None:
    first, second, third = await add_devices(database, 3)
    committer.start()

    async def fill(connection: AsyncConnection, writes: InboxWrites) -> None:
        for tag in ("m1", "m2", "m3", "m4"):
            queue_entries(writes, tag, [first, second, third])

    await committer.run(fill)

    async def ack(connection: AsyncConnection, writes: InboxWrites) -> None:
        writes.ack(first, 3)
        writes.ack(second, 1)
        writes.ack(second, 2)  # the highest ack of a device wins

    await committer.run(ack)

    async def ack_back(connection: AsyncConnection, writes: InboxWrites) -> None:
        writes.ack(first, 1)  # an older ack purges nothing more and does not move the ack back

    await committer.run(ack_back)
    assert await inbox_of(database, first) == [(4, "m4")]
    assert await inbox_of(database, second) == [(3, "m3"), (4, "m4")]
    assert [tag for _, tag in await inbox_of(database, third)] == ["m1", "m2", "m3", "m4"]
    async with database.read() as connection:
        acked = {device: await messages.acked_seq(connection, device) for device in (first, second, third)}
    assert acked == {first: 3, second: 2, third: 0}


async def test_entries_for_a_removed_device_are_dropped_and_the_others_written_with_acks(
    database: Database, committer: GroupCommitter
) -> None:
    kept, removed, acking = await add_devices(database, 3)
    committer.start()

    async def fill(connection: AsyncConnection, writes: InboxWrites) -> None:
        queue_entries(writes, "m1", [kept, removed, acking])
        queue_entries(writes, "m2", [acking])

    await committer.run(fill)
    async with database.write() as connection:
        await devices.remove_device(connection, removed, now=2)

    async def mixed(connection: AsyncConnection, writes: InboxWrites) -> list[messages.QueuedEntry]:
        writes.ack(acking, 1)  # an ack and new entries for one device in one transaction
        return queue_entries(writes, "m3", [removed, kept, acking])

    entries = await committer.run(mixed)
    assert [entry.seq for entry in entries] == [0, 2, 3]  # seq 0: never written
    assert not entries[0].written and entries[1].written
    assert await inbox_of(database, kept) == [(1, "m1"), (2, "m3")]
    assert await inbox_of(database, acking) == [(2, "m2"), (3, "m3")]
    async with database.read() as connection:
        assert await messages.acked_seq(connection, acking) == 1
        assert await messages.inbox_depth(connection, removed) == 0


async def test_acks_queued_alone_purge_and_remember_like_acks_in_a_transaction(
    database: Database, committer: GroupCommitter
) -> None:
    first, second = await add_devices(database, 2)
    committer.start()

    async def fill(connection: AsyncConnection, writes: InboxWrites) -> None:
        for tag in ("m1", "m2", "m3"):
            queue_entries(writes, tag, [first, second])

    await committer.run(fill)
    batches: list[int] = []
    committer.on_batch = batches.append
    await committer.close()  # queue them all before a worker takes any: one batch
    acks = [committer.ack(first, 2), committer.ack(second, 1), committer.ack(first, 1)]
    tasks = [asyncio.create_task(ack) for ack in acks]
    await asyncio.sleep(0)
    committer.start()
    assert await gather(*tasks) == [None, None, None]
    assert batches == [3]
    assert await inbox_of(database, first) == [(3, "m3")]
    assert await inbox_of(database, second) == [(2, "m2"), (3, "m3")]
    async with database.read() as connection:
        assert await messages.acked_seq(connection, first) == 2  # the older ack did not move it back
        assert await messages.acked_seq(connection, second) == 1
    await gather(committer.ack(second, 3))
    assert await inbox_of(database, second) == []


async def test_an_ack_queued_with_other_jobs_commits_in_their_transaction(
    database: Database, committer: GroupCommitter
) -> None:
    [device] = await add_devices(database, 1)
    committer.start()
    await committer.run(lambda _connection, writes: _queued(writes, "m1", [device]))
    await committer.close()
    batches: list[int] = []
    committer.on_batch = batches.append
    tasks = [
        asyncio.create_task(committer.ack(device, 1)),
        asyncio.create_task(committer.run(lambda _connection, writes: _queued(writes, "m2", [device]))),
    ]
    await asyncio.sleep(0)
    committer.start()
    await gather(*tasks)
    assert batches == [2]
    assert await inbox_of(database, device) == [(2, "m2")]
    async with database.read() as connection:
        assert await messages.acked_seq(connection, device) == 1


async def _queued(writes: InboxWrites, tag: str, device_ids: list[int]) -> None:
    queue_entries(writes, tag, device_ids)


@pytest.mark.postgres
async def test_on_postgresql_a_batch_of_acks_alone_opens_no_transaction(
    postgres_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One statement in autocommit: no BEGIN, no COMMIT (a transaction here fails the test)."""
    async with migrated(postgres_database_url) as database:
        committer = GroupCommitter(database)
        try:
            [device] = await add_devices(database, 1)
            committer.start()
            await committer.run(lambda _connection, writes: _queued(writes, "m1", [device]))
            await committer.run(lambda _connection, writes: _queued(writes, "m2", [device]))

            def no_transaction(_self: Any) -> Any:
                raise AssertionError("an ack-only batch began a transaction")

            monkeypatch.setattr("server.storage.committer._HeldConnection.transaction", no_transaction)
            await gather(committer.ack(device, 1))
            monkeypatch.undo()
            assert await inbox_of(database, device) == [(2, "m2")]
            # The held connection carries on with transactions afterwards.
            await committer.run(lambda _connection, writes: _queued(writes, "m3", [device]))
            assert await inbox_of(database, device) == [(2, "m2"), (3, "m3")]
        finally:
            await committer.close()


# --- bulk jobs ---------------------------------------------------------------------------


async def test_bulk_items_of_a_transaction_reach_one_call_in_queue_order(
    database: Database, committer: GroupCommitter
) -> None:
    [device] = await add_devices(database, 1)
    batches: list[int] = []
    committer.on_batch = batches.append
    calls: list[list[str]] = []

    async def tag_all(connection: AsyncConnection, writes: InboxWrites, items: list[str]) -> list[str]:
        calls.append(items)
        queue_entries(writes, "bulk", [device])
        return [item.upper() for item in items]

    async def plain(connection: AsyncConnection, writes: InboxWrites) -> str:
        return "plain"

    tasks = [
        asyncio.create_task(committer.run_bulk(tag_all, "x")),
        asyncio.create_task(committer.run(plain)),
        asyncio.create_task(committer.run_bulk(tag_all, "y")),
    ]
    committer.start()
    assert await gather(*tasks) == ["X", "plain", "Y"]
    assert calls == [["x", "y"]]
    assert batches == [3]
    assert await inbox_of(database, device) == [(1, "bulk")]


async def test_a_failing_bulk_call_is_retried_item_by_item(
    database: Database, committer: GroupCommitter, caplog: pytest.LogCaptureFixture
) -> None:
    [device] = await add_devices(database, 1)
    calls: list[list[str]] = []

    async def fragile(connection: AsyncConnection, writes: InboxWrites, items: list[str]) -> list[str]:
        calls.append(items)
        queue_entries(writes, "+".join(items), [device])
        if "bad" in items:
            raise RuntimeError("a programming error")
        return items

    tasks = [asyncio.create_task(committer.run_bulk(fragile, item)) for item in ("a", "bad", "b")]
    committer.start()
    a, failure, b = await gather(*tasks)
    assert (a, b) == ("a", "b")
    assert isinstance(failure, RuntimeError)
    assert calls == [["a", "bad", "b"], ["a"], ["bad"], ["b"]]
    assert await inbox_of(database, device) == [(1, "a"), (2, "b")]


async def test_close_fails_jobs_still_queued(database: Database) -> None:
    committer = GroupCommitter(database)  # never started

    async def job(connection: AsyncConnection, writes: InboxWrites) -> None:
        raise AssertionError("must not run")

    task = asyncio.create_task(committer.run(job))
    await asyncio.sleep(0)  # let it queue
    await committer.close()
    with pytest.raises(RuntimeError, match="shutting down"):
        async with asyncio.timeout(TIMEOUT):
            await task


# --- inbox writes ------------------------------------------------------------------------------


async def test_inbox_entries_get_consecutive_seqs_in_job_order(
    database: Database, committer: GroupCommitter
) -> None:
    d1, d2, d3 = await add_devices(database, 3)
    queued: dict[str, list[messages.QueuedEntry]] = {}

    def job(tag: str, targets: list[int]) -> Any:
        async def run(connection: AsyncConnection, writes: InboxWrites) -> None:
            queued[tag] = queue_entries(writes, tag, targets)

        return run

    tasks = [
        asyncio.create_task(committer.run(job("A", [d2, d1, d2]))),
        asyncio.create_task(committer.run(job("B", [d1, 999_999, d3]))),  # 999999: no such device
        asyncio.create_task(committer.run(job("C", [d2]))),
    ]
    committer.start()
    await gather(*tasks)

    assert [entry.seq for entry in queued["A"]] == [1, 1, 2]
    assert [entry.seq for entry in queued["B"]] == [2, 0, 1]
    assert [entry.seq for entry in queued["C"]] == [3]
    for entries in queued.values():
        for entry in entries:
            expected = frame_for(entry.message_id, entry.device_id)(entry.seq) if entry.written else b""
            assert entry.frame == expected
    dropped = queued["B"][1]
    assert not dropped.written and dropped.seq == 0  # an entry for a missing device is left unwritten

    assert await inbox_of(database, d1) == [(1, "A"), (2, "B")]
    assert await inbox_of(database, d2) == [(1, "A"), (2, "A"), (3, "C")]
    assert await inbox_of(database, d3) == [(1, "B")]

    # The next transaction carries on from each device's counter.
    async def more(connection: AsyncConnection, writes: InboxWrites) -> list[messages.QueuedEntry]:
        return queue_entries(writes, "D", [d3, d1])

    async with asyncio.timeout(TIMEOUT):
        later = await committer.run(more)
    assert [(entry.device_id, entry.seq) for entry in later] == [(d3, 2), (d1, 3)]


async def test_acks_on_one_node_and_entries_on_another_never_deadlock(
    database: Database, database_url: str
) -> None:
    """Acks of many devices lock them in id order, like every writer: no deadlock, nothing lost."""
    device_ids = await add_devices(database, 6)
    other_database = Database(database_url)
    writer, acker = GroupCommitter(database), GroupCommitter(other_database)
    writer.start()
    acker.start()
    rounds = 30
    try:
        for n in range(rounds):
            order = list(reversed(device_ids)) if n % 2 else device_ids[n % 3 :] + device_ids[: n % 3]
            tasks = [asyncio.create_task(writer.run(lambda _c, writes, o=order: _queued(writes, "m", o)))]
            # Acks of every device up to the previous round's seq, queued in the opposite order.
            tasks += [asyncio.create_task(acker.ack(device_id, n)) for device_id in reversed(order)]
            assert await gather(*tasks) == [None] * len(tasks)
    finally:
        await writer.close()
        await acker.close()
        await other_database.close()
    for device_id in device_ids:
        assert [seq for seq, _ in await inbox_of(database, device_id)] == [rounds]
        async with database.read() as connection:
            assert await messages.acked_seq(connection, device_id) == rounds - 1


async def test_two_nodes_on_overlapping_devices(database: Database, database_url: str) -> None:
    """Two committers on two engines (two nodes) never deadlock; each device's seqs stay contiguous."""
    device_ids = await add_devices(database, 5)
    other_database = Database(database_url)
    nodes = {"n1": GroupCommitter(database), "n2": GroupCommitter(other_database)}
    for node in nodes.values():
        node.start()
    jobs_per_node = 40

    def job(tag: str, targets: list[int]) -> Any:
        async def run(connection: AsyncConnection, writes: InboxWrites) -> None:
            queue_entries(writes, tag, targets)

        return run

    def targets_of(node_index: int, n: int) -> list[int]:
        # Overlapping subsets in shifting orders (never sorted), so the nodes contend for the same rows.
        rotation = (n * (node_index + 2)) % len(device_ids)
        rotated = device_ids[rotation:] + device_ids[:rotation]
        return list(reversed(rotated)) if n % 2 else rotated[: 2 + n % 4]

    try:
        tasks = []
        for n in range(jobs_per_node):  # interleaved submissions: both nodes always have work
            for index, (name, node) in enumerate(nodes.items()):
                tasks.append(asyncio.create_task(node.run(job(f"{name}:{n:03d}", targets_of(index, n)))))
            if n % 5 == 0:
                await asyncio.sleep(0)  # let batches of different sizes form
        results = await gather(*tasks)
        assert all(result is None for result in results), [r for r in results if r is not None]
    finally:
        for node in nodes.values():
            await node.close()
        await other_database.close()

    expected_counts = {device_id: 0 for device_id in device_ids}
    for index in range(len(nodes)):
        for n in range(jobs_per_node):
            for device_id in targets_of(index, n):
                expected_counts[device_id] += 1
    for device_id in device_ids:
        inbox = await inbox_of(database, device_id)
        assert [seq for seq, _ in inbox] == list(range(1, expected_counts[device_id] + 1))
        for name in nodes:
            # One worker per node commits its jobs in the order they were queued.
            mine = [tag for _, tag in inbox if tag.startswith(name)]
            assert mine == sorted(mine)
        async with database.read() as connection:
            row = (
                await connection.execute(
                    select(devices_table.c.next_seq).where(devices_table.c.id == device_id)
                )
            ).scalar_one()
        assert row == expected_counts[device_id]
