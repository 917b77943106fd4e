"""Helpers for tests whose writes must meet in one transaction of the group committer."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from lien.protocol.api import Profile
from server.services import Caller, Services
from server.storage import accounts, devices
from server.storage.committer import InboxWrites
from tests.keys import TestDevice, new_device

TIMEOUT = 20.0


async def add_user(services: Services, username: str, device_count: int) -> list[Caller]:
    return [caller for caller, _ in await add_user_with_keys(services, username, device_count)]


async def add_user_with_keys(
    services: Services, username: str, device_count: int
) -> list[tuple[Caller, TestDevice]]:
    """A user with ``device_count`` devices: each as a caller, with its keys (to sign receipts)."""
    keys = [new_device(prekeys=0) for _ in range(device_count)]
    async with services.database.write() as connection:
        user_id = await accounts.create_user(
            connection, username=username, password_hash="x", profile=Profile(display_name=username), now=1
        )
        device_ids = [
            await devices.add_device(connection, user_id=user_id, registration=key.registration, now=1)
            for key in keys
        ]
    return [
        (Caller(user_id, username, device_id, session_id=0), key)
        for device_id, key in zip(device_ids, keys, strict=True)
    ]


class HeldCommitter:
    """Keeps every worker of the app's committer busy until released, so that jobs pile up."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.release = asyncio.Event()
        self.holding: list[asyncio.Task[Any]] = []
        self.held = 0
        self.batches: list[int] = []

    async def __aenter__(self) -> HeldCommitter:
        async def hold(connection: AsyncConnection, writes: InboxWrites) -> None:
            self.held += 1
            await self.release.wait()

        # One at a time: a worker takes every job queued when it starts a transaction.
        for worker in range(self.services.committer.worker_count):
            self.holding.append(asyncio.create_task(self.services.committer.run(hold)))
            async with asyncio.timeout(TIMEOUT):
                while self.held <= worker:
                    await asyncio.sleep(0.005)
        self.services.committer.on_batch = self.batches.append
        return self

    async def queued(self, count: int) -> None:
        """Wait until ``count`` jobs wait behind the held workers."""
        async with asyncio.timeout(TIMEOUT):
            while self.services.committer.waiting < count:
                await asyncio.sleep(0.005)

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await asyncio.gather(*self.holding)
