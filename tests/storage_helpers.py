"""Rows the storage tests start from, written through server.storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lien.protocol.api import Profile
from server.storage import accounts, devices
from server.storage.database import Database
from server.storage.migrate import upgrade_to_head
from tests.keys import new_device


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Database]:
    """A database at ``url`` upgraded to the latest schema, closed afterwards."""
    database = Database(url)
    await upgrade_to_head(database)
    try:
        yield database
    finally:
        await database.close()


async def add_devices(database: Database, count: int, username: str = "owner") -> list[int]:
    """A new user with ``count`` devices; their ids."""
    async with database.write() as connection:
        user_id = await accounts.create_user(
            connection, username=username, password_hash="x", profile=Profile(display_name="U"), now=1
        )
        return [
            await devices.add_device(
                connection, user_id=user_id, registration=new_device(prekeys=0).registration, now=1
            )
            for _ in range(count)
        ]
