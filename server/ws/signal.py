"""A wake-up flag for one waiting task: what ``asyncio.Event`` does, at a fraction of its memory.

A node holds tens of thousands of idle connections; each ``asyncio.Event``
carries a deque of waiters (about 600 bytes even when empty), and an
``asyncio.Queue`` four of them. A connection's pump and writer are each the
only task waiting on their signal, so a slot for one future is enough.
"""

from __future__ import annotations

import asyncio


class Signal:
    """Set by anyone, awaited by one task at a time."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        """Return once set (at once if it is); a second task waiting at the same time is a bug."""
        if self._set:
            return
        if self._waiter is not None:
            raise RuntimeError("Signal.wait: another task is already waiting")
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None
