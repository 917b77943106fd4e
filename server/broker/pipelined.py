"""Redis commands from concurrent callers, sent together: one pipeline in flight, the rest queue.

The same idea as the group commit (server/storage/committer.py): when a
transaction commits, every connection whose envelopes it held publishes its
notices and, for its next batch, takes fair-use tokens, all in the same
moment. One round trip each would cost a Redis send, a reply parse and a
timeout per connection; here the commands that arrive while a pipeline is in
flight leave together in the next one. A lone command leaves at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

Command = tuple[Any, ...]
"""A command's name and arguments, as ``execute_command`` takes them."""


class _Queued:
    __slots__ = ("commands", "future")

    def __init__(self, commands: Sequence[Command], future: asyncio.Future[list[Any]]) -> None:
        self.commands = commands
        self.future = future


class PipelinedCommands:
    def __init__(self, client: Redis, *, max_commands: int = 1000) -> None:
        self._client = client
        self._max_commands = max_commands
        self._queued: list[_Queued] = []
        self._sender: asyncio.Task[None] | None = None

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` with the next pipeline; their replies in order.

        A command Redis refuses has its error (an exception instance) as its
        reply; a connection failure is raised to every caller of that pipeline.
        """
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queued.append(_Queued(commands, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_queued(), name="redis-pipeline")
        return await future

    async def _send_queued(self) -> None:
        while self._queued:
            batch = self._take()
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for queued in batch:
                        for command in queued.commands:
                            pipe.execute_command(*command)
                    replies = await pipe.execute(raise_on_error=False)
            except BaseException as exc:
                for queued in batch:
                    if not queued.future.done():
                        queued.future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            start = 0
            for queued in batch:
                end = start + len(queued.commands)
                if not queued.future.done():
                    queued.future.set_result(list(replies[start:end]))
                start = end

    def _take(self) -> list[_Queued]:
        """The callers whose commands go in the next pipeline: at least one, about ``max_commands``."""
        taken, count = 0, 0
        while taken < len(self._queued) and (taken == 0 or count < self._max_commands):
            count += len(self._queued[taken].commands)
            taken += 1
        batch, self._queued = self._queued[:taken], self._queued[taken:]
        return batch

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for queued in self._queued:
            if not queued.future.done():
                queued.future.set_exception(ConnectionError("closed"))
        self._queued = []
