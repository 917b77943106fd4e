"""The app served by a real uvicorn in the test's own event loop, and a frame-level WebSocket client.

Level 2 of the test pyramid for the WebSocket side: the real ASGI server and a
real WebSocket client on 127.0.0.1, no subprocess. Every wait has a timeout,
so a missing frame fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from lien.protocol import codec, frames, limits
from lien.protocol.api import Profile, RegisterRequest, SessionGrant
from server.app import create_app
from server.cli import WEBSOCKET_OPTIONS
from server.settings import Settings
from tests.keys import TestDevice, new_device

PASSWORD = "correct horse battery"
FRAME_TIMEOUT = 10.0
F = TypeVar("F")


@asynccontextmanager
async def serving(settings: Settings, *, port: int = 0) -> AsyncIterator[str]:
    """Serve the app on 127.0.0.1 (a free port unless given); yields its base URL.

    A node left on the default data dir gets a temporary one: its ledger key
    must not land in the working directory.
    """
    if settings.data_dir == Settings().data_dir:
        settings = dataclasses.replace(settings, data_dir=Path(tempfile.mkdtemp(prefix="lien-node-")))
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        **WEBSOCKET_OPTIONS,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped while starting")
            await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        await task


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/ws"


class FrameSocket:
    """One WebSocket speaking frames, with timeouts on every receive."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    async def send(self, frame: frames.Frame) -> None:
        await self.socket.send(codec.encode_text(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.socket.send(data)

    async def receive(self, timeout: float = FRAME_TIMEOUT) -> frames.ServerFrame:
        async with asyncio.timeout(timeout):
            return codec.decode_server_frame(await self.socket.recv())

    async def receive_until(self, kind: type[F], *, timeout: float = FRAME_TIMEOUT, limit: int = 1000) -> F:
        """The next frame of this type, skipping others (presence and the like)."""
        async with asyncio.timeout(timeout):
            for _ in range(limit):
                frame = codec.decode_server_frame(await self.socket.recv())
                if isinstance(frame, kind):
                    return frame
        raise AssertionError(f"no {kind.__name__} within {limit} frames")

    async def authenticate(self, token: str) -> frames.Ready:
        await self.send(frames.Auth(v=limits.PROTOCOL_VERSION, token=token))
        ready = await self.receive()
        assert isinstance(ready, frames.Ready), ready
        return ready

    async def close_code(self, timeout: float = FRAME_TIMEOUT) -> int | None:
        """Read until the server closes the socket; its close code."""
        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.socket.recv()
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None


@asynccontextmanager
async def frame_socket(base_url: str, token: str | None = None) -> AsyncIterator[FrameSocket]:
    """A WebSocket to the node, authenticated when a token is given."""
    async with connect(ws_url(base_url), max_size=None, max_queue=None) as socket:
        wrapped = FrameSocket(socket)
        if token is not None:
            await wrapped.authenticate(token)
        yield wrapped


async def register(
    http: httpx.AsyncClient, username: str, *, device: TestDevice | None = None, **profile: Any
) -> tuple[SessionGrant, TestDevice]:
    device = device or new_device()
    request = RegisterRequest(
        username=username,
        password=PASSWORD,
        profile=Profile(display_name=profile.pop("display_name", username.title()), **profile),
        device=device.registration,
    )
    response = await http.post("/v1/register", content=msgspec.json.encode(request))
    assert response.status_code == 201, response.text
    return msgspec.json.decode(response.content, type=SessionGrant), device


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
