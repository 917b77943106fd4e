"""Care-team groups: who may change what, and the event every change leaves (docs/protocol.md §4.6, §6.8).

Roles: the ``owner`` (one per group) and ``admin``s change the membership;
only the owner changes roles or hands the ownership over. Any member may
leave; an owner who leaves hands the group to the longest-standing admin, else
member. Every change bumps the group's epoch, is logged in ``group_events``
and reaches every member device (and the devices of a member who was removed
or left) as a ``group_event`` inbox entry, in epoch order.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable
from typing import cast

from sqlalchemy.ext.asyncio import AsyncConnection

from lien.protocol import errors, frames, limits
from lien.protocol.api import GroupCreate, GroupInfo, GroupList, GroupMember, MemberAdd, Role, RoleChange
from lien.protocol.codec import encode
from server.handlers.notify import announce
from server.handlers.users import resolve_user
from server.services import Caller, Services
from server.storage import accounts, devices, messages
from server.storage import groups as store
from server.storage.committer import InboxWrites
from server.storage.messages import QueuedEntry
from server.storage.schema import INBOX_GROUP_EVENT

MANAGERS = frozenset({"owner", "admin"})


def new_group_id() -> str:
    """``G`` + 24 base32 characters (120 random bits)."""
    return "G" + base64.b32encode(secrets.token_bytes(15)).decode()


async def _info(connection: AsyncConnection, group: store.GroupRow) -> GroupInfo:
    members = await store.members(connection, group.id)
    return GroupInfo(
        id=group.id,
        name=group.name,
        epoch=group.epoch,
        created_at=group.created_at,
        members=[
            GroupMember(user=m.username, role=cast(Role, m.role), joined_at=m.joined_at) for m in members
        ],
    )


async def _group_for_member(
    connection: AsyncConnection, group_id: str, caller: Caller, *, lock: bool = False
) -> tuple[store.GroupRow, str]:
    """The group and the caller's role, or UnknownGroup / NotAMember."""
    group = await store.get_group(connection, group_id, lock=lock)
    if group is None:
        raise errors.UnknownGroup()
    role = await store.member_role(connection, group_id, caller.user_id)
    if role is None:
        raise errors.NotAMember()
    return group, role


def _require(role: str, allowed: frozenset[str]) -> None:
    if role not in allowed:
        raise errors.RoleRequired(details={"required": sorted(allowed), "role": role})


async def _log_and_notify(
    services: Services,
    connection: AsyncConnection,
    writes: InboxWrites,
    group_id: str,
    *,
    kind: frames.GroupEventKind,
    actor: Caller,
    subject: tuple[int, str] | None = None,
    name: str | None = None,
    role: str | None = None,
    also_notify: list[int] | None = None,
) -> None:
    """Record the event under a new epoch and queue it for every member device (and ``also_notify``)."""
    now = services.clock()
    epoch = await store.record_event(
        connection,
        group_id,
        kind=kind,
        actor_id=actor.user_id,
        subject_id=None if subject is None else subject[0],
        detail=name or role or "",
        now=now,
    )
    member_ids = [member.user_id for member in await store.members(connection, group_id)]
    audience = sorted(set(member_ids) | set(also_notify or []))
    device_ids = sorted(await devices.device_ids_of(connection, audience))

    def build(seq: int) -> bytes:
        event = frames.GroupEvent(
            seq=seq,
            group=group_id,
            epoch=epoch,
            event=kind,
            actor=actor.username,
            subject=None if subject is None else subject[1],
            name=name,
            role=role,
            at=now,
        )
        return encode(event)

    message_id = f"{group_id}:{epoch}"
    for device_id in device_ids:
        writes.add(device_id, INBOX_GROUP_EVENT, message_id, now, build)


Changes = tuple[list[QueuedEntry], GroupInfo]


async def _run(
    services: Services, job: Callable[[AsyncConnection, InboxWrites], Awaitable[Changes]]
) -> GroupInfo:
    """Run a change in the next shared transaction, then wake the nodes holding the notified devices."""
    entries, info = await services.committer.run(job)
    await announce(services, entries)
    return info


