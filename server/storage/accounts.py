"""Accounts, sessions and invite codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lien.protocol import errors
from lien.protocol.api import Profile
from server.storage.normalise import normalise
from server.storage.schema import devices, invites, sessions, users


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    password_hash: str
    profile: Profile
    created_at: int


@dataclass(frozen=True)
class SessionRow:
    id: int
    user_id: int
    device_id: int
    expires_at: int


_PROFILE_COLUMNS = ("display_name", "profession", "rpps", "organisation", "city", "unlisted")


def _normalised_columns(username: str, profile: dict[str, Any]) -> dict[str, str]:
    """The directory's search columns for these profile values (docs/protocol.md §4.7)."""
    return {
        "norm_name": normalise(f"{profile['display_name']} {username}"),
        "norm_profession": normalise(profile["profession"]),
        "norm_organisation": normalise(profile["organisation"]),
        "norm_city": normalise(profile["city"]),
    }


def _user_from(row: object) -> UserRow:
    mapping = row._mapping  # type: ignore[attr-defined]
    return UserRow(
        id=mapping["id"],
        username=mapping["username"],
        password_hash=mapping["password_hash"],
        profile=Profile(**{column: mapping[column] for column in _PROFILE_COLUMNS}),
        created_at=mapping["created_at"],
    )


async def create_user(
    connection: AsyncConnection, *, username: str, password_hash: str, profile: Profile, now: int
) -> int:
    """Insert the user; raises UsernameTaken when the name exists (also under a race)."""
    values = {column: getattr(profile, column) for column in _PROFILE_COLUMNS}
    values.update(_normalised_columns(username, values))
    try:
        async with connection.begin_nested():
            result = await connection.execute(
                insert(users)
                .values(username=username, password_hash=password_hash, created_at=now, **values)
                .returning(users.c.id)
            )
    except IntegrityError:
        raise errors.UsernameTaken() from None
    return int(result.scalar_one())


async def user_by_username(connection: AsyncConnection, username: str) -> UserRow | None:
    row = (await connection.execute(select(users).where(users.c.username == username))).first()
    return None if row is None else _user_from(row)


async def user_by_id(connection: AsyncConnection, user_id: int) -> UserRow | None:
    row = (await connection.execute(select(users).where(users.c.id == user_id))).first()
    return None if row is None else _user_from(row)


async def user_ids_by_username(connection: AsyncConnection, usernames: list[str]) -> dict[str, int]:
    rows = await connection.execute(
        select(users.c.username, users.c.id).where(users.c.username.in_(usernames))
    )
    return {row.username: row.id for row in rows}


async def usernames_by_id(connection: AsyncConnection, user_ids: list[int]) -> dict[int, str]:
    rows = await connection.execute(select(users.c.id, users.c.username).where(users.c.id.in_(user_ids)))
    return {row.id: row.username for row in rows}


async def update_profile(connection: AsyncConnection, user_id: int, changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(_PROFILE_COLUMNS)
    if unknown:
        raise ValueError(f"not profile columns: {sorted(unknown)}")
    if not changes:
        return
    current = await user_by_id(connection, user_id)
    if current is None:
        return
    merged = {column: getattr(current.profile, column) for column in _PROFILE_COLUMNS} | changes
    values = changes | _normalised_columns(current.username, merged)
    await connection.execute(update(users).where(users.c.id == user_id).values(**values))


@dataclass(frozen=True)
class DirectoryQuery:
    """Normalised search terms; every term of ``words`` must appear in the name (display name or username)."""

    words: list[str]
    profession: str = ""
    organisation: str = ""
    city: str = ""
    after: tuple[str, int] | None = None
    """Keyset cursor: the (norm_name, id) of the last result of the previous page."""


def _contains(column: Any, value: str) -> Any:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(f"%{escaped}%", escape="\\")


async def search_directory(
    connection: AsyncConnection, query: DirectoryQuery, limit: int
) -> list[tuple[UserRow, str]]:
    """Listed users matching every criterion, by name; each with its ``norm_name`` (for the cursor)."""
    conditions: list[Any] = [users.c.unlisted.is_(False)]
    conditions += [_contains(users.c.norm_name, word) for word in query.words]
    for column, value in (
        (users.c.norm_profession, query.profession),
        (users.c.norm_organisation, query.organisation),
        (users.c.norm_city, query.city),
    ):
        if value:
            conditions.append(_contains(column, value))
    if query.after is not None:
        name, last_id = query.after
        conditions.append(
            or_(users.c.norm_name > name, and_(users.c.norm_name == name, users.c.id > last_id))
        )
    rows = await connection.execute(
        select(users).where(*conditions).order_by(users.c.norm_name, users.c.id).limit(limit)
    )
    return [(_user_from(row), row.norm_name) for row in rows]


async def create_session(
    connection: AsyncConnection, *, user_id: int, device_id: int, token_hash: bytes, now: int, expires_at: int
) -> None:
    await connection.execute(
        insert(sessions).values(
            user_id=user_id, device_id=device_id, token_hash=token_hash, created_at=now, expires_at=expires_at
        )
    )


@dataclass(frozen=True)
class SessionOwner:
    """Who a session token stands for: the live session and its user's name (its device is live)."""

    session: SessionRow
    username: str


_LIVE_SESSION_OWNER = (
    select(sessions.c.id, sessions.c.user_id, sessions.c.device_id, sessions.c.expires_at, users.c.username)
    .select_from(
        sessions.join(users, users.c.id == sessions.c.user_id).join(
            devices, and_(devices.c.id == sessions.c.device_id, devices.c.removed_at.is_(None))
        )
    )
    .where(
        sessions.c.token_hash == bindparam("token_hash"),
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > bindparam("now"),
    )
)
"""Built once, with bind parameters: building this join and its cache key on every call cost a node
about as much CPU as running it (0.6 of 1.2 ms on this project's 2-core test machines)."""


async def live_session_owner(connection: AsyncConnection, token_hash: bytes, now: int) -> SessionOwner | None:
    """The live session for this token hash, with its user's name, if its device was not removed.

    One query: every socket and every HTTP request authenticates this way.
    """
    row = (await connection.execute(_LIVE_SESSION_OWNER, {"token_hash": token_hash, "now": now})).first()
    if row is None:
        return None
    session = SessionRow(id=row.id, user_id=row.user_id, device_id=row.device_id, expires_at=row.expires_at)
    return SessionOwner(session=session, username=row.username)


async def revoke_session(connection: AsyncConnection, session_id: int, now: int) -> None:
    await connection.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_device_sessions(connection: AsyncConnection, device_id: int, now: int) -> None:
    await connection.execute(
        update(sessions)
        .where(sessions.c.device_id == device_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def create_invite(
    connection: AsyncConnection, *, code_hash: bytes, note: str, now: int, expires_at: int
) -> None:
    await connection.execute(
        insert(invites).values(code_hash=code_hash, note=note, created_at=now, expires_at=expires_at)
    )


async def consume_invite(connection: AsyncConnection, *, code_hash: bytes, user_id: int, now: int) -> bool:
    """Mark the invite used by this user; False when unknown, used or expired (one winner under races)."""
    result = await connection.execute(
        update(invites)
        .where(invites.c.code_hash == code_hash, invites.c.used_by.is_(None), invites.c.expires_at > now)
        .values(used_by=user_id, used_at=now)
    )
    return result.rowcount == 1


async def count_users(connection: AsyncConnection) -> int:
    return int((await connection.execute(select(func.count()).select_from(users))).scalar_one())
