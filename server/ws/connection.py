"""One authenticated device socket: read frames, push the inbox in order, write with a bound.

The task serving the socket reads and dispatches frames. Two more tasks run
only while they have work, so an idle socket holds none of them: the pump
(pushes inbox entries in sequence order, at most ``DELIVERY_WINDOW`` unacked)
and the writer (drains a bounded queue onto the socket). Notices from the
broker hand the pump the next frame; it reads the database inbox only when it
may hold something no notice brought (at start, after a broker resync, when a
notice was dropped or a gap shows). The inbox is the truth, so a lost notice
only delays delivery until the next gap or resync.

A node holds tens of thousands of idle sockets, so what each one keeps while
idle is counted: no task but its own, no queue, slots instead of a ``__dict__``,
objects needed only under traffic (the outbound queue, the rate hold, the
logger adapter) made when traffic comes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from lien.protocol import codec, errors, frames, limits
from server.broker import BrokerUnavailable, Subscription
from server.handlers import accounts, envelopes, messaging, receipts
from server.services import Caller, Services
from server.storage import devices, messages
from server.ws import notices
from server.ws.rate_hold import RateHold

logger = logging.getLogger(__name__)

_MESSAGE_FRAME_PREFIX = b'{"type":"message"'
_MAX_PENDING_NOTICES = 2 * limits.DELIVERY_WINDOW


class _ConnectionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[conn {self.extra['connection']}] {msg}", kwargs  # type: ignore[index]


class DeviceConnection:
    __slots__ = (
        "_ack_target",
        "_ack_writer",
        "_acked_seq",
        "_close_error",
        "_close_requested",
        "_delivering",
        "_expiry",
        "_inbox_may_hold_more",
        "_outbound",
        "_pending",
        "_pump_task",
        "_pump_wanted",
        "_pushed_seq",
        "_rate_hold",
        "_reader",
        "_receipt_writer",
        "_receipts",
        "_send_writer",
        "_sends",
        "_sends_in_flight",
        "_sends_since",
        "_subscriptions",
        "_tasks",
        "_watched",
        "caller",
        "id",
        "services",
        "websocket",
    )

    def __init__(self, services: Services, websocket: WebSocket) -> None:
        self.services = services
        self.websocket = websocket
        self.id = secrets.token_hex(6)
        self.caller: Caller | None = None
        self._outbound: deque[str] | None = None
        """Frames for the socket, at most OUTBOUND_QUEUE_FRAMES; None while the writer is not running."""
        self._reader: asyncio.Task[Any] | None = None
        """The task serving the socket, while it reads frames (what close() interrupts)."""
        self._close_requested = False
        self._close_error: errors.LienError | None = None
        self._delivering = False
        """Set once the device's acked seq is known: from then on the pump may run."""
        self._pump_task: asyncio.Task[None] | None = None
        self._pump_wanted = False
        self._pending: dict[int, notices.InboxNotice] = {}
        self._inbox_may_hold_more = True
        """Read the inbox at the next wake-up: at start, after a resync, when a notice was dropped or is
        missing (a gap before the pending ones). Otherwise the notices carry every new entry."""
        self._pushed_seq = 0
        self._acked_seq = 0
        self._ack_target = 0
        self._ack_writer: asyncio.Task[None] | None = None
        self._sends: list[envelopes.Envelope] = []
        self._sends_in_flight = 0
        self._sends_since = 0.0
        """When the first of the queued sends arrived (loop time): ``lien_accept_seconds``."""
        self._send_writer: asyncio.Task[None] | None = None
        self._rate_hold: RateHold | None = None
        """Made at the first refusal for rate (docs/protocol.md §6.10)."""
        self._receipts: list[frames.Receipt] = []
        self._receipt_writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subscriptions: list[Subscription] = []
        self._watched: dict[int, Subscription] = {}
        self._expiry: asyncio.TimerHandle | None = None

    @property
    def log(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """The logger, tagged with the connection id (made when needed: logging is rare per socket)."""
        return _ConnectionLog(logger, {"connection": self.id})

    # --- lifecycle ---------------------------------------------------------

    async def serve(self) -> None:
        await self.websocket.accept()
        try:
            caller = await self._authenticate()
            if caller is None:
                return
            if not await self._within_connection_limit(caller):
                return
            self.caller = caller
            await self._start(caller)
            await self._read_until_closed()
            await self._cancel_tasks()
            if self._close_error is not None:
                await self._close_with(self._close_error)
        except (WebSocketDisconnect, ConnectionError):
            pass
        finally:
            await self._stop()

    def close(self, error: errors.LienError | None) -> None:
        """Ask the connection to close (from any task); ``error`` is sent first if given."""
        if self._close_requested:
            return
        self._close_requested = True
        self._close_error = error
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            # Suspended at an await (this code runs, so it does not): the cancellation lands there.
            # From the reader itself, the read loop sees the request before its next read.
            reader.cancel()

    async def _read_until_closed(self) -> None:
        """Read and dispatch frames until the peer goes away or close() is called."""
        reader = asyncio.current_task()
        assert reader is not None
        cancelling = reader.cancelling()
        self._reader = reader
        try:
            await self._read_loop()
        except asyncio.CancelledError:
            if not self._close_requested or reader.cancelling() > cancelling + 1:
                raise  # cancelled from outside (server shutdown), not (only) by close()
        finally:
            self._reader = None
        if reader.cancelling() > cancelling:
            reader.uncancel()  # close()'s cancellation, delivered (or swallowed by a library) already

    async def _authenticate(self) -> Caller | None:
        """Wait for a valid ``auth`` frame; one deadline for the whole wait, whatever else arrives."""
        deadline = asyncio.get_running_loop().time() + limits.AUTH_TIMEOUT_SECONDS
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    data = await self._receive_text()
            except TimeoutError:
                await self._close_with(errors.AuthTimeout())
                return None
            if data is None:
                return None
            try:
                frame = codec.decode_client_frame(data)
                if not isinstance(frame, frames.Auth):
                    raise errors.NotAuthenticated()
                if frame.v != limits.PROTOCOL_VERSION:
                    raise errors.UnsupportedVersion(
                        f"The server speaks protocol version {limits.PROTOCOL_VERSION}, not {frame.v}."
                    )
                return await accounts.authenticate(self.services, frame.token)
            except errors.LienError as error:
                self.services.metrics.error(error.code).inc()
                if error.close_code is not None:
                    await self._close_with(error)
                    return None
                await self._send_now(frames.Error(code=error.code, message=error.message))

    async def _within_connection_limit(self, caller: Caller) -> bool:
        limit = self.services.settings.max_connections_per_account
        try:
            online = await self.services.presence.online_devices(caller.user_id)
        except BrokerUnavailable:
            return True  # never refuse care for a broken counter
        if caller.device_id in online or len(online) < limit:
            return True  # a device taking over its own older connection is always let in
        await self._close_with(
            errors.TooManyConnections(
                f"At most {limit} devices of an account connect at once.", retry_after=5.0
            )
        )
        return False

    async def _start(self, caller: Caller) -> None:
        services = self.services
        self.log.info("device %d of user %d connected", caller.device_id, caller.user_id)
        own_channels = [notices.device_channel(caller.device_id), notices.user_channel(caller.user_id)]
        self._subscriptions.append(services.broker.subscribe(own_channels[0], self._on_device_notice))
        self._subscriptions.append(services.broker.subscribe(own_channels[1], self._on_ephemeral))
        await services.broker.wait_subscribed(own_channels)
        services.hub.add(self)
        services.metrics.connections.inc()
        async with services.database.read() as connection:
            start = await devices.socket_start(connection, caller.device_id)
        self._acked_seq = start.acked_seq
        # Read after subscribing: an entry committed later comes with a notice, so an inbox with
        # nothing above the ack needs no read (most reconnecting devices have nothing waiting).
        self._inbox_may_hold_more = start.next_seq > start.acked_seq
        self._pushed_seq = self._ack_target = self._acked_seq
        self._push(
            frames.Ready(
                v=limits.PROTOCOL_VERSION,
                user=caller.username,
                device=caller.device_id,
                server_time=services.clock(),
                prekeys=start.prekeys,
                replenish=start.prekeys < limits.PREKEY_REPLENISH_BELOW,
            )
        )
        if caller.expires_at:
            # A timer, not a task that sleeps: a task and its frame cost memory on every idle socket.
            delay = max(0.0, (caller.expires_at - services.clock()) / 1000)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)
        self._delivering = True
        self._wake_pump()
        await self._publish(notices.device_channel(caller.device_id), notices.kick(self.id))
        # Counted per device: a replaced connection going away leaves its successor online.
        if await services.presence.device_online(caller.user_id, caller.device_id):
            await self._publish_presence(caller.user_id, online=True)

    def _expire(self) -> None:
        """A session token ends at its expiry, even on a socket opened before."""
        self.close(errors.AuthenticationFailed("The session expired; sign in again."))

    async def _cancel_tasks(self) -> None:
        self._delivering = False  # no pump starts any more (a broker resync may still wake this socket)
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for subscription in [*self._subscriptions, *self._watched.values()]:
            subscription.close()
        self._subscriptions.clear()
        self._watched.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _stop(self) -> None:
        await self._cancel_tasks()
        if self.caller is not None:
            caller = self.caller
            self.services.hub.remove(self)
            self.services.metrics.connections.dec()
            if self._ack_target > self._acked_seq:
                await messaging.ack(self.services, caller, self._ack_target)
            try:
                if await self.services.presence.device_offline(caller.user_id, caller.device_id):
                    await self._publish_presence(caller.user_id, online=False)
            except Exception:
                self.log.warning("could not record device offline", exc_info=True)
            self.log.info("device %d disconnected", caller.device_id)

    async def _close_with(self, error: errors.LienError) -> None:
        self.services.metrics.error(error.code).inc()
        try:
            await self._send_now(
                frames.Error(code=error.code, message=error.message, retry_after=error.retry_after)
            )
            await self.websocket.close(code=error.close_code or 1000, reason=error.code)
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, (WebSocketDisconnect, ConnectionError)):
                self.log.error("connection task failed", exc_info=exc)
            self.close(None)

    # --- reading -----------------------------------------------------------

    async def _receive_text(self) -> str | None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            if text is not None:
                return str(text)
            await self._send_now(
                frames.Error(
                    code=errors.MalformedFrame.code, message="Frames are JSON text frames, not binary."
                )
            )

    async def _read_loop(self) -> None:
        while not self._close_requested:
            data = await self._receive_text()
            if data is None:
                self.close(None)
                return
            ref: str | None = None
            try:
                frame = codec.decode_client_frame(data)
                self.services.metrics.frame_in(str(type(frame).__struct_config__.tag)).inc()
                ref = _ref_of(frame)
                await self._dispatch(frame)
            except errors.LienError as error:
                self._report(error, ref)

    async def _dispatch(self, frame: frames.ClientFrame) -> None:
        caller = self.caller
        assert caller is not None
        match frame:
            case frames.Send() | frames.GroupSend() | frames.Resend():
                self._queue_send(caller, frame)
            case frames.Ack(up_to=up_to):
                self._handle_ack(caller, up_to)
            case frames.Receipt():
                self._queue_receipt(caller, frame)
            case frames.Typing():
                await messaging.relay_typing(self.services, caller, frame)
            case frames.Watch(users=users):
                await self._handle_watch(caller, users)
            case frames.Ping(id=ping_id):
                self._answer_ping(ping_id)
            case frames.Auth():
                raise errors.AlreadyAuthenticated()

    def _queue_send(self, caller: Caller, send: envelopes.Envelope) -> None:
        """Envelopes are stored in the order they arrived, those that queue up meanwhile together."""
        if self._sends_in_flight >= limits.MAX_SENDS_IN_FLIGHT:
            raise errors.TooManyInFlight()
        if not self._sends:
            self._sends_since = asyncio.get_running_loop().time()
        self._sends.append(send)
        self._sends_in_flight += 1
        if self._send_writer is None or self._send_writer.done():
            self._send_writer = self._spawn(self._write_sends(caller))

    async def _write_sends(self, caller: Caller) -> None:
        loop = asyncio.get_running_loop()
        while self._sends:
            batch, self._sends = self._sends, []
            arrived = self._sends_since
            held, retry_after = 0, 0.0
            if self._rate_hold is not None:
                held, retry_after = self._rate_hold.held_back([send.id for send in batch], loop.time())
            if held:
                self._refuse_for_rate(batch[:held], retry_after)
                batch = batch[held:]
                if not batch:
                    continue
            grant = await self.services.rate_limiter.take(caller.user_id, len(batch))
            if grant.granted < len(batch):
                # Refuse the tail, in order: the client sends it again after the delay, first.
                refused = batch[grant.granted :]
                batch = batch[: grant.granted]
                if self._rate_hold is None:
                    self._rate_hold = RateHold()
                self._rate_hold.refused(refused[0].id, grant.retry_after, loop.time())
                self._refuse_for_rate(refused, grant.retry_after)
                if not batch:
                    continue
            answered = False

            def answer(
                answers: envelopes.Answers, batch: list[envelopes.Envelope] = batch, arrived: float = arrived
            ) -> None:
                nonlocal answered
                answered = True
                self.services.metrics.accept_seconds.observe(loop.time() - arrived)
                for send, outcome in zip(batch, answers, strict=True):
                    if isinstance(outcome, errors.LienError):
                        self._report(outcome, send.id)
                    else:
                        self._push(outcome)

            try:
                # Answered once committed, before the notices go out; the next batch waits for them.
                await envelopes.accept_envelopes(self.services, caller, batch, answer=answer)
            except Exception:
                self.log.exception("storing %d envelopes failed", len(batch))
                if not answered:
                    answer([errors.InternalError()] * len(batch))
            finally:
                self._sends_in_flight -= len(batch)

    def _refuse_for_rate(self, sends: list[envelopes.Envelope], retry_after: float) -> None:
        self._sends_in_flight -= len(sends)
        self.services.metrics.rate_limited.inc(len(sends))
        for send in sends:
            self._report(errors.RateLimited(retry_after=retry_after), send.id)

    def _queue_receipt(self, caller: Caller, receipt: frames.Receipt) -> None:
        """Receipts are recorded in the order they arrived, those that queue up meanwhile together."""
        if len(self._receipts) >= limits.MAX_RECEIPTS_QUEUED:
            raise errors.TooManyInFlight("Too many receipts are waiting to be recorded on this connection.")
        self._receipts.append(receipt)
        if self._receipt_writer is None or self._receipt_writer.done():
            self._receipt_writer = self._spawn(self._write_receipts(caller))

    async def _write_receipts(self, caller: Caller) -> None:
        while self._receipts:
            batch, self._receipts = self._receipts, []
            try:
                outcomes = await receipts.record_receipts(self.services, caller, batch)
            except Exception:
                self.log.exception("recording receipts failed")
                for receipt in batch:
                    self._report(errors.InternalError(), receipt.message)
                continue
            for outcome in outcomes:
                if outcome.error is not None:
                    self._report(outcome.error, outcome.receipt.message)

    def _handle_ack(self, caller: Caller, up_to: int) -> None:
        if up_to > self._pushed_seq:
            raise errors.InvalidAck(
                f"Sequence {up_to} was not delivered yet (last delivered: {self._pushed_seq})."
            )
        if up_to <= self._ack_target:
            return
        self._ack_target = up_to
        self._wake_pump()
        if self._ack_writer is None or self._ack_writer.done():
            self._ack_writer = self._spawn(self._write_acks(caller))

    async def _write_acks(self, caller: Caller) -> None:
        """Coalesce acks: one write for whatever arrived while the previous one committed."""
        while self._ack_target > self._acked_seq:
            target = self._ack_target
            await messaging.ack(self.services, caller, target)
            self._acked_seq = max(self._acked_seq, target)

    def _answer_ping(self, ping_id: int) -> None:
        """The pong follows the commit of every ack received before the ping (docs/protocol.md §6.5)."""
        writer = self._ack_writer
        if writer is None or writer.done():
            self._push(frames.Pong(id=ping_id))
        else:
            self._spawn(self._pong_after(writer, ping_id))

    async def _pong_after(self, writer: asyncio.Task[None], ping_id: int) -> None:
        await asyncio.wait([writer])
        self._push(frames.Pong(id=ping_id))

    async def _handle_watch(self, caller: Caller, usernames: list[str]) -> None:
        allowed = await messaging.watchable(self.services, caller, usernames)
        wanted = set(allowed.values())
        for user_id in set(self._watched) - wanted:
            self._watched.pop(user_id).close()
        for user_id in wanted - set(self._watched):
            self._watched[user_id] = self.services.broker.subscribe(
                notices.presence_channel(user_id), self._on_ephemeral
            )
        await self.services.broker.wait_subscribed([notices.presence_channel(user_id) for user_id in wanted])
        online = await self.services.presence.online(list(wanted))
        for username, user_id in sorted(allowed.items()):
            self._push(frames.Presence(user=username, online=user_id in online))

    def _report(self, error: errors.LienError, ref: str | None) -> None:
        self.services.metrics.error(error.code).inc()
        if error.close_code is not None:
            self.close(error)
            return
        self._push(
            frames.Error(
                code=error.code,
                message=error.message,
                ref=ref,
                retry_after=error.retry_after,
                details=error.details,
            )
        )

    # --- delivery ----------------------------------------------------------

    def _on_device_notice(self, payload: bytes) -> None:
        notice = notices.decode(payload)
        match notice:
            case notices.InboxNotice():
                if notice.seq > self._pushed_seq:
                    if len(self._pending) < _MAX_PENDING_NOTICES:
                        self._pending[notice.seq] = notice
                    else:
                        self._inbox_may_hold_more = True  # dropped: the inbox still has it
                self._wake_pump()
            case notices.EphemeralNotice(frame=frame):
                self._push_ephemeral(frame)
            case notices.KickNotice(connection_id=other) if other != self.id:
                self.close(errors.SessionReplaced())
            case notices.RevokedNotice(session_id=session_id):
                if self.caller is not None and session_id in (None, self.caller.session_id):
                    self.close(errors.AuthenticationFailed("This session was signed out."))

    def _on_ephemeral(self, payload: bytes) -> None:
        notice = notices.decode(payload)
        if isinstance(notice, notices.EphemeralNotice):
            self._push_ephemeral(notice.frame)

    def wake(self) -> None:
        """Re-read the inbox (after the broker lost notices, e.g. a Redis restart)."""
        self._inbox_may_hold_more = True
        self._wake_pump()

    def _wake_pump(self) -> None:
        """Have the pump look for something to push, starting it if it is not running."""
        self._pump_wanted = True
        if self._delivering and self._pump_task is None:
            self._pump_task = self._spawn(self._pump())

    async def _pump(self) -> None:
        """Fill the delivery window while woken for something new; then end (an idle socket has no pump)."""
        caller = self.caller
        assert caller is not None
        try:
            while self._pump_wanted:
                self._pump_wanted = False
                await self._fill_window(caller)
        finally:
            self._pump_task = None

    async def _fill_window(self, caller: Caller) -> None:
        """Push the next entries in seq order, from stashed notices or else the inbox, up to the window."""
        while self._pushed_seq - self._ack_target < limits.DELIVERY_WINDOW:
            following = self._pending.pop(self._pushed_seq + 1, None)
            if following is not None:
                self._push_entry(following.seq, following.accepted_at, following.frame)
                continue
            if not self._inbox_may_hold_more and not self._pending:
                break  # every notice pushed, nothing known to be missing: no need to ask the database
            room = limits.DELIVERY_WINDOW - (self._pushed_seq - self._ack_target)
            asked = min(room, limits.INBOX_BATCH)
            async with self.services.database.read() as connection:
                entries = await messages.read_inbox(connection, caller.device_id, self._pushed_seq, asked)
            if len(entries) < asked:
                self._inbox_may_hold_more = False  # caught up with what has committed
            if not entries:
                break
            for entry in entries:
                frame = entry.frame
                if frame is None:
                    assert entry.group_message is not None
                    frame = envelopes.group_message_frame(entry.seq, entry.group_message)
                self._push_entry(entry.seq, entry.created_at, frame)
        for seq in [seq for seq in self._pending if seq <= self._pushed_seq]:
            del self._pending[seq]

    def _push_entry(self, seq: int, accepted_at: int, frame: bytes) -> None:
        self._pushed_seq = seq
        if frame.startswith(_MESSAGE_FRAME_PREFIX):
            self.services.metrics.messages_delivered.inc()
        self.services.metrics.delivery_latency.observe(max(0, self.services.clock() - accepted_at) / 1000)
        self._enqueue(frame.decode())

    # --- writing -----------------------------------------------------------

    def _push(self, frame: frames.Frame) -> None:
        self.services.metrics.frame_out(str(frame.__struct_config__.tag)).inc()
        self._enqueue(codec.encode_text(frame))

    def _push_ephemeral(self, frame: bytes) -> None:
        """Typing and presence are dropped, not queued, when the socket is backed up."""
        if self._outbound is None or len(self._outbound) < limits.OUTBOUND_QUEUE_FRAMES // 2:
            self._enqueue(frame.decode())

    def _enqueue(self, text: str) -> None:
        if self._close_requested:
            return  # the socket is closing: the writer, if any, is about to be cancelled
        outbound = self._outbound
        if outbound is None:
            outbound = self._outbound = deque()
            self._spawn(self._write_loop(outbound))
        elif len(outbound) >= limits.OUTBOUND_QUEUE_FRAMES:
            self.close(errors.TooSlow())
            return
        outbound.append(text)

    async def _write_loop(self, outbound: deque[str]) -> None:
        """Drain the queue onto the socket, then end: an idle socket holds neither queue nor writer."""
        try:
            while outbound:
                await self.websocket.send_text(outbound[0])
                outbound.popleft()
        finally:
            self._outbound = None

    async def _send_now(self, frame: frames.Frame) -> None:
        await self.websocket.send_text(codec.encode_text(frame))

    async def _publish(self, channel: str, payload: bytes) -> None:
        try:
            await self.services.broker.publish(channel, payload)
        except BrokerUnavailable:
            self.services.metrics.broker_failures.inc()

    async def _publish_presence(self, user_id: int, *, online: bool) -> None:
        assert self.caller is not None
        frame = codec.encode(frames.Presence(user=self.caller.username, online=online))
        await self._publish(notices.presence_channel(user_id), notices.ephemeral(frame))


def _ref_of(frame: frames.ClientFrame) -> str | None:
    match frame:
        case frames.Send(id=client_id) | frames.GroupSend(id=client_id) | frames.Resend(id=client_id):
            return client_id
        case frames.Receipt(message=message_id):
            return message_id
        case frames.Ping(id=ping_id):
            return str(ping_id)
    return None
