"""Two real server processes sharing one Redis and one database: fan-out, backlog, faults, secrecy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

import lien
from lien.protocol.api import KeyBundles
from tests.inprocess import PASSWORD, bearer, register
from tests.keys import new_device
from tests.live import LiveNode
from tests.redis_server import RedisProcess

pytestmark = [pytest.mark.live, pytest.mark.slow]


@pytest.fixture
def two_nodes(
    database_url: str, redis_process: RedisProcess, live_nodes: list[LiveNode], tmp_path: Path
) -> list[LiveNode]:
    for name in ("node-1", "node-2"):
        node = LiveNode(database_url=database_url, data_dir=tmp_path, redis_url=redis_process.url, name=name)
        live_nodes.append(node.start())
    return live_nodes


@contextlib.asynccontextmanager
async def signed_up(urls: str | list[str], username: str, keystore: Path) -> AsyncIterator[lien.Client]:
    client = await lien.Client.register(urls, username, PASSWORD, keystore=keystore)
    try:
        await client.connect()
        yield client
    finally:
        await client.close()


async def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def next_event_of(client: lien.Client, kind: type, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            if isinstance(event, kind):
                return event


async def test_devices_on_two_nodes_exchange_messages_receipts_and_typing(
    two_nodes: list[LiveNode], tmp_path: Path
) -> None:
    first, second = two_nodes
    async with (
        signed_up(first.url, "alice", tmp_path / "alice") as alice,
        signed_up(second.url, "bob", tmp_path / "bob") as bob,
    ):
        message_id = await alice.send_text("bob", "bonjour depuis le nœud 1")
        received = await bob.receive(timeout=20)
        assert (received.id, received.text) == (message_id, "bonjour depuis le nœud 1")
        await bob.mark_read(received)
        kinds = [(await next_event_of(alice, lien.Receipt)).kind for _ in range(2)]
        assert kinds == ["decrypted", "read"]

        reply = await bob.send_text("alice", "bien reçu sur le nœud 2")
        assert (await alice.receive(timeout=20)).id == reply
        await bob.set_typing("alice", True)
        typing = await next_event_of(alice, lien.Typing)
        assert (typing.sender, typing.active) == ("bob", True)
        await alice.watch(["bob"])
        assert await next_event_of(alice, lien.PresenceChange) == lien.PresenceChange("bob", True)


async def test_a_200_message_backlog_arrives_in_order_once(two_nodes: list[LiveNode], tmp_path: Path) -> None:
    first, second = two_nodes
    async with signed_up(first.url, "alice", tmp_path / "alice") as alice:
        bob = await lien.Client.register(second.url, "bob", PASSWORD, keystore=tmp_path / "bob")
        await bob.close()
        sent = [await alice.send_text("bob", f"résultat n°{n}") for n in range(200)]
    async with await lien.Client.login(second.url, "bob", PASSWORD, keystore=tmp_path / "bob") as bob:
        await bob.connect()
        received = [await bob.receive(timeout=30) for _ in sent]
        assert [m.id for m in received] == sent
        assert [m.text for m in received] == [f"résultat n°{n}" for n in range(200)]
        with pytest.raises(TimeoutError):
            await bob.receive(timeout=1.0)  # and nothing twice


async def test_a_node_killed_mid_stream_loses_nothing_accepted(
    two_nodes: list[LiveNode], tmp_path: Path
) -> None:
    first, second = two_nodes
    urls = [first.url, second.url]  # both clients start on node 1 and fail over to node 2
    async with (
        signed_up(urls, "alice", tmp_path / "alice") as alice,
        signed_up(urls, "bob", tmp_path / "bob") as bob,
    ):
        accepted: list[str] = []
        received: list[str] = []

        async def send_all() -> None:
            for n in range(150):
                accepted.append(await alice.send_text("bob", f"dose {n}"))

        async def receive_all() -> None:
            while len(received) < 150:
                received.append((await bob.receive(timeout=60)).id)

        sender = asyncio.create_task(send_all())
        receiver = asyncio.create_task(receive_all())
        await wait_for(lambda: len(accepted) >= 40)
        first.kill()
        await asyncio.wait_for(asyncio.gather(sender, receiver), 120)
        assert sorted(received) == sorted(accepted)
        assert len(set(received)) == 150
        with pytest.raises(TimeoutError):
            await bob.receive(timeout=1.0)


async def test_delivery_resumes_by_itself_after_redis_restarts(
    two_nodes: list[LiveNode], redis_process: RedisProcess, tmp_path: Path
) -> None:
    first, second = two_nodes
    async with (
        signed_up(first.url, "alice", tmp_path / "alice") as alice,
        signed_up(second.url, "bob", tmp_path / "bob") as bob,
    ):
        before = [await alice.send_text("bob", f"avant {n}") for n in range(10)]
        assert [(await bob.receive(timeout=20)).id for _ in before] == before

        redis_process.stop()
        during = [await alice.send_text("bob", f"pendant {n}") for n in range(10)]  # accepted: stored
        redis_process.start()
        after = [await alice.send_text("bob", f"après {n}") for n in range(10)]
        got = [(await bob.receive(timeout=60)).id for _ in range(20)]
        assert sorted(got) == sorted(during + after)
        assert [m for m in got if m in during] == during  # in order
        with pytest.raises(TimeoutError):
            await bob.receive(timeout=1.0)


async def test_concurrent_claims_across_nodes_never_share_a_one_time_prekey(
    two_nodes: list[LiveNode],
) -> None:
    first, _ = two_nodes
    async with httpx.AsyncClient(base_url=first.url) as http:
        await register(http, "bob", device=new_device(prekeys=40))
        claimer, _ = await register(http, "claimer")

    async def claim(url: str) -> int | None:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.post("/v1/users/bob/keys/claim", headers=bearer(claimer.token))
            assert response.status_code == 200, response.text
            (bundle,) = msgspec.json.decode(response.content, type=KeyBundles).bundles
            return None if bundle.prekey is None else bundle.prekey.id

    claimed = await asyncio.gather(*(claim(node.url) for node in two_nodes for _ in range(25)))
    handed = [prekey_id for prekey_id in claimed if prekey_id is not None]
    assert len(handed) == len(set(handed)) == 40
    assert claimed.count(None) == 10


async def test_a_canary_text_appears_in_no_database_log_or_redis_traffic(
    two_nodes: list[LiveNode], redis_process: RedisProcess, tmp_path: Path, database_url: str
) -> None:
    canary = "CANARY-Kaliémie-7,9-Lefèvre-f00dfeed"
    captured: list[bytes] = []
    monitor = aioredis.Redis.from_url(redis_process.url)
    first, second = two_nodes

    async def watch_redis() -> None:
        async with monitor.monitor() as stream:
            async for command in stream.listen():
                captured.append(str(command).encode())

    watcher = asyncio.create_task(watch_redis())
    try:
        async with (
            signed_up(first.url, "alice", tmp_path / "alice") as alice,
            signed_up(second.url, "bob", tmp_path / "bob") as bob,
        ):
            await alice.send_text("bob", canary)
            assert (await bob.receive(timeout=20)).text == canary
            await wait_for(lambda: any(b"PUBLISH" in line for line in captured))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await monitor.aclose()

    needles = [canary.encode(), canary.encode("utf-16-le"), base64.b64encode(canary.encode())]
    haystacks = {"redis traffic": b"\n".join(captured)}
    for node in two_nodes:
        haystacks[f"{node.name} log"] = node.log().encode()
    for path in tmp_path.rglob("*"):
        if path.is_file() and "keystore" not in path.name and path.suffix not in {".lien"}:
            haystacks[str(path)] = path.read_bytes()
    if database_url.startswith("postgresql"):
        haystacks["postgres dump"] = await dump_postgres(database_url)
    assert haystacks["redis traffic"], "the Redis monitor saw nothing: the check would prove nothing"
    for where, content in haystacks.items():
        for needle in needles:
            assert needle not in content, f"plaintext found in {where}"


async def dump_postgres(database_url: str) -> bytes:
    """Every row of every table, as text."""
    import asyncpg

    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        rows = []
        for table in tables:
            for row in await connection.fetch(f'SELECT * FROM "{table["tablename"]}"'):
                rows.append(repr(tuple(row)).encode())
        return b"\n".join(rows)
    finally:
        await connection.close()


async def test_a_12_member_group_over_two_nodes_reads_every_message_once_in_one_order(
    two_nodes: list[LiveNode], tmp_path: Path
) -> None:
    names = [f"member{n:02d}" for n in range(12)]
    members: list[lien.Client] = []
    try:
        for index, name in enumerate(names):
            node = two_nodes[index % 2]
            client = await lien.Client.register(node.url, name, PASSWORD, keystore=tmp_path / name)
            await client.connect()
            members.append(client)
        team = await members[0].create_group("Réunion de concertation", names[1:])

        async def talk(client: lien.Client) -> list[str]:
            return [await client.send_text(team, f"{client.username}: point {n}") for n in range(4)]

        senders = members[:4]
        sent = {
            client.username: ids
            for client, ids in zip(senders, await asyncio.gather(*map(talk, senders)), strict=True)
        }
        everything = {message for ids in sent.values() for message in ids}
        orders: dict[str, list[str]] = {}
        for client in members:
            expected = everything - set(sent.get(client.username, []))
            received = [(await client.receive(timeout=60)).id for _ in expected]
            assert set(received) == expected and len(received) == len(expected)
            with pytest.raises(TimeoutError):
                await client.receive(timeout=0.3)
            orders[client.username] = received
        # One order for all: any two messages reach every device that gets both in the same order.
        position = {name: {m: i for i, m in enumerate(order)} for name, order in orders.items()}
        for first in orders.values():
            for second_name, second in position.items():
                common = [m for m in first if m in second]
                assert common == sorted(common, key=second.__getitem__), second_name
        # And each sender's own messages keep the order it sent them in.
        for ids in sent.values():
            for name, order in position.items():
                seen = [m for m in ids if m in order]
                assert seen == sorted(seen, key=order.__getitem__), name
    finally:
        for client in members:
            await client.close()
