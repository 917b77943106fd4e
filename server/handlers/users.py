"""Usernames to user ids, cached: usernames never change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from lien.protocol import errors
from server.services import Services
from server.storage import accounts


async def resolve_user(services: Services, connection: AsyncConnection, username: str) -> int:
    """The id of a username (cached: usernames never change), or UnknownUser."""
    cached = services.user_ids.get(username)
    if cached is not None:
        return cached
    user = await accounts.user_by_username(connection, username)
    if user is None:
        raise errors.UnknownUser(f"No user {username!r}.")
    if len(services.user_ids) > 100_000:
        services.user_ids.clear()
    services.user_ids[username] = user.id
    return user.id
