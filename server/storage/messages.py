"""Messages, device inboxes, receipts and contacts.

An inbox entry is a frame stored for one device under a per-device sequence
number. Sequence numbers come from ``devices.next_seq``, bumped under that
row's lock inside the writing transaction, so one device's entries commit in
sequence order and a device resuming "after seq N" never skips one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Insert

from server.storage import batch_pg
from server.storage.database import in_chunks
from server.storage.devices import device_ids_of
from server.storage.schema import contacts, devices, inbox, message_copies, messages, receipts, users


@dataclass(frozen=True)
class StoredMessage:
    id: str
    sender_user_id: int
    sender_device_id: int
    recipient_user_id: int | None
    client_id: str
    created_at: int
    group_id: str | None = None
    body: bytes | None = None
    """A group message's one ciphertext; one to one messages keep their copies in the inbox."""


@dataclass(frozen=True)
class InboxEntry:
    device_id: int
    seq: int
    kind: int
    message_id: str
    frame: bytes


@dataclass(frozen=True)
class ReceiptRow:
    message_id: str
    device_id: int
    user_id: int
    kind: str
    at: int
    sha256: bytes | None = None
    device_time: int | None = None
    signature: bytes | None = None


def _insert_ignoring_conflicts(connection: AsyncConnection, table: Table) -> Insert:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _message_from(row: Any) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        sender_user_id=row.sender_user_id,
        sender_device_id=row.sender_device_id,
        recipient_user_id=row.recipient_user_id,
        client_id=row.client_id,
        created_at=row.created_at,
        group_id=row.group_id,
        body=None if row.body is None else bytes(row.body),
    )


async def get_message(connection: AsyncConnection, message_id: str) -> StoredMessage | None:
    row = (await connection.execute(select(messages).where(messages.c.id == message_id))).first()
    return None if row is None else _message_from(row)


async def insert_messages_reading_devices(
    connection: AsyncConnection, batch: Sequence[StoredMessage], user_ids: Sequence[int]
) -> tuple[set[str], dict[int, int]]:
    """Insert messages, and read the live devices of these users: one round trip on PostgreSQL.

    Returns the ids of the messages inserted (one left out reused its
    device's client id, a resend: see :func:`messages_by_client_ids`), and
    device id -> user id for the live devices. The envelope store inserts
    before it checks each envelope against those devices, and withdraws the
    refused ones (:func:`withdraw_messages`) in the same transaction.
    """
    if connection.dialect.name == "postgresql":
        return await batch_pg.insert_messages_reading_devices(
            await batch_pg.driver_of(connection), [_row_of(message) for message in batch], user_ids
        )
    inserted: set[str] = set()
    if batch:
        # Executemany with RETURNING: SQLAlchemy packs it into multi-row INSERTs ("insertmanyvalues").
        result = await connection.execute(
            _insert_ignoring_conflicts(connection, messages).returning(messages.c.id),
            [_row_of(message) for message in batch],
        )
        inserted = {row.id for row in result}
    live = await device_ids_of(connection, list(user_ids)) if user_ids else {}
    return inserted, live


async def withdraw_messages(connection: AsyncConnection, message_ids: Sequence[str]) -> None:
    """Delete messages inserted earlier in this transaction and then refused: nothing refers to them yet."""
    for chunk in in_chunks(list(message_ids)):
        await connection.execute(delete(messages).where(messages.c.id.in_(chunk)))


async def messages_by_client_ids(
    connection: AsyncConnection, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], StoredMessage]:
    """The stored messages for these (sender device id, client id) pairs, by pair."""
    found: dict[tuple[int, str], StoredMessage] = {}
    for chunk in in_chunks(keys):
        rows = await connection.execute(
            select(messages).where(tuple_(messages.c.sender_device_id, messages.c.client_id).in_(chunk))
        )
        for row in rows:
            message = _message_from(row)
            found[message.sender_device_id, message.client_id] = message
    return found


async def insert_message(connection: AsyncConnection, message: StoredMessage) -> None:
    await connection.execute(insert(messages).values(_row_of(message)))


