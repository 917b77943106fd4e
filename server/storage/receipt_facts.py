"""What a transaction's receipts are checked against, read together (server/handlers/receipts.py).

The messages receipted, the receipting devices (their identity keys), the
hashes of the copies stored for them, and the live devices of everyone a
receipt may be forwarded to: on PostgreSQL one statement
(``batch_pg.receipt_facts``) instead of four round trips, which every receipt
batch of a transaction, and every batch queued behind it, used to wait for.
SQLite runs the portable queries one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from server.storage import batch_pg, devices, messages


@dataclass(frozen=True)
class ReceivingDevice:
    """A device sending receipts, as far as checking them goes."""

    id: int
    user_id: int
    created_at: int
    identity_signing_key: bytes


@dataclass(frozen=True)
class ReceiptFacts:
    origins: dict[str, messages.MessageOrigin]
    """The messages that exist among those receipted, by id."""
    devices: dict[int, ReceivingDevice]
    """The receipting devices that were not removed, by id."""
    copy_hashes: dict[tuple[str, int], set[bytes]]
    """(message id, device id) -> hashes of the one-to-one copies stored for that device."""
    audience: dict[int, int]
    """device id -> user id: the live devices of those messages' senders and of the users given."""


async def read(
    connection: AsyncConnection,
    message_ids: Sequence[str],
    device_ids: Sequence[int],
    hash_keys: Sequence[tuple[str, int]],
    users: Sequence[int],
) -> ReceiptFacts:
    """Read the facts for receipts of ``message_ids`` by ``device_ids``.

    ``hash_keys`` are the (message id, device id) pairs whose copy hashes are
    wanted; ``users``, besides the messages' senders, those whose devices a
    receipt may be forwarded to (a reader's own other devices).
    """
    if connection.dialect.name == "postgresql":
        driver = await batch_pg.driver_of(connection)
        rows = await batch_pg.receipt_facts(driver, message_ids, device_ids, hash_keys, users)
        return _decoded(rows)
    origins = await messages.origins(connection, message_ids)
    receiving = await devices.live_devices(connection, list(device_ids))
    audience_users = sorted({origin.sender_user_id for origin in origins.values()} | set(users))
    return ReceiptFacts(
        origins=origins,
        devices={
            row.id: ReceivingDevice(row.id, row.user_id, row.created_at, row.identity_signing_key)
            for row in receiving.values()
        },
        copy_hashes=await messages.copy_hashes(connection, hash_keys),
        audience=await devices.device_ids_of(connection, audience_users) if audience_users else {},
    )


def _decoded(rows: Sequence[Any]) -> ReceiptFacts:
    """The facts from the statement's tagged rows (asyncpg records)."""
    facts = ReceiptFacts(origins={}, devices={}, copy_hashes={}, audience={})
    for row in rows:
        fact = row["fact"]
        if fact == "o":
            facts.origins[row["message_id"]] = messages.MessageOrigin(
                id=row["message_id"],
                sender_user_id=row["user_id"],
                sender_device_id=row["device_id"],
                recipient_user_id=row["recipient_id"],
                group_id=row["group_id"],
                created_at=row["at"],
                body_sha256=None if row["bytes"] is None else bytes(row["bytes"]),
            )
        elif fact == "d":
            facts.devices[row["device_id"]] = ReceivingDevice(
                row["device_id"], row["user_id"], row["at"], bytes(row["bytes"])
            )
        elif fact == "h":
            key = (row["message_id"], row["device_id"])
            facts.copy_hashes.setdefault(key, set()).add(bytes(row["bytes"]))
        elif fact == "a":
            facts.audience[row["device_id"]] = row["user_id"]
    return facts
