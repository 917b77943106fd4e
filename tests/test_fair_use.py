"""Fair use: per-account message rate and connection limits, across nodes, and nothing lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

import lien
from lien.protocol import frames
from server.ratelimit import LEASE_SECONDS, Grant, InMemoryRateLimiter, RedisRateLimiter, lease_size
from server.settings import Settings
from tests.inprocess import PASSWORD, FrameSocket, frame_socket, register, serving
from tests.redis_server import RedisProcess


@pytest.fixture
async def slow_node(tmp_path: Path) -> AsyncIterator[str]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'lien.db'}",
        data_dir=tmp_path,
        message_rate=5.0,
        message_burst=4,
        max_connections_per_account=2,
    )
    async with serving(settings) as url:
        yield url


async def test_over_the_limit_a_send_is_refused_with_a_retry_delay(slow_node: str) -> None:
    async with httpx.AsyncClient(base_url=slow_node) as http:
        alice, _ = await register(http, "alice")
        bob, _ = await register(http, "bob")
    async with frame_socket(slow_node, alice.token) as socket:
        for n in range(7):
            copy = frames.Copy(device=bob.device, body=b"ciphertext %d" % n)
            await socket.send(frames.Send(id=f"m{n}", to="bob", copies=[copy]))
        answers: dict[str, frames.Accepted | frames.Error] = {}
        while len(answers) < 7:
            frame = await socket.receive()
            if isinstance(frame, frames.Accepted):
                answers[frame.id] = frame
            elif isinstance(frame, frames.Error) and frame.ref is not None:
                answers[frame.ref] = frame
    refused = [answers[f"m{n}"] for n in range(7) if isinstance(answers[f"m{n}"], frames.Error)]
    accepted = [f"m{n}" for n in range(7) if isinstance(answers[f"m{n}"], frames.Accepted)]
    assert accepted == ["m0", "m1", "m2", "m3"]  # the burst, in order; the tail refused, in order
    assert [error.code for error in refused] == ["rate-limited"] * 3
    assert all(error.retry_after is not None and 0 < error.retry_after <= 0.2 + 1e-9 for error in refused)


async def test_sends_written_before_a_refusal_was_heard_do_not_overtake_the_refused_ones(
    slow_node: str,
) -> None:
    async with httpx.AsyncClient(base_url=slow_node) as http:
        alice, _ = await register(http, "alice")
        bob, _ = await register(http, "bob")

    def send(client_id: str) -> frames.Send:
        return frames.Send(
            id=client_id, to="bob", copies=[frames.Copy(device=bob.device, body=client_id.encode())]
        )

    async def answers(socket: FrameSocket, count: int) -> dict[str, str]:
        found: dict[str, str] = {}
        while len(found) < count:
            frame = await socket.receive()
            if isinstance(frame, frames.Accepted):
                found[frame.id] = "accepted"
            elif isinstance(frame, frames.Error) and frame.ref is not None:
                found[frame.ref] = frame.code
        return found

    async with frame_socket(slow_node, alice.token) as socket:
        for n in range(6):
            await socket.send(send(f"m{n}"))
        first = await answers(socket, 6)
        assert [first[f"m{n}"] for n in range(6)] == ["accepted"] * 4 + ["rate-limited"] * 2
        # The bucket refills (5 tokens/s) while m6, written before the client heard of the
        # refusal, is on its way: it is held back all the same, not stored before m4 and m5.
        await asyncio.sleep(0.8)
        await socket.send(send("m6"))
        late = (await answers(socket, 1))["m6"]
        assert late == "rate-limited", "m6 overtook the refused m4 and m5"
        # The client sends the refused ones again first: the hold ends, the bucket has tokens.
        for client_id in ("m4", "m5", "m6"):
            await socket.send(send(client_id))
        assert await answers(socket, 3) == {"m4": "accepted", "m5": "accepted", "m6": "accepted"}
    async with frame_socket(slow_node, bob.token) as socket:
        delivered = [await socket.receive_until(frames.Deliver) for _ in range(7)]
    assert [message.body for message in delivered] == [f"m{n}".encode() for n in range(7)]


async def test_a_flooding_sender_is_throttled_loses_nothing_and_does_not_hold_up_another(
    slow_node: str, tmp_path: Path
) -> None:
    flood = await lien.Client.register(slow_node, "automate.labo", PASSWORD, keystore=tmp_path / "flood")
    colleague = await lien.Client.register(slow_node, "dr.urgence", PASSWORD, keystore=tmp_path / "colleague")
    doctor = await lien.Client.register(slow_node, "dr.martin", PASSWORD, keystore=tmp_path / "doctor")
    for client in (flood, colleague, doctor):
        await client.connect()
    try:
        flooding = asyncio.gather(*(flood.send_text("dr.martin", f"résultat {n}") for n in range(12)))
        urgent = [await colleague.send_text("dr.martin", f"urgent {n}") for n in range(3)]
        received = [await doctor.receive(timeout=30) for _ in range(15)]
        sent = await flooding
        texts = [message.text for message in received]
        assert sorted(texts) == sorted(
            [f"résultat {n}" for n in range(12)] + [f"urgent {n}" for n in range(3)]
        )
        assert len({message.id for message in received}) == 15 and set(sent) | set(urgent) == {
            message.id for message in received
        }
        # The colleague's messages were not queued behind the throttled flood.
        last_urgent = max(texts.index(f"urgent {n}") for n in range(3))
        assert last_urgent < texts.index("résultat 11")
    finally:
        for client in (flood, colleague, doctor):
            await client.close()


async def test_an_account_may_connect_only_so_many_devices_at_once(slow_node: str) -> None:
    async with httpx.AsyncClient(base_url=slow_node) as http:
        first, _ = await register(http, "alice")
        grants = []
        for _ in range(2):
            response = await http.post(
                "/v1/login",
                json={"username": "alice", "password": PASSWORD, "device": _device_json()},
            )
            grants.append(response.json()["token"])
    async with (
        frame_socket(slow_node, first.token),
        frame_socket(slow_node, grants[0]),
        frame_socket(slow_node) as third,
    ):
        await third.send(frames.Auth(v=1, token=grants[1]))
        refused = await third.receive()
        assert isinstance(refused, frames.Error) and refused.code == "too-many-connections"
        assert refused.retry_after is not None and refused.retry_after > 0
        assert await third.close_code() == 4429
        # At the cap, a device already connected may still take over its own connection.
        async with frame_socket(slow_node, grants[0]) as again:
            await again.send(frames.Ping(id=5))
            assert (await again.receive_until(frames.Pong)).id == 5


def _device_json() -> dict[str, object]:
    import msgspec

    from tests.keys import new_device

    return msgspec.to_builtins(new_device().registration)  # type: ignore[no-any-return]


async def test_the_redis_bucket_is_shared_by_every_node(redis_process: RedisProcess) -> None:
    first = RedisRateLimiter(redis_process.url, rate=1.0, burst=5)
    second = RedisRateLimiter(redis_process.url, rate=1.0, burst=5)
    try:
        assert (await first.take(42, 3)).granted == 3
        grant = await second.take(42, 3)  # the other node sees the same bucket
        assert grant.granted == 2 and 0 < grant.retry_after <= 1.0
        assert (await second.take(7, 5)).granted == 5  # another account is untouched
    finally:
        await first.close()
        await second.close()


async def _stored_tokens(redis_process: RedisProcess, account_id: int) -> float:
    """The shared bucket as Redis holds it: changes only when a node runs the script."""
    client = Redis.from_url(redis_process.url)
    try:
        return float(await client.hget(f"lien:rate:{account_id}", "tokens") or "nan")
    finally:
        await client.aclose()


async def test_a_node_spends_tokens_it_took_ahead_before_asking_redis_again(
    redis_process: RedisProcess,
) -> None:
    now = [1000.0]
    limiter = RedisRateLimiter(redis_process.url, rate=20.0, burst=60, clock=lambda: now[0])
    extra = lease_size(20.0, 60)
    assert extra == 5
    try:
        assert (await limiter.take(42, 1)).granted == 1
        after_first = await _stored_tokens(redis_process, 42)
        assert after_first <= 60 - 1 - extra + 1  # the lease was taken from the shared bucket
        for _ in range(extra):
            assert await limiter.take(42, 1) == Grant(1, 0.0)
        assert await _stored_tokens(redis_process, 42) == after_first  # served from the lease
        assert (await limiter.take(42, 1)).granted == 1  # lease spent: Redis again
        after_second = await _stored_tokens(redis_process, 42)
        assert after_second != after_first
        now[0] += LEASE_SECONDS + 0.01  # the new lease lapses unspent
        assert (await limiter.take(42, 1)).granted == 1
        assert await _stored_tokens(redis_process, 42) != after_second
    finally:
        await limiter.close()


async def test_leases_never_let_an_account_exceed_its_bucket_across_nodes(
    redis_process: RedisProcess,
) -> None:
    rate, burst = 0.001, 32  # no refill to speak of within the test
    nodes = [RedisRateLimiter(redis_process.url, rate=rate, burst=burst) for _ in range(2)]
    extra = lease_size(rate, burst)
    assert extra == 1
    try:
        grants = [await nodes[n % 2].take(7, 3) for n in range(20)]
        granted = sum(grant.granted for grant in grants)
        assert granted <= burst
        assert granted >= burst - 2 * extra  # at most one lease per node left unspent
        refused = [grant for grant in grants if grant.granted < 3]
        assert refused and all(grant.retry_after > 0 for grant in refused)
    finally:
        for node in nodes:
            await node.close()


async def test_a_partial_grant_counts_the_lease_and_what_the_bucket_had_left(
    redis_process: RedisProcess,
) -> None:
    limiter = RedisRateLimiter(redis_process.url, rate=0.001, burst=16)  # a lease of 1
    try:
        assert await limiter.take(9, 1) == Grant(1, 0.0)  # 2 taken from the bucket: 14 left, 1 leased
        grant = await limiter.take(9, 20)
        assert grant.granted == 15 and grant.retry_after > 0
        assert (await limiter.take(9, 1)).granted == 0  # nothing leased, nothing left
    finally:
        await limiter.close()


async def test_password_attempts_are_shared_by_every_node_and_right_ones_given_back(
    redis_process: RedisProcess,
) -> None:
    """The password bucket (by username, no lease) as two nodes see it through Redis."""
    nodes = [
        RedisRateLimiter(redis_process.url, rate=0.001, burst=3, prefix="lien:password", lease=False)
        for _ in range(2)
    ]
    try:
        assert [(await nodes[n % 2].take("dr.blanc", 1)).granted for n in range(3)] == [1, 1, 1]
        refused = await nodes[1].take("dr.blanc", 1)
        assert refused.granted == 0 and refused.retry_after > 0
        assert (await nodes[0].take("bob", 1)).granted == 1  # another account is untouched
        await nodes[0].give_back("dr.blanc", 1)  # the owner typed it right on node 1
        assert (await nodes[1].take("dr.blanc", 1)).granted == 1  # node 2 sees it given back
        await nodes[0].give_back("dr.blanc", 5)
        assert [(await nodes[0].take("dr.blanc", 1)).granted for _ in range(4)] == [
            1,
            1,
            1,
            0,
        ]  # never past the burst
        await nodes[0].give_back("nobody", 1)  # nothing taken, nothing to give back
        client = Redis.from_url(redis_process.url)
        try:
            assert await client.exists("lien:password:nobody") == 0
            assert await client.exists("lien:rate:dr.blanc") == 0  # not the message buckets' keys
        finally:
            await client.aclose()
    finally:
        for node in nodes:
            await node.close()


async def test_the_in_process_buckets_give_back_up_to_the_burst() -> None:
    limiter = InMemoryRateLimiter(rate=0.001, burst=2)
    assert (await limiter.take("dr.blanc", 2)).granted == 2
    assert (await limiter.take("dr.blanc", 1)).granted == 0
    await limiter.give_back("dr.blanc", 5)
    assert (await limiter.take("dr.blanc", 3)).granted == 2