def _row_of(message: StoredMessage) -> dict[str, Any]:
    """The ``messages`` row of a message: its columns, and the hash of a group message's one body."""
    return {
        "id": message.id,
        "sender_user_id": message.sender_user_id,
        "sender_device_id": message.sender_device_id,
        "recipient_user_id": message.recipient_user_id,
        "client_id": message.client_id,
        "created_at": message.created_at,
        "group_id": message.group_id,
        "body": message.body,
        "body_sha256": None if message.body is None else hashlib.sha256(message.body).digest(),
    }


@dataclass
class QueuedEntry:
    """An inbox entry queued during a transaction; ``seq`` and ``frame`` are set when it is written."""

    device_id: int
    kind: int
    message_id: str
    created_at: int
    build_frame: Callable[[int], bytes]
    """Builds the stored frame once the entry's seq is known (the frame carries it)."""
    key: bytes | None = None
    """For a group message: this device's sender key distribution copy, stored with the entry."""
    store_frame: bool = True
    """False for group messages: the frame is rebuilt from ``messages.body`` when read back."""
    seq: int = 0
    frame: bytes = b""

    @property
    def written(self) -> bool:
        return self.seq > 0


async def write_inboxes(
    connection: AsyncConnection,
    entries: Sequence[QueuedEntry],
    acks: Mapping[int, int],
    copy_hashes: Sequence[tuple[str, int, bytes]] = (),
) -> None:
    """End of a write transaction on SQLite: append the queued entries, apply the acks, keep the copy hashes.

    SQLite has one writer at a time (the transaction began ``IMMEDIATE``), so
    one device's entries commit in seq order: a device resuming "after seq N"
    never skips one. PostgreSQL's version locks the devices in id order and
    takes two statements (:mod:`server.storage.batch_pg`, called by the
    committer).
    """
    await insert_copy_hashes(connection, copy_hashes)
    await _append_to_inboxes(connection, entries)
    await _apply_acks(connection, acks)


async def _append_to_inboxes(connection: AsyncConnection, entries: Sequence[QueuedEntry]) -> None:
    """Give each entry the next seq of its device, build its frame and insert them all.

    Entries for a device that no longer exists are dropped (left unwritten).
    """
    if not entries:
        return
    counts = entry_counts(entries)
    rows = await connection.execute(
        update(devices)
        .where(devices.c.id.in_(sorted(counts)), devices.c.removed_at.is_(None))
        .values(next_seq=devices.c.next_seq + case(counts, value=devices.c.id))
        .returning(devices.c.id, devices.c.next_seq)
    )
    inserted = number_entries(entries, {row.id: int(row.next_seq) - counts[row.id] + 1 for row in rows})
    if inserted:
        await connection.execute(insert(inbox), inserted)


def entry_counts(entries: Sequence[QueuedEntry]) -> dict[int, int]:
    """device id -> how many entries are queued for it."""
    counts: dict[int, int] = {}
    for entry in entries:
        counts[entry.device_id] = counts.get(entry.device_id, 0) + 1
    return counts


def number_entries(entries: Sequence[QueuedEntry], first_seqs: Mapping[int, int]) -> list[dict[str, Any]]:
    """Give each entry the next seq of its device from ``first_seqs`` and build its frame; their rows.

    Entries of a device missing from ``first_seqs`` (removed) are left unwritten.
    """
    next_seqs = dict(first_seqs)
    rows = []
    for entry in entries:
        seq = next_seqs.get(entry.device_id)
        if seq is None:
            continue
        next_seqs[entry.device_id] = seq + 1
        entry.seq = seq
        entry.frame = entry.build_frame(seq)
        rows.append(
            {
                "device_id": entry.device_id,
                "seq": seq,
                "kind": entry.kind,
                "message_id": entry.message_id,
                "frame": entry.frame if entry.store_frame else None,
                "key": entry.key,
                "created_at": entry.created_at,
            }
        )
    return rows


@dataclass(frozen=True)
class GroupMessageRow:
    """What a group message's inbox entry is rebuilt from: the shared ciphertext, this device's key copy."""

    message_id: str
    sender: str
    sender_device_id: int
    group_id: str
    body: bytes
    key: bytes | None
    accepted_at: int


@dataclass(frozen=True)
class PendingEntry:
    seq: int
    created_at: int
    frame: bytes | None
    group_message: GroupMessageRow | None = None


