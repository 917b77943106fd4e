"""server.ws.signal: the one-waiter wake-up flag of a connection's pump and writer."""

from __future__ import annotations

import asyncio

import pytest

from server.ws.signal import Signal

TIMEOUT = 5.0


async def test_wait_returns_at_once_when_already_set() -> None:
    signal = Signal()
    signal.set()
    async with asyncio.timeout(TIMEOUT):
        await signal.wait()
    assert signal.is_set()  # waiting does not clear it


async def test_set_wakes_the_waiting_task() -> None:
    signal = Signal()
    waiter = asyncio.create_task(signal.wait())
    await asyncio.sleep(0)  # let it start waiting
    assert not waiter.done()
    signal.set()
    async with asyncio.timeout(TIMEOUT):
        await waiter
    signal.clear()
    assert not signal.is_set()
    again = asyncio.create_task(signal.wait())
    await asyncio.sleep(0)
    assert not again.done()  # cleared: waits for the next set
    signal.set()
    async with asyncio.timeout(TIMEOUT):
        await again


async def test_a_second_waiter_is_refused_and_a_cancelled_one_frees_the_slot() -> None:
    signal = Signal()
    first = asyncio.create_task(signal.wait())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already waiting"):
        await signal.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.create_task(signal.wait())
    await asyncio.sleep(0)
    signal.set()
    async with asyncio.timeout(TIMEOUT):
        await second
