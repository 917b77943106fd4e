"""The sockets this node holds, for metrics, resync after broker loss, and shutdown."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from lien.protocol import errors

if TYPE_CHECKING:
    from server.ws.connection import DeviceConnection


class Hub:
    def __init__(self) -> None:
        self._connections: dict[str, DeviceConnection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def add(self, connection: DeviceConnection) -> None:
        self._connections[connection.id] = connection

    def remove(self, connection: DeviceConnection) -> None:
        self._connections.pop(connection.id, None)

    def resync(self) -> None:
        """Every socket re-reads its inbox: notices may have been lost."""
        for connection in list(self._connections.values()):
            connection.wake()

    async def close_all(self, *, timeout: float = 5.0) -> None:
        """Graceful shutdown: close every socket with 1012 (service restart) and wait for them to drain."""
        for connection in list(self._connections.values()):
            connection.close(errors.ServiceUnavailable("The server is restarting; reconnect."))
        deadline = asyncio.get_running_loop().time() + timeout
        while self._connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