_READ_INBOX = (
    select(
        inbox.c.seq,
        inbox.c.created_at,
        inbox.c.frame,
        inbox.c.key,
        messages.c.id.label("message_id"),
        messages.c.sender_device_id,
        messages.c.group_id,
        messages.c.body,
        messages.c.created_at.label("accepted_at"),
        users.c.username.label("sender"),
    )
    .select_from(
        inbox.outerjoin(
            messages, (inbox.c.frame.is_(None)) & (messages.c.id == inbox.c.message_id)
        ).outerjoin(users, users.c.id == messages.c.sender_user_id)
    )
    .where(inbox.c.device_id == bindparam("device_id"), inbox.c.seq > bindparam("after_seq"))
    .order_by(inbox.c.seq)
    .limit(bindparam("limit"))
)
"""Built once, with bind parameters: building this join and its cache key on every call cost a node
about as much CPU as running it."""


async def read_inbox(
    connection: AsyncConnection, device_id: int, after_seq: int, limit: int
) -> list[PendingEntry]:
    """The device's entries after ``after_seq``, in order; group messages joined to their one body."""
    rows = await connection.execute(
        _READ_INBOX, {"device_id": device_id, "after_seq": after_seq, "limit": limit}
    )
    entries = []
    for row in rows:
        if row.frame is not None:
            entries.append(PendingEntry(seq=row.seq, created_at=row.created_at, frame=bytes(row.frame)))
            continue
        group_message = GroupMessageRow(
            message_id=row.message_id,
            sender=row.sender,
            sender_device_id=row.sender_device_id,
            group_id=row.group_id,
            body=bytes(row.body),
            key=None if row.key is None else bytes(row.key),
            accepted_at=row.accepted_at,
        )
        entries.append(
            PendingEntry(seq=row.seq, created_at=row.created_at, frame=None, group_message=group_message)
        )
    return entries


async def acked_seq(connection: AsyncConnection, device_id: int) -> int:
    result = await connection.execute(select(devices.c.acked_seq).where(devices.c.id == device_id))
    return int(result.scalar_one_or_none() or 0)


async def _apply_acks(connection: AsyncConnection, acks: Mapping[int, int]) -> None:
    """For every device (id -> acked seq): purge its inbox up to that seq and remember the ack.

    Two statements however many devices acked: they run while the device rows
    are locked, so each round trip held here delays every transaction
    waiting for one of those devices.
    """
    if not acks:
        return
    device_ids = sorted(acks)
    acked = case(dict(acks), value=inbox.c.device_id)
    await connection.execute(delete(inbox).where(inbox.c.device_id.in_(device_ids), inbox.c.seq <= acked))
    remembered = case(dict(acks), value=devices.c.id)
    await connection.execute(
        update(devices)
        .where(devices.c.id.in_(device_ids), devices.c.acked_seq < remembered)
        .values(acked_seq=remembered)
    )


async def inbox_depth(connection: AsyncConnection, device_id: int) -> int:
    result = await connection.execute(
        select(func.count()).select_from(inbox).where(inbox.c.device_id == device_id)
    )
    return int(result.scalar_one())


