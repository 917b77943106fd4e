"""The yardstick: a bare WebSocket relay through Redis pub/sub. No auth, no storage, no crypto.

    python -m loadtests.baseline_relay --port 9001 --redis-url redis://127.0.0.1:6379/0

It speaks just enough of Lien's frames (docs/protocol.md §5) for the load
generator to drive it with the very code it drives Lien with:

* ``auth``: the token is ``username:device_id[:group,group…]``, believed as is;
  answered ``ready``. The connection subscribes to its device's channel and to
  its groups' channels.
* ``send``: one ``message`` per copy, published on the addressed device's
  channel; answered ``accepted`` at once (nothing is stored).
* ``group_send``: published once on the group's channel (each node fans it out
  to its local members); a message carrying sender-key copies goes device by
  device instead.
* ``receipt``: a ``status`` to the sending device, whose id the message id carries.
* ``ack`` is ignored, ``ping`` answered ``pong``.

Like a Lien connection it has a bounded outbound queue drained by a writer
task, so a slow client cannot pace the others. Bodies stay base64 text: the
relay never decodes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server import collector
from server.cli import WEBSOCKET_OPTIONS

logger = logging.getLogger(__name__)

OUTBOUND_QUEUE_FRAMES = 1024
_JSON = msgspec.json.Encoder()


class _Copy(msgspec.Struct):
    device: int
    body: str


class _Inbound(msgspec.Struct, tag_field="type"):
    pass


class _Auth(_Inbound, tag="auth"):
    token: str
    v: int = 1


class _Send(_Inbound, tag="send"):
    id: str
    to: str
    copies: list[_Copy]


class _GroupSend(_Inbound, tag="group_send"):
    id: str
    group: str
    body: str
    epoch: int = 1
    keys: list[_Copy] = []


class _Receipt(_Inbound, tag="receipt"):
    message: str
    kind: str
    hash: str
    at: int
    signature: str


class _Ack(_Inbound, tag="ack"):
    up_to: int


class _Ping(_Inbound, tag="ping"):
    id: int


_decoder = msgspec.json.Decoder(_Auth | _Send | _GroupSend | _Receipt | _Ack | _Ping)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Relay:
    """One process's share: a publishing client, one subscriber connection, the local sockets."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.publisher: Redis = Redis.from_url(redis_url)
        self.subscriber: Redis = Redis.from_url(redis_url)
        self.pubsub: Any = None
        self.local: dict[bytes, set[RelayConnection]] = {}
        self.counter = itertools.count(1)
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.pubsub = self.subscriber.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe("baseline:hello")
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.pubsub.aclose()
        await self.publisher.aclose()
        await self.subscriber.aclose()

    async def _listen(self) -> None:
        while True:
            message = await self.pubsub.get_message(timeout=1.0)
            if message is None or message["type"] != "message":
                continue
            for connection in list(self.local.get(message["channel"], ())):
                connection.deliver(message["data"])

    async def join(self, channel: bytes, connection: RelayConnection) -> None:
        members = self.local.setdefault(channel, set())
        members.add(connection)
        if len(members) == 1:
            await self.pubsub.subscribe(channel)

    async def leave(self, channel: bytes, connection: RelayConnection) -> None:
        members = self.local.get(channel)
        if members is None:
            return
        members.discard(connection)
        if not members:
            del self.local[channel]
            await self.pubsub.unsubscribe(channel)


def device_channel(device_id: int) -> bytes:
    return b"b:d:%d" % device_id


def group_channel(group_id: str) -> bytes:
    return b"b:g:" + group_id.encode()


