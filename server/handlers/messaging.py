"""Acks, typing and presence: what a connected device reports besides messages (docs/protocol.md §6.3, §6.9).

Typing and presence are ephemeral: routed to the devices concerned through
the broker, never stored, and shared only between contacts (or fellow members
of a group).
"""

from __future__ import annotations

from lien.protocol import errors, frames, limits
from lien.protocol.codec import encode
from server.broker import BrokerUnavailable
from server.handlers.users import resolve_user
from server.services import Caller, Services
from server.storage import accounts, messages
from server.storage import groups as group_store
from server.ws import notices


async def ack(services: Services, caller: Caller, up_to: int) -> None:
    await services.committer.ack(caller.device_id, up_to)


async def relay_typing(services: Services, caller: Caller, typing: frames.Typing) -> None:
    """Ephemeral, never stored: to a contact's devices, or to the other members of a group."""
    if (typing.to is None) == (typing.group is None):
        raise errors.MalformedFrame("A typing frame names either `to` or `group`.")
    async with services.database.read() as connection:
        if typing.group is not None:
            if await group_store.member_role(connection, typing.group, caller.user_id) is None:
                raise errors.NotAMember()
            audience = [m.user_id for m in await group_store.members(connection, typing.group)]
        else:
            assert typing.to is not None
            recipient_id = await resolve_user(services, connection, typing.to)
            if (caller.user_id, recipient_id) not in services.known_contacts:
                if recipient_id not in await messages.contacts_among(
                    connection, caller.user_id, [recipient_id]
                ):
                    raise errors.NotAContact(details={"users": [typing.to]})
                services.known_contacts.add((caller.user_id, recipient_id))
            audience = [recipient_id]
    event = frames.TypingEvent(
        sender=caller.username, sender_device=caller.device_id, group=typing.group, active=typing.active
    )
    notice = notices.ephemeral(encode(event))
    try:
        await services.broker.publish_many(
            [(notices.user_channel(user_id), notice) for user_id in audience if user_id != caller.user_id]
        )
    except BrokerUnavailable:
        services.metrics.broker_failures.inc()


async def watchable(services: Services, caller: Caller, usernames: list[str]) -> dict[str, int]:
    """username -> id for the users the caller may watch: contacts only, else NotAContact."""
    if len(usernames) > limits.MAX_WATCHED_USERS:
        raise errors.TooManyWatched(f"At most {limits.MAX_WATCHED_USERS} users may be watched.")
    async with services.database.read() as connection:
        found = await accounts.user_ids_by_username(connection, list(set(usernames)))
        unknown = sorted(set(usernames) - set(found))
        if unknown:
            raise errors.UnknownUser(details={"users": unknown})
        allowed = await messages.contacts_among(connection, caller.user_id, list(found.values()))
    refused = sorted(
        name for name, user_id in found.items() if user_id not in allowed and user_id != caller.user_id
    )
    if refused:
        raise errors.NotAContact(details={"users": refused})
    return found
