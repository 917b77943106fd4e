"""The deletes of a retention pass (rules in server/retention.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, cast, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lien import ledger as chain
from server.storage import ledger as ledger_store
from server.storage.schema import devices, inbox, ledger, message_copies, messages, receipts, users


@dataclass(frozen=True)
class Purged:
    inbox_entries: int = 0
    group_bodies: int = 0
    ledger_entries: int = 0
    messages: int = 0

    @property
    def any(self) -> bool:
        return bool(self.inbox_entries or self.group_bodies or self.ledger_entries or self.messages)


async def _restate_devices(connection: AsyncConnection, ledger_before: int, now: int) -> None:
    """Devices still in use whose ledger entry is about to go get a fresh one (proofs need their keys)."""
    recent = select(ledger.c.ref).where(ledger.c.created_at >= ledger_before, ledger.c.ref.like("d%"))
    rows = await connection.execute(
        select(
            devices.c.id, devices.c.identity_signing_key, devices.c.identity_exchange_key, users.c.username
        )
        .join(users, users.c.id == devices.c.user_id)
        .where(
            devices.c.removed_at.is_(None),
            devices.c.created_at < ledger_before,
            ("d" + cast(devices.c.id, String)).not_in(recent),
        )
    )
    entries = [
        (
            chain.DeviceRegistered(
                user=row.username,
                device=row.id,
                signing_key=bytes(row.identity_signing_key),
                exchange_key=bytes(row.identity_exchange_key),
                at=now,
            ),
            f"d{row.id}",
        )
        for row in rows
    ]
    await ledger_store.append(connection, entries, now)


async def purge(connection: AsyncConnection, *, inbox_before: int, ledger_before: int, now: int) -> Purged:
    old_entries = await connection.execute(delete(inbox).where(inbox.c.created_at < inbox_before))
    pending = exists().where(inbox.c.message_id == messages.c.id)
    bodies = await connection.execute(
        update(messages).where(messages.c.body.is_not(None), ~pending).values(body=None)
    )
    expired = select(messages.c.id).where(messages.c.created_at < ledger_before).scalar_subquery()
    await connection.execute(delete(receipts).where(receipts.c.message_id.in_(expired)))
    await connection.execute(delete(message_copies).where(message_copies.c.message_id.in_(expired)))
    await connection.execute(delete(inbox).where(inbox.c.message_id.in_(expired)))
    old_messages = await connection.execute(delete(messages).where(messages.c.created_at < ledger_before))
    await _restate_devices(connection, ledger_before, now)
    first_kept = (
        await connection.execute(select(func.min(ledger.c.seq)).where(ledger.c.created_at >= ledger_before))
    ).scalar_one_or_none()
    ledger_rows = 0
    if first_kept is not None:
        # Keep the entry just before the first retained one: its hash starts the next proof segment.
        result = await connection.execute(delete(ledger).where(ledger.c.seq < int(first_kept) - 1))
        ledger_rows = result.rowcount or 0
    return Purged(
        inbox_entries=old_entries.rowcount or 0,
        group_bodies=bodies.rowcount or 0,
        ledger_entries=ledger_rows,
        messages=old_messages.rowcount or 0,
    )
