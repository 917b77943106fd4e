"""server.broker: the same tests over InMemoryBroker and RedisBroker (a real redis-server)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from server.broker import Broker, BrokerUnavailable, InMemoryBroker, RedisBroker, make_broker
from tests.redis_server import RedisProcess

TIMEOUT = 5.0

BrokerFactory = Callable[[], Awaitable[Broker]]


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def wait_until_async(predicate: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.01)


class Recorder:
    """A handler that records what it receives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def __call__(self, payload: bytes) -> None:
        self.received.append(payload)


@pytest.fixture(params=["memory", "redis"])
async def new_broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerFactory]:
    """Start brokers of one backend ("nodes" sharing one Redis); all closed afterwards."""
    started: list[Broker] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    async def factory() -> Broker:
        broker: Broker = (
            InMemoryBroker() if url is None else RedisBroker(url, reconnect_max=0.25, socket_timeout=2.0)
        )
        await broker.start()
        started.append(broker)
        return broker

    yield factory
    for broker in started:
        await close_promptly(broker)


async def close_promptly(broker: Broker) -> None:
    """Close, failing (not hanging) if the broker's tasks ignore the cancellation."""
    async with asyncio.timeout(TIMEOUT):
        await broker.close()


async def fence(broker: Broker, channel: str = "fence") -> None:
    """Publish on a channel of our own and wait for it: whatever was published before has arrived."""
    marker = Recorder()
    subscription = broker.subscribe(channel, marker)
    await broker.wait_subscribed()
    await broker.publish(channel, b"fence")
    await wait_until(lambda: marker.received == [b"fence"])
    subscription.close()


# --- both backends -------------------------------------------------------------------


async def test_subscribe_then_publish_delivers(new_broker: BrokerFactory) -> None:
    broker = await new_broker()
    on_a, on_b = Recorder(), Recorder()
    broker.subscribe("device:1", on_a)
    broker.subscribe("device:2", on_b)
    await broker.wait_subscribed()
    await broker.publish("device:1", b"\x00notice\xff")
    await broker.publish("device:3", b"nobody listens")
    await wait_until(lambda: on_a.received == [b"\x00notice\xff"])
    await fence(broker)
    assert on_a.received == [b"\x00notice\xff"] and on_b.received == []


async def test_publish_many_keeps_order_per_channel(new_broker: BrokerFactory) -> None:
    broker = await new_broker()
    first, second = Recorder(), Recorder()
    broker.subscribe("a", first)
    broker.subscribe("b", second)
    await broker.wait_subscribed()
    messages = []
    for n in range(200):
        messages.append(("a" if n % 3 else "b", str(n).encode()))
    await broker.publish_many(messages)
    await broker.publish_many([])
    await broker.publish("a", b"after")
    expected_a = [p for c, p in messages if c == "a"] + [b"after"]
    expected_b = [p for c, p in messages if c == "b"]
    await wait_until(
        lambda: len(first.received) == len(expected_a) and len(second.received) == len(expected_b)
    )
    assert first.received == expected_a
    assert second.received == expected_b


async def _upstream_channels(broker: Broker, request: pytest.FixtureRequest) -> set[str] | None:
    if not isinstance(broker, RedisBroker):
        return None
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        return {channel.decode() for channel in await client.pubsub_channels()}
    finally:
        await client.aclose()


async def test_reference_counting(new_broker: BrokerFactory, request: pytest.FixtureRequest) -> None:
    broker = await new_broker()
    first, second = Recorder(), Recorder()
    one = broker.subscribe("shared", first)
    two = broker.subscribe("shared", second)
    await broker.wait_subscribed()
    assert (await broker.health())["subscribed_channels"] == 1

    await broker.publish("shared", b"1")
    await wait_until(lambda: first.received == [b"1"] and second.received == [b"1"])

    one.close()
    one.close()  # idempotent
    await broker.wait_subscribed()
    await broker.publish("shared", b"2")
    await wait_until(lambda: second.received == [b"1", b"2"])
    assert first.received == [b"1"]
    upstream = await _upstream_channels(broker, request)
    assert upstream is None or "shared" in upstream

    two.close()
    await broker.publish("shared", b"3")
    await fence(broker)
    assert first.received == [b"1"] and second.received == [b"1", b"2"]
    if isinstance(broker, RedisBroker):

        async def unsubscribed_upstream() -> bool:
            channels = await _upstream_channels(broker, request)
            return channels is not None and "shared" not in channels

        await wait_until_async(unsubscribed_upstream)
    await wait_until_async(lambda: _subscribed_count_is(broker, 0))

    # Subscribing again after the last handler left works as the first time.
    third = Recorder()
    broker.subscribe("shared", third)
    await broker.wait_subscribed()
    await broker.publish("shared", b"4")
    await wait_until(lambda: third.received == [b"4"])


async def _subscribed_count_is(broker: Broker, count: int) -> bool:
    return (await broker.health())["subscribed_channels"] == count


