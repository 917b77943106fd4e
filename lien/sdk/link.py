"""The device's link to the server: one WebSocket, kept alive, and the delivery guarantees around it.

Transport only, driven by :class:`lien.protocol.client.ClientProtocol`:
reconnect with capped, jittered backoff (to the next URL when several are
given); resend whatever was not ``accepted`` under the same client id after a
reconnect; answer each send's waiter; ack inbox entries in batches once the
owner has handled them (after ``before_ack``, which saves the keystore); stop
for good on the close codes that mean "do not come back" (4401 revoked or
expired, 4426 unsupported version, 4409 this device connected elsewhere).

What a frame means is the owner's business (:class:`Owner`): the link hands it
every inbox entry and ephemeral frame in the order they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import websockets
from websockets.asyncio.client import ClientConnection

from lien.protocol import client as proto
from lien.protocol import errors, frames, limits

logger = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS: Final = 0.1
RECONNECT_MAX_SECONDS: Final = 5.0
ACK_EVERY: Final = 32
ACK_DELAY_SECONDS: Final = 0.02
OUTBOX_LIMIT: Final = 10_000
FATAL_CLOSE_CODES: dict[int, type[errors.LienError]] = {
    code: error
    for error in (errors.AuthenticationFailed, errors.UnsupportedVersion, errors.SessionReplaced)
    if (code := error.close_code) is not None
}

Sendable = frames.Send | frames.GroupSend | frames.Resend
Ephemeral = frames.TypingEvent | frames.Presence | frames.DevicesChanged | frames.PrekeysLow


class Owner(Protocol):
    """What the link calls back into (the client)."""

    async def on_connected(self, ready: frames.Ready) -> None:
        """The server is ready, after the resends; send what must follow each connect (watch, ...)."""

    async def on_inbox(self, frame: frames.Deliver | frames.Status | frames.GroupEvent) -> None:
        """An inbox entry; the owner calls :meth:`Link.handled` with its seq once it is safe."""

    def on_ephemeral(
        self, frame: frames.TypingEvent | frames.Presence | frames.DevicesChanged | frames.PrekeysLow
    ) -> None:
        """A frame that is never stored (typing, presence, device changes, prekeys running low)."""

    def before_ack(self) -> None:
        """Called right before an ack leaves: persist what the acked entries changed."""


def ws_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/ws"
    raise ValueError(f"server URL must start with http:// or https://: {base_url!r}")


class Link:
    def __init__(self, urls: list[str], token: Callable[[], str | None], owner: Owner, *, name: str) -> None:
        self._urls = urls
        self._url_index = 0
        self._token = token
        self._owner = owner
        self._name = name
        self._protocol = proto.ClientProtocol()
        self._socket: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._fatal: errors.LienError | None = None
        self._runner: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[frames.Accepted]] = {}
        self._outbox: list[bytes] = []
        self._ack_flush: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    # --- state -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._runner is not None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def raise_if_failed(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    async def connect(self, timeout: float) -> None:
        """Start the link and wait until the server is ready (it reconnects by itself afterwards)."""
        if self._closed:
            raise RuntimeError("this client is closed")
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"lien-link-{self._name}")
        async with asyncio.timeout(timeout):
            while not self._ready.is_set():
                self.raise_if_failed()
                if self._runner.done():
                    self._runner.result()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self._ready.wait()
        self.raise_if_failed()

    async def wait_ready(self, timeout: float | None) -> None:
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    # --- the connection loop -----------------------------------------------------

    async def _run(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        while not self._closed:
            url = self._urls[self._url_index % len(self._urls)]
            try:
                # compression=None: the server does not compress (docs/protocol.md §2.2), no need to ask.
                async with websockets.connect(
                    ws_url(url),
                    compression=None,
                    max_size=limits.MAX_FRAME_BYTES,
                    open_timeout=10,
                    ping_interval=20,
                ) as socket:
                    self._socket = socket
                    token = self._token()
                    if token is None:
                        raise errors.AuthenticationFailed("No session token: sign in again.")
                    await socket.send(self._protocol.auth(token).decode())
                    async for data in socket:
                        if await self._on_frame(data):
                            delay = RECONNECT_MIN_SECONDS
                close_code = socket.close_code
            except errors.LienError as error:
                self.fail(error)
                return
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                close_code = getattr(getattr(exc, "rcvd", None), "code", None)
                logger.info("connection to %s lost (%s)", url, type(exc).__name__)
            finally:
                self._socket = None
                self._ready.clear()
            fatal = FATAL_CLOSE_CODES.get(close_code) if close_code is not None else None
            if fatal is not None:
                self.fail(fatal())
                return
            if self._closed:
                return
            self._url_index += 1
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    def fail(self, error: errors.LienError) -> None:
        """The link cannot go on (revoked, replaced, unsupported): stop, and fail every waiting send."""
        self._fatal = error
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()

    async def _on_frame(self, data: str | bytes) -> bool:
        """Handle one server frame; True when it was the ``ready`` frame."""
        try:
            event = self._protocol.receive(data)
        except errors.LienError:
            logger.warning("ignored an undecodable frame from the server")
            return False
        match event:
            case proto.Connected(ready=ready):
                await self._on_connected(ready)
                return True
            case proto.SendAccepted(accepted=accepted):
                future = self._waiting.pop(accepted.id, None)
                if future is not None and not future.done():
                    future.set_result(accepted)
            case proto.SendRefused(client_id=client_id, error=error):
                self._protocol.forget(client_id)
                future = self._waiting.pop(client_id, None)
                if future is not None and not future.done():
                    future.set_exception(error)
            case proto.InboxItem(frame=frame):
                await self._owner.on_inbox(frame)
            case proto.Ephemeral(frame=frames.Pong()):
                pass
            case proto.Ephemeral(frame=frame):
                self._owner.on_ephemeral(frame)  # type: ignore[arg-type]
            case proto.ServerError(error=error, ref=ref):
                logger.warning("server error %s (ref %s): %s", error.code, ref, error.message)
        return False

    async def _on_connected(self, ready: frames.Ready) -> None:
        for data in self._protocol.pending_sends():
            await self.write(data)
        outbox, self._outbox = self._outbox, []
        for data in outbox:
            await self.write(data)
        self._ready.set()
        await self._owner.on_connected(ready)

    # --- writing -------------------------------------------------------------------

    async def write(self, data: bytes) -> bool:
        """Send now if connected; False when the socket is down (the caller queues or relies on resend)."""
        socket = self._socket
        if socket is None:
            return False
        try:
            await socket.send(data.decode())
        except websockets.exceptions.ConnectionClosed:
            return False
        return True

    async def send_or_queue(self, data: bytes) -> None:
        """Send now, or after the next connect (receipts, watch: small, idempotent frames)."""
        if not (self._ready.is_set() and await self.write(data)) and len(self._outbox) < OUTBOX_LIMIT:
            self._outbox.append(data)

    async def dispatch(self, frame: Sendable) -> asyncio.Future[frames.Accepted]:
        """Hand a send over (resent after reconnects until answered); its answer comes in the future."""
        future: asyncio.Future[frames.Accepted] = asyncio.get_running_loop().create_future()
        self._waiting[frame.id] = future
        data = self._protocol.send(frame)
        if self._ready.is_set():
            await self.write(data)
        return future

    async def until_accepted(
        self, frame: Sendable, future: asyncio.Future[frames.Accepted]
    ) -> frames.Accepted:
        """Wait for ``accepted``; over the account's fair-use rate, wait the delay given and send it again."""
        while True:
            try:
                return await future
            except errors.RateLimited as limited:
                await asyncio.sleep(limited.retry_after or 1.0)
                future = await self.dispatch(frame)

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run ``work`` in the background; cancelled when the link closes."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- acks ------------------------------------------------------------------------

    def handled(self, seq: int) -> None:
        """The owner is done with inbox entry ``seq``; acks go in batches."""
        self._protocol.handled(seq)
        if self._protocol.unacked >= ACK_EVERY:
            self._flush_acks()
        elif self._ack_flush is None:
            self._ack_flush = asyncio.get_running_loop().call_later(ACK_DELAY_SECONDS, self._flush_acks)

    def _flush_acks(self) -> None:
        if self._ack_flush is not None:
            self._ack_flush.cancel()
            self._ack_flush = None
        if not self._protocol.unacked:
            return
        self._owner.before_ack()
        data = self._protocol.ack()
        if data is not None:
            self.spawn(self.write(data))

    # --- closing ------------------------------------------------------------------------

    async def close(self) -> None:
        """Flush acks, close the socket, stop the loop; sends still waiting fail with ConnectionError."""
        if self._closed:
            return
        if self._ready.is_set() and self._protocol.unacked:
            self._owner.before_ack()
            data = self._protocol.ack()
            if data is not None:
                await self.write(data)
        self._closed = True
        if self._ack_flush is not None:
            self._ack_flush.cancel()
        socket = self._socket
        if socket is not None:
            await socket.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("client closed"))
