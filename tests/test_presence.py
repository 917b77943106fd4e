"""server.presence: the same tests over InMemoryPresence and RedisPresence (a real redis-server)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from server.broker import BrokerUnavailable
from server.presence import InMemoryPresence, PresenceStore, RedisPresence, make_presence
from tests.redis_server import RedisProcess

TIMEOUT = 5.0

PresenceFactory = Callable[..., Awaitable[PresenceStore]]


@pytest.fixture(params=["memory", "redis"])
async def new_presence(request: pytest.FixtureRequest) -> AsyncIterator[PresenceFactory]:
    """Start presence stores of one backend (for Redis, "nodes" sharing one server)."""
    started: list[PresenceStore] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    async def factory(ttl_seconds: float = 45.0) -> PresenceStore:
        store: PresenceStore = (
            InMemoryPresence() if url is None else RedisPresence(url, ttl_seconds=ttl_seconds)
        )
        await store.start()
        started.append(store)
        return store

    yield factory
    for store in started:
        async with asyncio.timeout(TIMEOUT):
            await store.close()


async def redis_node(url: str, ttl_seconds: float = 45.0) -> RedisPresence:
    node = RedisPresence(url, ttl_seconds=ttl_seconds)
    await node.start()
    return node


async def wait_for_online(store: PresenceStore, user_ids: list[int], expected: set[int]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while await store.online(user_ids) != expected:
            await asyncio.sleep(0.02)


# --- both backends ------------------------------------------------------------------


async def test_first_device_brings_the_user_online(new_presence: PresenceFactory) -> None:
    presence = await new_presence()
    assert await presence.online([1]) == set()
    assert await presence.device_online(1, 10) is True
    assert await presence.device_online(1, 11) is False  # a second device
    assert await presence.device_online(2, 20) is True  # another user
    assert await presence.online([1, 2, 3]) == {1, 2}


async def test_offline_transitions(new_presence: PresenceFactory) -> None:
    presence = await new_presence()
    await presence.device_online(1, 10)
    await presence.device_online(1, 11)
    assert await presence.device_offline(1, 10) is False  # device 11 is still connected
    assert await presence.online([1]) == {1}
    assert await presence.device_offline(1, 11) is True  # the last one
    assert await presence.online([1]) == set()
    # Online again after being offline is a transition again.
    assert await presence.device_online(1, 12) is True


async def test_the_same_device_counts_per_connection(new_presence: PresenceFactory) -> None:
    presence = await new_presence()
    assert await presence.device_online(1, 10) is True
    assert await presence.device_online(1, 10) is False
    assert await presence.device_offline(1, 10) is False  # one connection of it remains
    assert await presence.online([1]) == {1}
    assert await presence.device_offline(1, 10) is True
    assert await presence.online([1]) == set()


async def test_online_for_a_list(new_presence: PresenceFactory) -> None:
    presence = await new_presence()
    for user_id in range(1, 1201, 2):  # every odd user, more than one Redis pipeline's worth
        await presence.device_online(user_id, user_id * 10)
    users = list(range(1, 1201))
    assert await presence.online(users) == set(range(1, 1201, 2))
    assert await presence.online([]) == set()
    assert await presence.online([3, 3, 4, 4]) == {3}


async def test_offline_for_an_unknown_device(new_presence: PresenceFactory) -> None:
    presence = await new_presence()
    assert await presence.device_offline(5, 50) is True
    assert await presence.online([5]) == set()


def test_make_presence_chooses_by_url(redis_url: str) -> None:
    assert isinstance(make_presence(None), InMemoryPresence)
    assert isinstance(make_presence(redis_url), RedisPresence)
    with pytest.raises(ValueError):
        RedisPresence(redis_url, ttl_seconds=0)


# --- Redis only: several nodes ------------------------------------------------------------


async def test_two_nodes_see_each_others_users(redis_url: str) -> None:
    a, b = await redis_node(redis_url), await redis_node(redis_url)
    try:
        assert await a.device_online(1, 10) is True
        assert await b.online([1]) == {1}
        assert await b.device_online(1, 11) is False  # already online through node a
        assert await b.device_online(2, 20) is True
        assert await a.online([1, 2, 3]) == {1, 2}

        assert await a.device_offline(1, 10) is False  # still online through node b
        assert await a.online([1]) == {1}
        assert await b.device_offline(1, 11) is True
        assert await a.online([1]) == set() and await b.online([1]) == set()
    finally:
        await a.close()
        await b.close()


async def test_the_same_device_on_two_nodes(redis_url: str) -> None:
    # A device reconnecting through another node before its old socket went away.
    a, b = await redis_node(redis_url), await redis_node(redis_url)
    try:
        assert await a.device_online(1, 10) is True
        assert await b.device_online(1, 10) is False
        assert await a.device_offline(1, 10) is False  # node a's entry must not remove node b's
        assert await a.online([1]) == {1}
        assert await b.device_offline(1, 10) is True
    finally:
        await a.close()
        await b.close()


async def test_a_dead_nodes_users_fall_offline_after_the_ttl(redis_url: str) -> None:
    ttl = 0.5
    dying, survivor = await redis_node(redis_url, ttl), await redis_node(redis_url, ttl)
    try:
        await dying.device_online(1, 10)
        await survivor.device_online(2, 20)
        started = time.monotonic()
        assert await survivor.online([1, 2]) == {1, 2}
        await dying.close()  # no device_offline: the node vanished

        await wait_for_online(survivor, [1, 2], {2})
        assert time.monotonic() - started >= ttl * 0.9
        # Its own users stay online: the survivor keeps refreshing them past the TTL.
        assert await survivor.online([2]) == {2}
        # User 1 connecting again is a transition to online (the dead entry is ignored and tidied).
        assert await survivor.device_online(1, 11) is True
    finally:
        await survivor.close()


async def test_refresh_keeps_a_live_nodes_devices_online(redis_url: str) -> None:
    ttl = 0.3
    node, observer = await redis_node(redis_url, ttl), await redis_node(redis_url)
    client = Redis.from_url(redis_url)
    try:
        await node.device_online(1, 10)
        deadline = time.monotonic() + 3 * ttl
        while time.monotonic() < deadline:  # well past the TTL, the entry stays live
            assert await observer.online([1]) == {1}
            await asyncio.sleep(ttl / 6)
        assert 0 < await client.pttl("lien:presence:1") <= 2 * ttl * 1000
        assert await node.device_offline(1, 10) is True
        assert await client.hlen("lien:presence:1") == 0
    finally:
        await client.aclose()
        await node.close()
        await observer.close()


async def test_redis_unreachable(redis_process: RedisProcess) -> None:
    node = await redis_node(redis_process.url)
    try:
        await node.device_online(1, 10)
        await asyncio.to_thread(redis_process.stop)
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(BrokerUnavailable):
                await node.device_online(2, 20)
            with pytest.raises(BrokerUnavailable):
                await node.online([3])
            with pytest.raises(BrokerUnavailable):
                await node.device_offline(1, 10)
    finally:
        await node.close()
    unstarted = RedisPresence(redis_process.url)
    with pytest.raises(BrokerUnavailable):
        await unstarted.start()
    await unstarted.close()


async def test_closing_ends_the_refresh_even_if_its_cancellation_is_lost(redis_url: str) -> None:
    """A cancellation swallowed inside a Redis call must not leave close() waiting forever."""
    node = await redis_node(redis_url, ttl_seconds=0.06)  # refreshes every 20 ms
    refreshing = asyncio.Event()

    async def refresh_that_swallows_cancellation() -> None:
        refreshing.set()
        # What a socket timeout racing the cancellation does inside the Redis client:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)

    node._refresh = refresh_that_swallows_cancellation  # type: ignore[method-assign]
    await node.device_online(1, 10)
    async with asyncio.timeout(TIMEOUT):
        await refreshing.wait()
        await node.close()
