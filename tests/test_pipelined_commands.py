"""server.broker.pipelined: concurrent callers share Redis round trips, on a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from server.broker.pipelined import PipelinedCommands
from server.broker.redis import UNREACHABLE, make_command_client
from tests.redis_server import RedisProcess

TIMEOUT = 10.0


class CountingClient:
    """The real client; counts the pipelines sent through it."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.pipelines = 0

    def pipeline(self, **options: Any) -> Any:
        self.pipelines += 1
        return self.client.pipeline(**options)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = make_command_client(redis_url, socket_timeout=2.0)
    yield redis
    await redis.aclose()


async def test_callers_arriving_together_share_one_pipeline_and_get_their_own_replies(client: Redis) -> None:
    counting = CountingClient(client)
    commands = PipelinedCommands(counting)  # type: ignore[arg-type]
    async with asyncio.timeout(TIMEOUT):
        replies = await asyncio.gather(
            *(commands.execute([("INCR", "counter"), ("INCRBY", f"own:{n}", n)]) for n in range(50))
        )
    assert replies == [[n + 1, n] for n in range(50)]  # queue order, each caller its own replies
    assert counting.pipelines == 1


async def test_callers_arriving_during_a_round_trip_share_the_next_one(client: Redis) -> None:
    counting = CountingClient(client)
    commands = PipelinedCommands(counting)  # type: ignore[arg-type]
    async with asyncio.timeout(TIMEOUT):
        first = asyncio.create_task(commands.execute([("INCR", "n")]))
        while counting.pipelines == 0:  # until the first pipeline has left
            await asyncio.sleep(0)
        later = asyncio.gather(*(commands.execute([("INCR", "n")]) for _ in range(20)))
        assert await first == [1]
        assert [reply for replies in await later for reply in replies] == list(range(2, 22))
    assert counting.pipelines == 2


async def test_a_refused_command_is_its_callers_reply_only(client: Redis) -> None:
    commands = PipelinedCommands(client)
    await client.set("text", "not a number")
    async with asyncio.timeout(TIMEOUT):
        refused, fine = await asyncio.gather(
            commands.execute([("INCR", "text"), ("INCR", "n")]), commands.execute([("INCR", "n")])
        )
    assert isinstance(refused[0], ResponseError) and refused[1] == 1
    assert fine == [2]


async def test_redis_away_fails_every_caller_and_the_next_call_works_again(
    redis_process: RedisProcess,
) -> None:
    client = make_command_client(redis_process.url, socket_timeout=2.0)
    commands = PipelinedCommands(client)
    try:
        async with asyncio.timeout(TIMEOUT):
            assert await commands.execute([("INCR", "n")]) == [1]
            redis_process.stop()
            outcomes = await asyncio.gather(
                *(commands.execute([("INCR", "n")]) for _ in range(3)), return_exceptions=True
            )
            assert all(isinstance(outcome, UNREACHABLE) for outcome in outcomes), outcomes
            redis_process.start()
            assert await commands.execute([("INCR", "n")]) == [1]  # a fresh server: nothing persisted
    finally:
        await commands.close()
        await client.aclose()