class RelayConnection:
    def __init__(self, relay: Relay, websocket: WebSocket) -> None:
        self.relay = relay
        self.websocket = websocket
        self.user = ""
        self.device = 0
        self.channels: list[bytes] = []
        self.seq = 0
        self.outbound: asyncio.Queue[str] = asyncio.Queue(OUTBOUND_QUEUE_FRAMES)
        self.closing = False

    # --- incoming notices: b"m" + fragment (message), b"s" + fragment (status), b"g<device>|" + fragment
    def deliver(self, data: bytes) -> None:
        kind = data[:1]
        if kind == b"g":
            sender, _, fragment = data[1:].partition(b"|")
            if int(sender) == self.device:
                return
            kind, data = b"m", b"m" + fragment
        self.seq += 1
        frame_type = "message" if kind == b"m" else "status"
        self._enqueue(f'{{"type":"{frame_type}","seq":{self.seq},{data[1:].decode()}')

    def _enqueue(self, text: str) -> None:
        try:
            self.outbound.put_nowait(text)
        except asyncio.QueueFull:
            self.closing = True

    async def _write_loop(self) -> None:
        while True:
            text = await self.outbound.get()
            await self.websocket.send_text(text)

    async def serve(self) -> None:
        await self.websocket.accept()
        writer = asyncio.create_task(self._write_loop())
        try:
            while not self.closing:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is not None:
                    await self._handle(_decoder.decode(text))
        except (WebSocketDisconnect, ConnectionError, msgspec.DecodeError):
            pass
        finally:
            writer.cancel()
            for channel in self.channels:
                await self.relay.leave(channel, self)

    async def _handle(self, frame: _Inbound) -> None:
        relay = self.relay
        match frame:
            case _Send():
                message_id = f"{self.device}-{next(relay.counter)}"
                at = _now_ms()
                head = f'"message":"{message_id}","sender":"{self.user}","sender_device":{self.device},'
                head += f'"to":"{frame.to}","group":null,'
                for copy in frame.copies:
                    fragment = f'{head}"body":"{copy.body}","key":null,"at":{at}}}'
                    await relay.publisher.publish(device_channel(copy.device), b"m" + fragment.encode())
                self._answer(frame.id, message_id, at)
            case _GroupSend():
                message_id = f"{self.device}-{next(relay.counter)}"
                at = _now_ms()
                head = f'"message":"{message_id}","sender":"{self.user}","sender_device":{self.device},'
                head += f'"to":null,"group":"{frame.group}","body":"{frame.body}",'
                if frame.keys:
                    for copy in frame.keys:
                        fragment = f'{head}"key":"{copy.body}","at":{at}}}'
                        await relay.publisher.publish(device_channel(copy.device), b"m" + fragment.encode())
                else:
                    fragment = f'{head}"key":null,"at":{at}}}'
                    notice = b"g%d|" % self.device + fragment.encode()
                    await relay.publisher.publish(group_channel(frame.group), notice)
                self._answer(frame.id, message_id, at)
            case _Receipt():
                sender_device = frame.message.partition("-")[0]
                fragment = (
                    f'"message":"{frame.message}","kind":"{frame.kind}","by":"{self.user}",'
                    f'"by_device":{self.device},"at":{_now_ms()},"hash":"{frame.hash}",'
                    f'"device_time":{frame.at},"signature":"{frame.signature}"}}'
                )
                await relay.publisher.publish(b"b:d:" + sender_device.encode(), b"s" + fragment.encode())
            case _Ack():
                pass
            case _Ping():
                self._enqueue(f'{{"type":"pong","id":{frame.id}}}')
            case _Auth():
                user, _, rest = frame.token.partition(":")
                device, _, groups = rest.partition(":")
                self.user, self.device = user, int(device)
                self.channels = [device_channel(self.device)]
                self.channels += [group_channel(group) for group in groups.split(",") if group]
                for channel in self.channels:
                    await relay.join(channel, self)
                ready = {
                    "type": "ready",
                    "v": 1,
                    "user": self.user,
                    "device": self.device,
                    "server_time": _now_ms(),
                    "prekeys": 100,
                    "replenish": False,
                }
                self._enqueue(_JSON.encode(ready).decode())

    def _answer(self, client_id: str, message_id: str, at: int) -> None:
        self._enqueue(
            f'{{"type":"accepted","id":"{client_id}","message":"{message_id}","at":{at},"duplicate":false}}'
        )


def create_app(redis_url: str) -> Starlette:
    relay = Relay(redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await relay.start()
        try:
            yield
        finally:
            await relay.stop()

    async def websocket_endpoint(websocket: WebSocket) -> None:
        await RelayConnection(relay, websocket).serve()

    async def healthz(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [WebSocketRoute("/ws", websocket_endpoint), Route("/healthz", healthz)]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    arguments = parser.parse_args()
    logging.basicConfig(level="WARNING")
    # The same WebSocket and collector settings as `lien serve` (server/cli.py), so the transport
    # costs the same and neither pauses longer for garbage.
    app = create_app(arguments.redis_url)
    collector.settle_for_serving()
    uvicorn.run(
        app,
        host=arguments.host,
        port=arguments.port,
        log_level="warning",
        **WEBSOCKET_OPTIONS,
        timeout_graceful_shutdown=5,
        server_header=False,
    )


if __name__ == "__main__":
    main()
