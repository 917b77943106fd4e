"""The sockets this node holds, for metrics, resync after broker loss, and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from lien.protocol import errors

if TYPE_CHECKING:
    from server.ws.connection import DeviceConnection


class Hub:
    def __init__(self) -> None:
        self._connections: dict[str, DeviceConnection] = {}
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._connections)

    def add(self, connection: DeviceConnection) -> None:
        self._connections[connection.id] = connection
        self._empty.clear()

    def remove(self, connection: DeviceConnection) -> None:
        self._connections.pop(connection.id, None)
        if not self._connections:
            self._empty.set()

    def resync(self) -> None:
        """Every socket re-reads its inbox: notices may have been lost."""
        for connection in list(self._connections.values()):
            connection.wake()

    async def close_all(self, *, timeout: float = 5.0) -> None:
        """Graceful shutdown: close every socket with 1012 (service restart) and wait for them to drain."""
        for connection in list(self._connections.values()):
            connection.close(errors.ServiceUnavailable("The server is restarting; reconnect."))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._empty.wait()
