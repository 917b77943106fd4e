"""Redis pub/sub broker: one subscriber connection per node, reconnecting by itself.

The subscriber connection is driven directly (``SUBSCRIBE`` / ``UNSUBSCRIBE`` /
``PING`` out, replies and messages in) rather than through redis-py's
``PubSub``, whose silent retries and re-subscriptions would hide the moment
messages may have been lost, which is exactly what ``on_resync`` must report.

Per connection, two tasks: the writer brings Redis's subscriptions in line with
the local handler table and pings when idle; the reader dispatches messages and
records confirmations. When either fails, the supervisor drops the connection,
reconnects with capped exponential backoff, re-subscribes every channel that
still has handlers and, once Redis has confirmed them, calls ``on_resync``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.broker.base import BrokerUnavailable, Handler, HandlerTable, Subscription, run_callbacks
from server.broker.pipelined import PipelinedCommands

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""What a command raises when Redis cannot be reached (``TimeoutError`` is an ``OSError``)."""

_CHANNELS_PER_COMMAND = 1000


def make_command_client(url: str, *, socket_timeout: float = 5.0) -> Redis:
    """A client for ordinary commands that fails fast when Redis is away.

    One immediate retry absorbs a pooled connection that a Redis restart closed;
    a second failure is reported instead of retried with backoff.
    """
    client: Redis = Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 1),
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
    )
    return client


def _subscriber_factory(url: str, socket_timeout: float) -> Callable[[], AbstractConnection]:
    """Connections for pub/sub: RESP2 (messages are plain replies), raw bytes, no retries."""
    options: dict[str, Any] = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
    options.update(parse_url(url))  # raises ValueError on a malformed URL, at construction
    options.pop("max_connections", None)
    connection_class = options.pop("connection_class", Connection)
    options.update(protocol=2, decode_responses=False, retry=Retry(NoBackoff(), 0))
    factory: Callable[[], AbstractConnection] = functools.partial(connection_class, **options)
    return factory