async def create(services: Services, caller: Caller, request: GroupCreate) -> GroupInfo:
    wanted = sorted(set(request.members) - {caller.username})
    if len(wanted) + 1 > services.settings.max_group_members:
        raise errors.GroupFull(f"A group has at most {services.settings.max_group_members} members.")

    async def job(connection: AsyncConnection, writes: InboxWrites) -> Changes:
        found = await accounts.user_ids_by_username(connection, wanted)
        unknown = sorted(set(wanted) - set(found))
        if unknown:
            raise errors.UnknownUser(details={"users": unknown})
        if await store.group_count_of(connection, caller.user_id) >= limits.MAX_GROUPS_PER_USER:
            raise errors.InvalidRequest("You are a member of too many groups.")
        now = services.clock()
        group_id = new_group_id()
        await store.create_group(
            connection, group_id=group_id, name=request.name, created_by=caller.user_id, now=now
        )
        await store.add_member(connection, group_id, caller.user_id, "owner", now)
        for username in wanted:
            await store.add_member(connection, group_id, found[username], "member", now)
        await messages.add_contacts(connection, _pairs([caller.user_id, *found.values()]), now)
        start = len(writes.entries)
        await _log_and_notify(
            services, connection, writes, group_id, kind="created", actor=caller, name=request.name
        )
        group = await store.get_group(connection, group_id)
        assert group is not None
        return writes.entries[start:], await _info(connection, group)

    return await _run(services, job)


async def add_member(services: Services, caller: Caller, group_id: str, request: MemberAdd) -> GroupInfo:
    async def job(connection: AsyncConnection, writes: InboxWrites) -> Changes:
        group, role = await _group_for_member(connection, group_id, caller)
        _require(role, frozenset({"owner"}) if request.role == "admin" else MANAGERS)
        user_id = await resolve_user(services, connection, request.user)
        if await store.member_role(connection, group_id, user_id) is not None:
            raise errors.AlreadyMember()
        if await store.group_count_of(connection, user_id) >= limits.MAX_GROUPS_PER_USER:
            raise errors.InvalidRequest(f"{request.user} is a member of too many groups.")
        if await store.member_count(connection, group_id) >= services.settings.max_group_members:
            raise errors.GroupFull(f"A group has at most {services.settings.max_group_members} members.")
        now = services.clock()
        await store.add_member(connection, group_id, user_id, request.role, now)
        members = [member.user_id for member in await store.members(connection, group_id)]
        await messages.add_contacts(connection, _pairs(members, focus=user_id), now)
        start = len(writes.entries)
        await _log_and_notify(
            services,
            connection,
            writes,
            group_id,
            kind="member-added",
            actor=caller,
            subject=(user_id, request.user),
            role=request.role,
        )
        return writes.entries[start:], await _info(connection, await _reload(connection, group.id))

    return await _run(services, job)


async def remove_member(services: Services, caller: Caller, group_id: str, username: str) -> GroupInfo:
    """Remove ``username`` (owners remove anyone but themselves; admins remove plain members)."""
    if username == caller.username:
        return await leave(services, caller, group_id)

    async def job(connection: AsyncConnection, writes: InboxWrites) -> Changes:
        group, role = await _group_for_member(connection, group_id, caller)
        _require(role, MANAGERS)
        user_id = await resolve_user(services, connection, username)
        target_role = await store.member_role(connection, group_id, user_id)
        if target_role is None:
            raise errors.UnknownMember()
        if role == "admin" and target_role != "member":
            raise errors.RoleRequired(details={"required": ["owner"], "role": role})
        await store.remove_member(connection, group_id, user_id)
        start = len(writes.entries)
        await _log_and_notify(
            services,
            connection,
            writes,
            group_id,
            kind="member-removed",
            actor=caller,
            subject=(user_id, username),
            also_notify=[user_id],
        )
        return writes.entries[start:], await _info(connection, await _reload(connection, group.id))

    return await _run(services, job)


