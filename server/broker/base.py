"""The broker interface, and the local handler table both backends share.

The broker carries small wake-up notices between nodes (DESIGN.md, "store first,
notify second"). It is never the only copy of anything: a notice the broker
drops is recovered from the recipient's inbox, which is why a backend that may
have lost messages calls its ``on_resync`` callbacks instead of trying to replay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

logger = logging.getLogger(__name__)

Handler = Callable[[bytes], None]
"""Called on the event loop with the payload; must not block or await."""


class BrokerUnavailable(Exception):
    """The broker cannot be reached; the notice was not sent.

    Callers log it and carry on: the inbox in the database is the truth.
    """


class Subscription(Protocol):
    def close(self) -> None:
        """Stop delivering to this handler. Idempotent."""


class Broker(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, channel: str, payload: bytes) -> None:
        """Send ``payload`` to every handler of ``channel`` on every node.

        Raises :class:`BrokerUnavailable` when the notice could not be handed over.
        """

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Like :meth:`publish` for several messages, in one round trip."""

    def subscribe(self, channel: str, handler: Handler) -> Subscription:
        """Register ``handler`` now; the backend subscribes in the background.

        Await :meth:`wait_subscribed` before relying on delivery.
        """

    async def wait_subscribed(self, channels: Iterable[str] | None = None) -> None:
        """Return once ``channels`` (default: every channel subscribed so far) receive messages."""

    def on_resync(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever messages may have been lost (after a reconnect)."""

    async def health(self) -> dict[str, object]: ...


class LocalSubscription:
    """One handler on one channel, in a :class:`HandlerTable`."""

    __slots__ = ("_closed", "_table", "channel", "handler")

    def __init__(self, table: HandlerTable, channel: str, handler: Handler) -> None:
        self._table = table
        self._closed = False
        self.channel = channel
        self.handler = handler

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._table.remove(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<LocalSubscription {self.channel!r} {state}>"


class HandlerTable:
    """The handlers of this node, reference-counted per channel.

    ``on_change`` runs (synchronously) with the channel whenever a channel gains
    its first handler or loses its last one, so a backend can (un)subscribe upstream.
    """

    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        # A tuple per channel, in subscription order: nearly every channel has one handler (a device's
        # own channels), and a tuple of one costs a fifth of a dict on each of a node's idle sockets.
        # Being immutable, it is also the snapshot dispatch() iterates while handlers (un)subscribe.
        self._by_channel: dict[str, tuple[LocalSubscription, ...]] = {}
        self._on_change = on_change

    def add(self, channel: str, handler: Handler) -> LocalSubscription:
        subscription = LocalSubscription(self, channel, handler)
        subscriptions = self._by_channel.get(channel, ())
        self._by_channel[channel] = (*subscriptions, subscription)
        if not subscriptions and self._on_change is not None:
            self._on_change(channel)
        return subscription

    def remove(self, subscription: LocalSubscription) -> None:
        channel = subscription.channel
        subscriptions = self._by_channel.get(channel, ())
        if subscription not in subscriptions:
            return
        remaining = tuple(other for other in subscriptions if other is not subscription)
        if remaining:
            self._by_channel[channel] = remaining
        else:
            del self._by_channel[channel]
            if self._on_change is not None:
                self._on_change(channel)

    def channels(self) -> set[str]:
        return set(self._by_channel)

    def __contains__(self, channel: object) -> bool:
        return channel in self._by_channel

    def __len__(self) -> int:
        return len(self._by_channel)

    def dispatch(self, channel: str, payload: bytes) -> None:
        """Call every handler of ``channel``; one that raises does not stop the others."""
        for subscription in self._by_channel.get(channel, ()):
            if subscription.closed:
                continue  # closed by an earlier handler of this message
            try:
                subscription.handler(payload)
            except Exception:
                # Never the payload: it may be a ciphertext envelope.
                logger.exception("broker handler %r failed on channel %r", subscription.handler, channel)


def run_callbacks(callbacks: Sequence[Callable[[], None]], what: str) -> None:
    """Call each callback; one that raises is logged and does not stop the others."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            logger.exception("broker %s callback %r failed", what, callback)
