"""Care-team groups: the group row, its members and its event log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.storage.database import in_chunks
from server.storage.schema import group_events, group_members, groups, users


@dataclass(frozen=True)
class GroupRow:
    id: str
    name: str
    created_by: int
    created_at: int
    epoch: int


@dataclass(frozen=True)
class MemberRow:
    user_id: int
    username: str
    role: str
    joined_at: int


@dataclass(frozen=True)
class EventRow:
    group_id: str
    epoch: int
    kind: str
    actor_id: int
    subject_id: int | None
    detail: str
    at: int


async def create_group(
    connection: AsyncConnection, *, group_id: str, name: str, created_by: int, now: int
) -> None:
    await connection.execute(
        insert(groups).values(id=group_id, name=name, created_by=created_by, created_at=now, epoch=0)
    )


async def get_group(connection: AsyncConnection, group_id: str, *, lock: bool = False) -> GroupRow | None:
    """The group; ``lock`` holds its row against epoch changes until the transaction ends (PostgreSQL)."""
    query = select(groups).where(groups.c.id == group_id)
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = (await connection.execute(query)).first()
    if row is None:
        return None
    return GroupRow(row.id, row.name, row.created_by, row.created_at, row.epoch)


_GROUPS = select(groups).where(groups.c.id.in_(bindparam("group_ids", expanding=True))).order_by(groups.c.id)
_GROUPS_FOR_SHARE = _GROUPS.with_for_update(read=True)
"""Built once, with bind parameters: every transaction of group messages reads (and locks) its groups."""


async def get_groups(
    connection: AsyncConnection, group_ids: list[str], *, lock: bool = False
) -> dict[str, GroupRow]:
    """The groups that exist among ``group_ids``; ``lock`` holds their rows as :func:`get_group` does.

    Rows are locked in id order, the order every transaction locks several groups in.
    """
    query = _GROUPS_FOR_SHARE if lock and connection.dialect.name == "postgresql" else _GROUPS
    rows = await connection.execute(query, {"group_ids": group_ids})
    return {row.id: GroupRow(row.id, row.name, row.created_by, row.created_at, row.epoch) for row in rows}


_MEMBER_NAMES = (
    select(group_members.c.group_id, group_members.c.user_id, users.c.username)
    .join(users, users.c.id == group_members.c.user_id)
    .where(group_members.c.group_id.in_(bindparam("group_ids", expanding=True)))
)


async def member_names(connection: AsyncConnection, group_ids: list[str]) -> dict[str, dict[int, str]]:
    """For each of these groups: user id -> username of its members."""
    rows = await connection.execute(_MEMBER_NAMES, {"group_ids": group_ids})
    found: dict[str, dict[int, str]] = {group_id: {} for group_id in group_ids}
    for row in rows:
        found[row.group_id][row.user_id] = row.username
    return found


async def members(connection: AsyncConnection, group_id: str) -> list[MemberRow]:
    """Members in the order they joined."""
    rows = await connection.execute(
        select(group_members.c.user_id, users.c.username, group_members.c.role, group_members.c.joined_at)
        .join(users, users.c.id == group_members.c.user_id)
        .where(group_members.c.group_id == group_id)
        .order_by(group_members.c.joined_at, group_members.c.user_id)
    )
    return [MemberRow(row.user_id, row.username, row.role, row.joined_at) for row in rows]


async def member_role(connection: AsyncConnection, group_id: str, user_id: int) -> str | None:
    result = await connection.execute(
        select(group_members.c.role).where(
            group_members.c.group_id == group_id, group_members.c.user_id == user_id
        )
    )
    role = result.scalar_one_or_none()
    return None if role is None else str(role)


_JOINED_AT = select(group_members.c.group_id, group_members.c.user_id, group_members.c.joined_at).where(
    tuple_(group_members.c.group_id, group_members.c.user_id).in_(bindparam("memberships", expanding=True))
)


async def joined_at(
    connection: AsyncConnection, memberships: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """For each (group id, user id) that is a membership: when the user (last) joined the group."""
    found: dict[tuple[str, int], int] = {}
    for chunk in in_chunks(memberships):
        rows = await connection.execute(_JOINED_AT, {"memberships": chunk})
        found.update({(row.group_id, row.user_id): int(row.joined_at) for row in rows})
    return found


async def member_count(connection: AsyncConnection, group_id: str) -> int:
    result = await connection.execute(
        select(func.count()).select_from(group_members).where(group_members.c.group_id == group_id)
    )
    return int(result.scalar_one())


async def add_member(connection: AsyncConnection, group_id: str, user_id: int, role: str, now: int) -> None:
    await connection.execute(
        insert(group_members).values(group_id=group_id, user_id=user_id, role=role, joined_at=now)
    )


async def remove_member(connection: AsyncConnection, group_id: str, user_id: int) -> None:
    await connection.execute(
        delete(group_members).where(group_members.c.group_id == group_id, group_members.c.user_id == user_id)
    )


async def set_role(connection: AsyncConnection, group_id: str, user_id: int, role: str) -> None:
    await connection.execute(
        update(group_members)
        .where(group_members.c.group_id == group_id, group_members.c.user_id == user_id)
        .values(role=role)
    )


async def rename(connection: AsyncConnection, group_id: str, name: str) -> None:
    await connection.execute(update(groups).where(groups.c.id == group_id).values(name=name))


async def record_event(
    connection: AsyncConnection,
    group_id: str,
    *,
    kind: str,
    actor_id: int,
    subject_id: int | None,
    detail: str,
    now: int,
) -> int:
    """Bump the group's epoch and log the event under it; returns the new epoch."""
    result = await connection.execute(
        update(groups)
        .where(groups.c.id == group_id)
        .values(epoch=groups.c.epoch + 1)
        .returning(groups.c.epoch)
    )
    epoch = int(result.scalar_one())
    await connection.execute(
        insert(group_events).values(
            group_id=group_id,
            epoch=epoch,
            kind=kind,
            actor_id=actor_id,
            subject_id=subject_id,
            detail=detail,
            at=now,
        )
    )
    return epoch


async def groups_of(connection: AsyncConnection, user_id: int) -> list[GroupRow]:
    rows = await connection.execute(
        select(groups)
        .join(group_members, group_members.c.group_id == groups.c.id)
        .where(group_members.c.user_id == user_id)
        .order_by(groups.c.created_at, groups.c.id)
    )
    return [GroupRow(row.id, row.name, row.created_by, row.created_at, row.epoch) for row in rows]


async def group_count_of(connection: AsyncConnection, user_id: int) -> int:
    result = await connection.execute(
        select(func.count()).select_from(group_members).where(group_members.c.user_id == user_id)
    )
    return int(result.scalar_one())


async def events(connection: AsyncConnection, group_id: str) -> list[EventRow]:
    rows = await connection.execute(
        select(group_events).where(group_events.c.group_id == group_id).order_by(group_events.c.epoch)
    )
    return [
        EventRow(row.group_id, row.epoch, row.kind, row.actor_id, row.subject_id, row.detail, row.at)
        for row in rows
    ]
