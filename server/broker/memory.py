"""The in-process broker of the embedded single-node default."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

from server.broker.base import BrokerUnavailable, Handler, HandlerTable, Subscription


class InMemoryBroker:
    """Delivers within this process only.

    Each message is dispatched by its own ``loop.call_soon`` callback, so a
    handler never runs inside the publisher's stack, and messages keep the order
    in which they were published. Nothing can be lost between publish and
    dispatch, so ``on_resync`` callbacks are kept but never called.
    """

    def __init__(self) -> None:
        self._handlers = HandlerTable()
        self._resync_callbacks: list[Callable[[], None]] = []
        self._closed = False

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._closed = True

    async def publish(self, channel: str, payload: bytes) -> None:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        asyncio.get_running_loop().call_soon(self._deliver, channel, payload)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        loop = asyncio.get_running_loop()
        for channel, payload in messages:
            loop.call_soon(self._deliver, channel, payload)

    def subscribe(self, channel: str, handler: Handler) -> Subscription:
        return self._handlers.add(channel, handler)

    async def wait_subscribed(self, channels: Iterable[str] | None = None) -> None:
        """Subscriptions are effective as soon as :meth:`subscribe` returns."""

    def on_resync(self, callback: Callable[[], None]) -> None:
        self._resync_callbacks.append(callback)

    async def health(self) -> dict[str, object]:
        return {"backend": "memory", "ok": not self._closed, "subscribed_channels": len(self._handlers)}

    def _deliver(self, channel: str, payload: bytes) -> None:
        if not self._closed:
            self._handlers.dispatch(channel, payload)