_INSERT_RECEIPTS = {
    dialect: insert_of(receipts)
    .on_conflict_do_nothing()
    .returning(receipts.c.message_id, receipts.c.device_id, receipts.c.kind)
    for dialect, insert_of in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
"""Built once per dialect: a transaction records all its receipts with it."""

ReceiptKey = tuple[str, int, str]
"""(message id, device id, kind): a device reports each kind of receipt for a message once."""


async def insert_receipts(connection: AsyncConnection, rows: Sequence[ReceiptRow]) -> set[ReceiptKey]:
    """Record receipts, each once; the keys of those recorded now (not reported before)."""
    if not rows:
        return set()
    result = await connection.execute(
        _INSERT_RECEIPTS[connection.dialect.name],
        [
            {
                "message_id": row.message_id,
                "device_id": row.device_id,
                "user_id": row.user_id,
                "kind": row.kind,
                "at": row.at,
                "sha256": row.sha256,
                "device_time": row.device_time,
                "signature": row.signature,
            }
            for row in rows
        ],
    )
    return {(found.message_id, found.device_id, found.kind) for found in result}


async def receipts_for(connection: AsyncConnection, message_id: str) -> list[ReceiptRow]:
    rows = await connection.execute(
        select(receipts)
        .where(receipts.c.message_id == message_id)
        .order_by(receipts.c.at, receipts.c.device_id)
    )
    return [
        ReceiptRow(
            message_id=row.message_id,
            device_id=row.device_id,
            user_id=row.user_id,
            kind=row.kind,
            at=row.at,
            sha256=None if row.sha256 is None else bytes(row.sha256),
            device_time=row.device_time,
            signature=None if row.signature is None else bytes(row.signature),
        )
        for row in rows
    ]


async def add_contacts(connection: AsyncConnection, pairs: Iterable[tuple[int, int]], now: int) -> None:
    # Sorted: two transactions inserting the same pairs take their index locks in one order.
    rows = [{"user_id": a, "contact_id": b, "since": now} for a, b in sorted(pairs)]
    if rows:
        await connection.execute(_insert_ignoring_conflicts(connection, contacts), rows)


async def contacts_among(connection: AsyncConnection, user_id: int, others: list[int]) -> set[int]:
    rows = await connection.execute(
        select(contacts.c.contact_id).where(contacts.c.user_id == user_id, contacts.c.contact_id.in_(others))
    )
    return {row.contact_id for row in rows}


async def contacts_of(connection: AsyncConnection, user_id: int) -> list[int]:
    rows = await connection.execute(select(contacts.c.contact_id).where(contacts.c.user_id == user_id))
    return [row.contact_id for row in rows]


async def insert_copy_hashes(connection: AsyncConnection, rows: Sequence[tuple[str, int, bytes]]) -> None:
    """Remember the hash of each ciphertext stored for a device: (message id, device id, sha256)."""
    if rows:
        await connection.execute(
            _insert_ignoring_conflicts(connection, message_copies),
            [
                {"message_id": message, "device_id": device, "sha256": sha256}
                for message, device, sha256 in rows
            ],
        )


_COPY_HASHES = select(message_copies.c.message_id, message_copies.c.device_id, message_copies.c.sha256).where(
    tuple_(message_copies.c.message_id, message_copies.c.device_id).in_(bindparam("pairs", expanding=True))
)


async def copy_hashes(
    connection: AsyncConnection, pairs: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], set[bytes]]:
    """For each (message id, device id): the hashes of the one-to-one copies stored for that device.

    A group message's one body has its hash in the message row instead
    (:attr:`MessageOrigin.body_sha256`).
    """
    found: dict[tuple[str, int], set[bytes]] = {}
    for chunk in in_chunks(pairs):
        rows = await connection.execute(_COPY_HASHES, {"pairs": chunk})
        for row in rows:
            found.setdefault((row.message_id, row.device_id), set()).add(bytes(row.sha256))
    return found


@dataclass(frozen=True)
class MessageOrigin:
    """What a receipt for a message is checked against: who sent it, to whom, when; its group body's hash."""

    id: str
    sender_user_id: int
    sender_device_id: int
    recipient_user_id: int | None
    group_id: str | None
    created_at: int
    body_sha256: bytes | None


_ORIGINS = select(
    messages.c.id,
    messages.c.sender_user_id,
    messages.c.sender_device_id,
    messages.c.recipient_user_id,
    messages.c.group_id,
    messages.c.created_at,
    messages.c.body_sha256,
).where(messages.c.id.in_(bindparam("message_ids", expanding=True)))


async def origins(connection: AsyncConnection, message_ids: Sequence[str]) -> dict[str, MessageOrigin]:
    """The origins of the messages that exist among these ids, by id (never their ciphertext)."""
    found: dict[str, MessageOrigin] = {}
    for chunk in in_chunks(message_ids):
        rows = await connection.execute(_ORIGINS, {"message_ids": chunk})
        for row in rows:
            found[row.id] = MessageOrigin(
                id=row.id,
                sender_user_id=row.sender_user_id,
                sender_device_id=row.sender_device_id,
                recipient_user_id=row.recipient_user_id,
                group_id=row.group_id,
                created_at=row.created_at,
                body_sha256=None if row.body_sha256 is None else bytes(row.body_sha256),
            )
    return found
