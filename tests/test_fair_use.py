"""Fair use: per-account message rate and connection limits, across nodes, and nothing lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import lien
from lien.protocol import frames
from server.ratelimit import RedisRateLimiter
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