async def leave(services: Services, caller: Caller, group_id: str) -> GroupInfo:
    async def job(connection: AsyncConnection, writes: InboxWrites) -> Changes:
        group, role = await _group_for_member(connection, group_id, caller)
        await store.remove_member(connection, group_id, caller.user_id)
        start = len(writes.entries)
        remaining = await store.members(connection, group_id)
        if role == "owner" and remaining:
            heir = next((m for m in remaining if m.role == "admin"), remaining[0])
            await store.set_role(connection, group_id, heir.user_id, "owner")
            await _log_and_notify(
                services,
                connection,
                writes,
                group_id,
                kind="role-changed",
                actor=caller,
                subject=(heir.user_id, heir.username),
                role="owner",
            )
        await _log_and_notify(
            services,
            connection,
            writes,
            group_id,
            kind="member-left",
            actor=caller,
            subject=(caller.user_id, caller.username),
            also_notify=[caller.user_id],
        )
        return writes.entries[start:], await _info(connection, await _reload(connection, group.id))

    return await _run(services, job)


async def rename(services: Services, caller: Caller, group_id: str, name: str) -> GroupInfo:
    async def job(connection: AsyncConnection, writes: InboxWrites) -> Changes:
        group, role = await _group_for_member(connection, group_id, caller)
        _require(role, MANAGERS)
        await store.rename(connection, group_id, name)
        start = len(writes.entries)
        await _log_and_notify(services, connection, writes, group_id, kind="renamed", actor=caller, name=name)
        return writes.entries[start:], await _info(connection, await _reload(connection, group.id))

    return await _run(services, job)


async def change_role(
    services: Services, caller: Caller, group_id: str, username: str, request: RoleChange
) -> GroupInfo:
    async def job(connection: AsyncConnection, writes: InboxWrites) -> Changes:
        group, role = await _group_for_member(connection, group_id, caller)
        _require(role, frozenset({"owner"}))
        if username == caller.username:
            raise errors.InvalidRequest("The owner hands the ownership to another member instead.")
        user_id = await resolve_user(services, connection, username)
        if await store.member_role(connection, group_id, user_id) is None:
            raise errors.UnknownMember()
        start = len(writes.entries)
        await store.set_role(connection, group_id, user_id, request.role)
        if request.role == "owner":
            await store.set_role(connection, group_id, caller.user_id, "admin")
            await _log_and_notify(
                services,
                connection,
                writes,
                group_id,
                kind="role-changed",
                actor=caller,
                subject=(caller.user_id, caller.username),
                role="admin",
            )
        await _log_and_notify(
            services,
            connection,
            writes,
            group_id,
            kind="role-changed",
            actor=caller,
            subject=(user_id, username),
            role=request.role,
        )
        return writes.entries[start:], await _info(connection, await _reload(connection, group.id))

    return await _run(services, job)


async def devices_changed(services: Services, caller: Caller) -> None:
    """A member's device list changed: each of its groups moves to a new epoch (senders refresh)."""

    async def job(connection: AsyncConnection, writes: InboxWrites) -> list[QueuedEntry]:
        start = len(writes.entries)
        for group in await store.groups_of(connection, caller.user_id):
            await _log_and_notify(
                services,
                connection,
                writes,
                group.id,
                kind="devices-changed",
                actor=caller,
                subject=(caller.user_id, caller.username),
            )
        return writes.entries[start:]

    await announce(services, await services.committer.run(job))


async def info(services: Services, caller: Caller, group_id: str) -> GroupInfo:
    async with services.database.read() as connection:
        group, _ = await _group_for_member(connection, group_id, caller)
        return await _info(connection, group)


async def my_groups(services: Services, caller: Caller) -> GroupList:
    async with services.database.read() as connection:
        return GroupList(
            groups=[
                await _info(connection, group) for group in await store.groups_of(connection, caller.user_id)
            ]
        )


async def _reload(connection: AsyncConnection, group_id: str) -> store.GroupRow:
    group = await store.get_group(connection, group_id)
    assert group is not None
    return group


def _pairs(user_ids: list[int], *, focus: int | None = None) -> list[tuple[int, int]]:
    """Contact pairs, both ways: between everyone, or between ``focus`` and everyone."""
    others = sorted(set(user_ids))
    if focus is not None:
        return [pair for other in others if other != focus for pair in ((focus, other), (other, focus))]
    return [(a, b) for a in others for b in others if a != b]
