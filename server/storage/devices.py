"""Devices and the key directory: identity keys, signed prekeys, one-time prekeys."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BindParameter, Select, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lien.protocol.api import DeviceRegistration, OneTimePrekey, SignedPrekey
from server.storage import batch_pg
from server.storage.database import in_chunks
from server.storage.schema import devices, inbox, one_time_prekeys


@dataclass(frozen=True)
class DeviceRow:
    id: int
    user_id: int
    name: str
    identity_signing_key: bytes
    identity_exchange_key: bytes
    signed_prekey: SignedPrekey
    acked_seq: int
    created_at: int


def _device_from(row: object) -> DeviceRow:
    mapping = row._mapping  # type: ignore[attr-defined]
    return DeviceRow(
        id=mapping["id"],
        user_id=mapping["user_id"],
        name=mapping["name"],
        identity_signing_key=bytes(mapping["identity_signing_key"]),
        identity_exchange_key=bytes(mapping["identity_exchange_key"]),
        signed_prekey=SignedPrekey(
            id=mapping["signed_prekey_id"],
            key=bytes(mapping["signed_prekey"]),
            signature=bytes(mapping["signed_prekey_signature"]),
        ),
        acked_seq=mapping["acked_seq"],
        created_at=mapping["created_at"],
    )


async def add_device(
    connection: AsyncConnection, *, user_id: int, registration: DeviceRegistration, now: int
) -> int:
    result = await connection.execute(
        insert(devices)
        .values(
            user_id=user_id,
            name=registration.name,
            identity_signing_key=registration.identity_signing_key,
            identity_exchange_key=registration.identity_exchange_key,
            signed_prekey_id=registration.signed_prekey.id,
            signed_prekey=registration.signed_prekey.key,
            signed_prekey_signature=registration.signed_prekey.signature,
            created_at=now,
            last_seen_at=now,
        )
        .returning(devices.c.id)
    )
    device_id = int(result.scalar_one())
    if registration.prekeys:
        await add_prekeys(connection, device_id, registration.prekeys)
    return device_id


async def count_devices(connection: AsyncConnection, user_id: int) -> int:
    result = await connection.execute(
        select(func.count())
        .select_from(devices)
        .where(devices.c.user_id == user_id, devices.c.removed_at.is_(None))
    )
    return int(result.scalar_one())


async def get_device(connection: AsyncConnection, device_id: int) -> DeviceRow | None:
    row = (
        await connection.execute(
            select(devices).where(devices.c.id == device_id, devices.c.removed_at.is_(None))
        )
    ).first()
    return None if row is None else _device_from(row)


_LIVE_DEVICES = select(devices).where(
    devices.c.id.in_(bindparam("device_ids", expanding=True)), devices.c.removed_at.is_(None)
)


async def live_devices(connection: AsyncConnection, device_ids: list[int]) -> dict[int, DeviceRow]:
    """The devices among these ids that were not removed, by id (every receipt checks its device's key)."""
    rows = await connection.execute(_LIVE_DEVICES, {"device_ids": device_ids})
    return {row.id: _device_from(row) for row in rows}


async def devices_of(connection: AsyncConnection, user_ids: list[int]) -> list[DeviceRow]:
    rows = await connection.execute(
        select(devices)
        .where(devices.c.user_id.in_(user_ids), devices.c.removed_at.is_(None))
        .order_by(devices.c.id)
    )
    return [_device_from(row) for row in rows]


_DEVICE_IDS_OF = select(devices.c.id, devices.c.user_id).where(
    devices.c.user_id.in_(bindparam("user_ids", expanding=True)), devices.c.removed_at.is_(None)
)


async def device_ids_of(connection: AsyncConnection, user_ids: list[int]) -> dict[int, int]:
    """device id -> user id for the live devices of these users."""
    if connection.dialect.name == "postgresql":
        return await batch_pg.live_devices_of(await batch_pg.driver_of(connection), user_ids)
    found: dict[int, int] = {}
    for chunk in in_chunks(user_ids):
        rows = await connection.execute(_DEVICE_IDS_OF, {"user_ids": chunk})
        found.update({row.id: row.user_id for row in rows})
    return found


def by_owner(owners: dict[int, int]) -> dict[int, list[int]]:
    """user id -> device ids, from device id -> user id (what :func:`device_ids_of` returns)."""
    found: dict[int, list[int]] = {}
    for device_id, user_id in owners.items():
        found.setdefault(user_id, []).append(device_id)
    return found


async def set_signed_prekey(connection: AsyncConnection, device_id: int, prekey: SignedPrekey) -> None:
    await connection.execute(
        update(devices)
        .where(devices.c.id == device_id)
        .values(
            signed_prekey_id=prekey.id, signed_prekey=prekey.key, signed_prekey_signature=prekey.signature
        )
    )


async def touch_device(connection: AsyncConnection, device_id: int, now: int) -> None:
    await connection.execute(update(devices).where(devices.c.id == device_id).values(last_seen_at=now))


async def add_prekeys(connection: AsyncConnection, device_id: int, prekeys: list[OneTimePrekey]) -> None:
    """Store one-time prekeys; an id the device already uploaded replaces the old key."""
    key_ids = [prekey.id for prekey in prekeys]
    await connection.execute(
        delete(one_time_prekeys).where(
            one_time_prekeys.c.device_id == device_id, one_time_prekeys.c.key_id.in_(key_ids)
        )
    )
    await connection.execute(
        insert(one_time_prekeys),
        [{"device_id": device_id, "key_id": prekey.id, "public_key": prekey.key} for prekey in prekeys],
    )


def _prekeys_of(device_id: int | BindParameter[int]) -> Select[int]:
    """How many one-time prekeys the device has left."""
    return select(func.count()).select_from(one_time_prekeys).where(one_time_prekeys.c.device_id == device_id)


async def count_prekeys(connection: AsyncConnection, device_id: int) -> int:
    result = await connection.execute(_prekeys_of(device_id))
    return int(result.scalar_one())


@dataclass(frozen=True)
class SocketStart:
    """What a device's socket starts from, read in one query."""

    acked_seq: int
    next_seq: int
    """The last seq handed out: entries above ``acked_seq`` may wait in the inbox only if it is higher."""
    prekeys: int
    """One-time prekeys left (``ready`` asks for more when few are)."""


_SOCKET_START = select(
    devices.c.acked_seq,
    devices.c.next_seq,
    _prekeys_of(bindparam("device_id")).scalar_subquery().label("prekeys"),
).where(devices.c.id == bindparam("device_id"))
"""Built once, with bind parameters, as every socket starts with it (see ``accounts._LIVE_SESSION_OWNER``)."""


async def socket_start(connection: AsyncConnection, device_id: int) -> SocketStart:
    """The device's acked seq, last seq handed out and one-time prekeys left (all 0 if it is unknown)."""
    row = (await connection.execute(_SOCKET_START, {"device_id": device_id})).first()
    if row is None:
        return SocketStart(acked_seq=0, next_seq=0, prekeys=0)
    return SocketStart(acked_seq=int(row.acked_seq), next_seq=int(row.next_seq), prekeys=int(row.prekeys))


async def claim_one_time_prekey(connection: AsyncConnection, device_id: int) -> OneTimePrekey | None:
    """Remove and return the device's oldest one-time prekey: each is handed to exactly one claimer.

    On PostgreSQL, concurrent claimers skip rows another transaction has
    locked rather than wait and then find them gone; on SQLite the single
    writer makes the DELETE ... RETURNING atomic.
    """
    oldest = (
        select(one_time_prekeys.c.id)
        .where(one_time_prekeys.c.device_id == device_id)
        .order_by(one_time_prekeys.c.id)
        .limit(1)
    )
    if connection.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    row = (
        await connection.execute(
            delete(one_time_prekeys)
            .where(one_time_prekeys.c.id == oldest.scalar_subquery())
            .returning(one_time_prekeys.c.key_id, one_time_prekeys.c.public_key)
        )
    ).first()
    return None if row is None else OneTimePrekey(id=row.key_id, key=bytes(row.public_key))


async def remove_device(connection: AsyncConnection, device_id: int, now: int) -> None:
    """Mark the device removed; its one-time prekeys and pending inbox entries are deleted."""
    await connection.execute(update(devices).where(devices.c.id == device_id).values(removed_at=now))
    await connection.execute(delete(one_time_prekeys).where(one_time_prekeys.c.device_id == device_id))
    await connection.execute(delete(inbox).where(inbox.c.device_id == device_id))
