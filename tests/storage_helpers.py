"""Rows the storage tests start from, written through server.storage."""

from __future__ import annotations

from lien.protocol.api import Profile
from server.storage import accounts, devices
from server.storage.database import Database
from tests.keys import new_device


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