def _raise_if_cancelled() -> None:
    """Honour a cancellation that an await swallowed, so that ``close()`` cannot hang.

    redis-py sends with ``asyncio.wait_for``, which on Python 3.11 returns the
    result instead of raising when the task is cancelled as the send completes.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisBroker:
    def __init__(
        self,
        url: str,
        *,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        ping_interval: float = 5.0,
        socket_timeout: float = 5.0,
        health_timeout: float = 1.0,
    ) -> None:
        self._new_connection = _subscriber_factory(url, socket_timeout)
        self._publisher = make_command_client(url, socket_timeout=socket_timeout)
        self._publishing = PipelinedCommands(self._publisher)
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._ping_interval = ping_interval
        self._health_timeout = health_timeout

        self._handlers = HandlerTable(on_change=self._local_channels_changed)
        self._resync_callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._first_connection: AbstractConnection | None = None
        """Made by start(), until the supervisor takes it (a task cancelled before it runs never does)."""

        # State of the current subscriber connection, reset on each connection.
        self._connected = False
        self._sent: set[str] = set()
        """Channels the writer has asked Redis to subscribe (minus those it asked to drop)."""
        self._changed: set[str] = set()
        """Channels that gained their first handler or lost their last since the writer last looked
        (every channel, on a new connection): the writer's work is the changes, not all channels."""
        self._confirmed: set[str] = set()
        """Channels Redis has confirmed as subscribed."""
        self._in_flight: dict[str, int] = {}
        """(Un)subscribe commands per channel whose confirmation has not been read yet."""

        self._wake_writer = asyncio.Event()
        self._state_changed = asyncio.Event()
        self._wake_scheduled = False

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Connect, or raise :class:`BrokerUnavailable`; later outages are handled in the background."""
        if self._task is not None or self._closed:
            raise RuntimeError("RedisBroker.start() may be called once, before close()")
        try:
            await self._publisher.ping()
            connection = await self._connect()
        except UNREACHABLE as exc:
            raise BrokerUnavailable(f"cannot reach Redis: {exc}") from exc
        self._first_connection = connection
        self._task = asyncio.create_task(self._supervise(connection), name="lien-broker-redis")

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                logger.error("broker task had failed", exc_info=task.exception())
        if self._first_connection is not None:
            await self._first_connection.disconnect(nowait=True)
            self._first_connection = None
        await self._publishing.close()
        await self._publisher.aclose()
        self._notify_state()

    # -- publishing -----------------------------------------------------------

    async def publish(self, channel: str, payload: bytes) -> None:
        # Pipelined too: when many sockets open at once, their kicks and presence leave together.
        await self.publish_many([(channel, payload)])

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        if not messages:
            return
        try:
            # With the notices of every other connection that publishes meanwhile: one round trip.
            await self._publishing.execute([("PUBLISH", channel, payload) for channel, payload in messages])
        except UNREACHABLE as exc:
            raise BrokerUnavailable(f"cannot publish: {exc}") from exc

    # -- subscribing ----------------------------------------------------------

    def subscribe(self, channel: str, handler: Handler) -> Subscription:
        return self._handlers.add(channel, handler)

    async def wait_subscribed(self, channels: Iterable[str] | None = None) -> None:
        """Return once Redis has confirmed ``channels`` (default: every channel that has a handler now).

        Waits through outages (wrap it in a timeout); raises
        :class:`BrokerUnavailable` if the broker is closed meanwhile. Channels
        subscribed after the call do not hold it up, nor do those of ``channels``
        that have no handler (any more). A connection names its own channels:
        checking every channel of the node at every confirmation made
        connecting O(connections).
        """
        wanted = self._handlers.channels() if channels is None else set(channels)
        while True:
            if self._closed:
                raise BrokerUnavailable("the broker is closed")
            changed = self._state_changed
            if all(channel not in self._handlers or self._is_live(channel) for channel in wanted):
                return
            await changed.wait()

    def on_resync(self, callback: Callable[[], None]) -> None:
        self._resync_callbacks.append(callback)

    async def health(self) -> dict[str, object]:
        ok = self._connected and not self._closed
        if ok:
            try:
                async with asyncio.timeout(self._health_timeout):
                    await self._publisher.ping()
            except UNREACHABLE:
                ok = False
        return {
            "backend": "redis",
            "ok": ok,
            "subscribed_channels": len(self._confirmed),
            "local_channels": len(self._handlers),
        }

    def _is_live(self, channel: str) -> bool:
        return self._connected and channel in self._confirmed and not self._in_flight.get(channel)

    def _local_channels_changed(self, channel: str) -> None:
        self._changed.add(channel)
        self._wake_writer.set()
        self._notify_state()

    def _notify_state(self) -> None:
        """Wake every :meth:`wait_subscribed` (each holds the event it saw), once per loop turn.

        Confirmations arrive a reply at a time; waking every waiter at each one
        cost O(waiters) per reply during a reconnect storm.
        """
        if self._wake_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._wake_waiters()
            return
        self._wake_scheduled = True
        loop.call_soon(self._wake_waiters)

    def _wake_waiters(self) -> None:
        self._wake_scheduled = False
        self._state_changed.set()
        self._state_changed = asyncio.Event()

    # -- the subscriber connection ----------------------------------------------

    async def _connect(self) -> AbstractConnection:
        connection = self._new_connection()
        try:
            await connection.connect()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        return connection

    async def _supervise(self, connection: AbstractConnection | None) -> None:
        loop = asyncio.get_running_loop()
        delay = self._reconnect_min
        resync = False  # the first connection, made by start(), has lost nothing
        self._first_connection = None
        while True:
            if self._closed:
                # close() cancelled a session as one of its tasks failed: the TaskGroup
                # raised that failure, not CancelledError, and except* took it.
                return
            if connection is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max)
                try:
                    connection = await self._connect()
                except UNREACHABLE as exc:
                    logger.debug("broker: Redis still unreachable (%s)", exc)
                    continue
                logger.info("broker reconnected to Redis; re-subscribing %d channels", len(self._handlers))
            started = loop.time()
            try:
                await self._session(connection, resync=resync)
            except* (RedisError, OSError) as group:
                logger.warning("broker lost its Redis connection (%s); reconnecting", group.exceptions[0])
            except* Exception:
                logger.exception("broker: unexpected failure; reconnecting")
            finally:
                self._reset_connection_state()
                await connection.disconnect(nowait=True)
            connection = None
            resync = True
            if loop.time() - started > self._reconnect_max:
                delay = self._reconnect_min  # a connection that lasted resets the backoff

    def _reset_connection_state(self) -> None:
        self._connected = False
        self._sent.clear()
        self._changed = self._handlers.channels()
        self._confirmed.clear()
        self._in_flight.clear()
        self._notify_state()

    async def _session(self, connection: AbstractConnection, *, resync: bool) -> None:
        """Serve one connection until it fails (raises) or the task is cancelled."""
        self._reset_connection_state()
        self._connected = True
        self._wake_writer.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read(connection), name="lien-broker-redis-read")
            group.create_task(self._write(connection), name="lien-broker-redis-write")
            if resync:
                group.create_task(self._resync_when_subscribed(), name="lien-broker-redis-resync")

    async def _resync_when_subscribed(self) -> None:
        await self.wait_subscribed()
        logger.info("broker re-subscribed after an outage; resynchronising")
        run_callbacks(self._resync_callbacks, "resync")

    async def _write(self, connection: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self._ping_interval
        while True:
            self._wake_writer.clear()
            # Only what changed: comparing every channel at each wake-up made a connect cost
            # O(channels), a reconnect storm O(channels²) (40 % of a node's time at 19,000 sockets).
            changed, self._changed = self._changed, set()
            handlers, sent = self._handlers, self._sent
            await self._send(
                connection, "UNSUBSCRIBE", {c for c in changed if c in sent and c not in handlers}
            )
            await self._send(connection, "SUBSCRIBE", {c for c in changed if c not in sent and c in handlers})
            if loop.time() >= next_ping:
                # Keeps a silent connection proving it is alive (see _read).
                await connection.send_command("PING")
                next_ping = loop.time() + self._ping_interval
            _raise_if_cancelled()
            try:
                async with asyncio.timeout_at(next_ping):
                    await self._wake_writer.wait()
            except TimeoutError:
                pass

    async def _send(self, connection: AbstractConnection, command: str, channels: set[str]) -> None:
        ordered = sorted(channels)
        for start in range(0, len(ordered), _CHANNELS_PER_COMMAND):
            chunk = ordered[start : start + _CHANNELS_PER_COMMAND]
            for channel in chunk:
                self._in_flight[channel] = self._in_flight.get(channel, 0) + 1
            if command == "SUBSCRIBE":
                self._sent.update(chunk)
            else:
                self._sent.difference_update(chunk)
            await connection.send_command(command, *chunk)

    async def _read(self, connection: AbstractConnection) -> None:
        # The writer pings every ping_interval, so silence for three of them means
        # the connection is dead even if TCP has not noticed (e.g. a network partition).
        silence_limit = self._ping_interval * 3
        while True:
            reply = await connection.read_response(timeout=silence_limit)
            if reply is None:
                raise RedisTimeoutError(f"no reply from Redis for {silence_limit:g} s")
            self._handle_reply(reply)

    def _handle_reply(self, reply: Any) -> None:
        if not isinstance(reply, list) or not reply:
            return  # PONG outside subscribed mode
        kind = reply[0]
        if kind == b"message":
            self._handlers.dispatch(reply[1].decode(), reply[2])
        elif kind in (b"subscribe", b"unsubscribe"):
            channel = reply[1].decode()
            remaining = self._in_flight.get(channel, 0) - 1
            if remaining > 0:
                self._in_flight[channel] = remaining
            else:
                self._in_flight.pop(channel, None)
            if kind == b"subscribe":
                self._confirmed.add(channel)
            else:
                self._confirmed.discard(channel)
            self._notify_state()
        elif kind != b"pong":
            logger.warning("broker: unexpected pub/sub reply of kind %r", kind)