async def test_a_handler_that_raises_does_not_stop_the_others(
    new_broker: BrokerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await new_broker()
    before, after = Recorder(), Recorder()

    def failing(payload: bytes) -> None:
        raise RuntimeError("handler bug")

    broker.subscribe("c", before)
    broker.subscribe("c", failing)
    broker.subscribe("c", after)
    await broker.wait_subscribed()
    with caplog.at_level(logging.ERROR, logger="server.broker.base"):
        await broker.publish("c", b"secret ciphertext")
        await broker.publish("c", b"next")
        await wait_until(lambda: after.received == [b"secret ciphertext", b"next"])
    assert before.received == [b"secret ciphertext", b"next"]
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2
    assert all(b"secret" not in r.getMessage().encode() for r in failures)  # never the payload


async def test_a_handler_may_close_another_during_dispatch(new_broker: BrokerFactory) -> None:
    broker = await new_broker()
    second = Recorder()
    subscriptions: list[Any] = []
    seen_by_first: list[bytes] = []

    def first(payload: bytes) -> None:
        seen_by_first.append(payload)
        subscriptions[1].close()

    subscriptions.append(broker.subscribe("c", first))
    subscriptions.append(broker.subscribe("c", second))
    await broker.wait_subscribed()
    await broker.publish("c", b"x")
    await fence(broker)
    assert seen_by_first == [b"x"] and second.received == []


async def test_wait_subscribed(new_broker: BrokerFactory, request: pytest.FixtureRequest) -> None:
    broker = await new_broker()
    await broker.wait_subscribed()  # nothing subscribed: returns at once
    received = Recorder()
    channels = [f"device:{n}" for n in range(50)]
    for channel in channels:
        broker.subscribe(channel, received)
    async with asyncio.timeout(TIMEOUT):
        await broker.wait_subscribed()
    upstream = await _upstream_channels(broker, request)
    assert upstream is None or set(channels) <= upstream
    # Effective at once: nothing published right after is lost.
    await broker.publish_many([(channel, channel.encode()) for channel in channels])
    await wait_until(lambda: len(received.received) == len(channels))
    assert sorted(received.received) == sorted(channel.encode() for channel in channels)


async def test_wait_subscribed_for_named_channels(new_broker: BrokerFactory) -> None:
    broker = await new_broker()
    async with asyncio.timeout(TIMEOUT):
        await broker.wait_subscribed(["nobody-listens"])  # no handler: nothing to wait for
    received = Recorder()
    mine = [f"device:{n}" for n in range(3)]
    for channel in [*mine, "presence:1", "presence:2"]:
        broker.subscribe(channel, received)
    async with asyncio.timeout(TIMEOUT):
        await broker.wait_subscribed(mine)
    # Effective once it returns: a message published right after reaches the handler.
    await broker.publish_many([(channel, channel.encode()) for channel in mine])
    await wait_until(lambda: len(received.received) == len(mine))
    assert sorted(received.received) == sorted(channel.encode() for channel in mine)


async def test_health(new_broker: BrokerFactory) -> None:
    broker = await new_broker()
    broker.subscribe("c", Recorder())
    await broker.wait_subscribed()
    health = await broker.health()
    assert health["ok"] is True
    assert health["backend"] == ("memory" if isinstance(broker, InMemoryBroker) else "redis")
    assert health["subscribed_channels"] == 1
    await close_promptly(broker)
    assert (await broker.health())["ok"] is False


async def test_closed_broker_raises_broker_unavailable(new_broker: BrokerFactory) -> None:
    broker = await new_broker()
    received = Recorder()
    broker.subscribe("c", received)
    await broker.wait_subscribed()
    await close_promptly(broker)
    with pytest.raises(BrokerUnavailable):
        await broker.publish("c", b"x")
    with pytest.raises(BrokerUnavailable):
        await broker.publish_many([("c", b"x")])
    await broker.close()  # idempotent
    assert received.received == []


def test_make_broker_chooses_by_url(redis_url: str) -> None:
    assert isinstance(make_broker(None), InMemoryBroker)
    assert isinstance(make_broker(""), InMemoryBroker)
    assert isinstance(make_broker(redis_url), RedisBroker)


# --- Redis only: outages ------------------------------------------------------------------


async def redis_broker(url: str) -> RedisBroker:
    broker = RedisBroker(url, reconnect_max=0.25, socket_timeout=2.0, health_timeout=0.5)
    await broker.start()
    return broker


async def test_cross_node_delivery(redis_url: str) -> None:
    publisher, subscriber = await redis_broker(redis_url), await redis_broker(redis_url)
    try:
        received = Recorder()
        subscriber.subscribe("user:9", received)
        await subscriber.wait_subscribed()
        await publisher.publish("user:9", b"from another node")
        await wait_until(lambda: received.received == [b"from another node"])
    finally:
        await close_promptly(publisher)
        await close_promptly(subscriber)


async def test_upstream_follows_what_changed_between_two_writer_turns(redis_url: str) -> None:
    """The writer sends Redis only the channels that changed, however many are subscribed.

    Made in one loop turn (the writer sees them together): a channel dropped and taken
    again, one dropped, one taken and dropped, one taken.
    """
    broker = await redis_broker(redis_url)
    prefix = f"churn-{secrets.token_hex(4)}:"
    client = Redis.from_url(redis_url)

    async def upstream_is(expected: set[str]) -> bool:
        found = {channel.decode() for channel in await client.pubsub_channels(f"{prefix}*")}
        return found == expected

    try:
        held = [broker.subscribe(f"{prefix}{number}", Recorder()) for number in range(300)]
        await broker.wait_subscribed()
        await wait_until_async(lambda: upstream_is({f"{prefix}{number}" for number in range(300)}))

        held[0].close()
        again = Recorder()
        broker.subscribe(f"{prefix}0", again)
        held[1].close()
        broker.subscribe(f"{prefix}fleeting", Recorder()).close()
        late = Recorder()
        broker.subscribe(f"{prefix}late", late)
        await broker.wait_subscribed()

        expected = {f"{prefix}{number}" for number in range(300) if number != 1} | {f"{prefix}late"}
        await wait_until_async(lambda: upstream_is(expected))
        assert (await broker.health())["subscribed_channels"] == 300
        await broker.publish(f"{prefix}0", b"again")
        await broker.publish(f"{prefix}late", b"late")
        await wait_until(lambda: again.received == [b"again"] and late.received == [b"late"])
    finally:
        await client.aclose()
        await close_promptly(broker)


async def test_start_fails_fast_without_redis(tmp_path: Path) -> None:
    unused = RedisProcess(tmp_path)  # a free port with nothing listening
    broker = RedisBroker(unused.url)
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(BrokerUnavailable):
            await broker.start()
    await close_promptly(broker)


async def test_publish_while_redis_is_down_fails_promptly(redis_process: RedisProcess) -> None:
    broker = await redis_broker(redis_process.url)
    try:
        await broker.publish("c", b"up")
        await asyncio.to_thread(redis_process.stop)
        async with asyncio.timeout(2.0):
            with pytest.raises(BrokerUnavailable):
                await broker.publish("c", b"down")
            with pytest.raises(BrokerUnavailable):
                await broker.publish_many([("c", b"down"), ("d", b"down")])
        await wait_until_async(lambda: _health_is(broker, ok=False))
    finally:
        await close_promptly(broker)


async def _health_is(broker: Broker, *, ok: bool) -> bool:
    return (await broker.health())["ok"] is ok


async def test_resubscribes_and_resyncs_after_a_redis_restart(redis_process: RedisProcess) -> None:
    broker = await redis_broker(redis_process.url)
    other_node = await redis_broker(redis_process.url)
    try:
        resyncs: list[str] = []
        resynced = asyncio.Event()

        def failing_callback() -> None:
            raise RuntimeError("callback bug")

        def record_resync() -> None:
            resyncs.append("resync")
            resynced.set()

        broker.on_resync(failing_callback)  # logged; does not stop the next one
        broker.on_resync(record_resync)
        received = Recorder()
        broker.subscribe("device:1", received)
        await broker.wait_subscribed()
        await other_node.publish("device:1", b"before")
        await wait_until(lambda: received.received == [b"before"])
        assert resyncs == []  # the first connection lost nothing

        await asyncio.to_thread(redis_process.restart)  # a new, empty Redis on the same port
        # A channel subscribed during the outage is subscribed once Redis is back.
        late = Recorder()
        broker.subscribe("device:2", late)

        async with asyncio.timeout(10):
            await resynced.wait()
            await broker.wait_subscribed()
        assert resyncs == ["resync"]
        client = Redis.from_url(redis_process.url)
        try:
            upstream = {channel.decode() for channel in await client.pubsub_channels()}
        finally:
            await client.aclose()
        assert {"device:1", "device:2"} <= upstream

        async def delivered_again() -> bool:
            try:
                await other_node.publish("device:1", b"after")
                await other_node.publish("device:2", b"late")
            except BrokerUnavailable:
                return False
            return True

        await wait_until_async(delivered_again)
        await wait_until(lambda: b"after" in received.received and b"late" in late.received)
        assert (await broker.health())["ok"] is True
    finally:
        await close_promptly(broker)
        await close_promptly(other_node)


async def test_wait_subscribed_waits_through_an_outage(redis_process: RedisProcess) -> None:
    broker = await redis_broker(redis_process.url)
    try:
        await asyncio.to_thread(redis_process.stop)
        await wait_until_async(lambda: _health_is(broker, ok=False))
        broker.subscribe("c", Recorder())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await broker.wait_subscribed()
        await asyncio.to_thread(redis_process.start)
        async with asyncio.timeout(10):
            await broker.wait_subscribed()
    finally:
        await close_promptly(broker)


async def test_wait_subscribed_on_a_closed_redis_broker(redis_url: str) -> None:
    broker = await redis_broker(redis_url)
    await close_promptly(broker)
    broker.subscribe("c", Recorder())
    with pytest.raises(BrokerUnavailable):
        await broker.wait_subscribed()
