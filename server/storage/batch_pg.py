"""The committer's batch writes on PostgreSQL: few round trips, statement texts that never change.

Every write transaction of the group committer ends with the same writes:
lock and number the touched devices, insert the inbox entries, purge what
was acked, remember copy hashes, append to the ledger. Written with
SQLAlchemy Core they cost nine round trips, and their texts change with
the number of rows (``IN (...)`` lists, multi-row ``VALUES``), so asyncpg
prepares them again and again. Here each is one statement over arrays
(``unnest``, ``= ANY``), and those that can share a statement do: two
round trips in all (:func:`number_devices`, then :func:`write`), prepared
once per connection. SQLite keeps the portable versions in ``messages`` and
``ledger``; both are run by the whole test suite. The envelope store's
statement (message rows inserted and the live devices of their users read,
together) is here too, and so is the receipt store's (everything its receipts
are checked against, read together).

The statements run on the asyncpg connection under the SQLAlchemy one,
inside its transaction (:func:`driver_of`). One runs alone, outside any
transaction: a batch of nothing but acks is a single statement
(:func:`apply_acks`, on :func:`autocommit_driver_of`), one round trip
instead of four with ``BEGIN`` and ``COMMIT``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

_NUMBER_DEVICES = """
UPDATE devices AS d
SET next_seq = CASE WHEN d.removed_at IS NULL THEN d.next_seq + w.added ELSE d.next_seq END,
    acked_seq = GREATEST(d.acked_seq, w.acked)
FROM (SELECT id FROM devices WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE) AS locked,
     unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS w(id, added, acked)
WHERE d.id = locked.id AND w.id = locked.id
RETURNING d.id, d.next_seq, d.removed_at IS NULL AS live
"""
"""Lock the devices in id order (``FOR NO KEY UPDATE``: foreign-key checks do not wait for it),
hand out ``added`` seqs to each live device, and remember its ack."""

# Constant texts only are joined here, never a value: S608 does not apply.
_NUMBER_DEVICES_THEN_LOCK_HEAD = (
    f"WITH numbered AS ({_NUMBER_DEVICES})"  # noqa: S608
    """
SELECT id, next_seq, live, NULL::bytea AS hash FROM numbered
UNION ALL
SELECT NULL, seq, NULL, hash FROM (SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE) AS head
"""
)
"""The same, then the ledger head's lock, in that order (the order every writer takes them):
the branches of ``UNION ALL`` run one after the other."""

_LOCK_LEDGER_HEAD = "SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE"

_WRITE = """
WITH purged AS (
    DELETE FROM inbox AS i
    USING unnest($8::bigint[], $9::bigint[]) AS a(device_id, seq)
    -- The "= ANY" lets the planner reach the rows by index whatever it guesses unnest returns.
    WHERE i.device_id = ANY($8::bigint[]) AND i.device_id = a.device_id AND i.seq <= a.seq
), hashes AS (
    INSERT INTO message_copies (message_id, device_id, sha256)
    SELECT * FROM unnest($10::varchar[], $11::bigint[], $12::bytea[])
    ON CONFLICT DO NOTHING
), entries AS (
    INSERT INTO inbox (device_id, seq, kind, message_id, frame, key, created_at)
    SELECT * FROM unnest(
        $1::bigint[], $2::bigint[], $3::smallint[], $4::varchar[], $5::bytea[], $6::bytea[], $7::bigint[]
    )
), appended AS (
    INSERT INTO ledger (seq, entry, digest, hash, ref, created_at)
    SELECT * FROM unnest(
        $13::bigint[], $14::bytea[], $15::bytea[], $16::bytea[], $17::varchar[], $18::bigint[]
    )
)
UPDATE ledger_head SET seq = $19, hash = $20 WHERE id = 1 AND cardinality($13::bigint[]) > 0
"""
"""Everything else, in one statement: new inbox entries, the purge of acked ones (never the same
rows: new seqs are above every ack), copy hashes, ledger rows and the new head (when there are
ledger rows: the head is locked then)."""

_APPLY_ACKS = """
WITH remembered AS (
    UPDATE devices AS d
    SET acked_seq = GREATEST(d.acked_seq, a.seq)
    FROM (SELECT id FROM devices WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE) AS locked,
         unnest($1::bigint[], $2::bigint[]) AS a(id, seq)
    WHERE d.id = locked.id AND a.id = locked.id
)
DELETE FROM inbox AS i
USING unnest($1::bigint[], $2::bigint[]) AS a(device_id, seq)
WHERE i.device_id = ANY($1::bigint[]) AND i.device_id = a.device_id AND i.seq <= a.seq
"""
"""Acks alone, as one statement (its own transaction): remember each device's ack (the devices
locked in id order, as by every writer) and purge its inbox up to it."""

_INSERT_MESSAGES_READING_DEVICES = """
WITH inserted AS (
    INSERT INTO messages (
        id, sender_user_id, sender_device_id, recipient_user_id, client_id, created_at, group_id, body,
        body_sha256
    )
    SELECT * FROM unnest(
        $1::varchar[], $2::bigint[], $3::bigint[], $4::bigint[], $5::varchar[], $6::bigint[], $7::varchar[],
        $8::bytea[], $9::bytea[]
    )
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT id AS message_id, NULL::bigint AS device_id, NULL::bigint AS user_id FROM inserted
UNION ALL
SELECT NULL, id, user_id FROM devices WHERE user_id = ANY($10::bigint[]) AND removed_at IS NULL
"""
"""Insert message rows, skipping reused client ids, and read the live devices of the users they address."""

_LIVE_DEVICES_OF = "SELECT id, user_id FROM devices WHERE user_id = ANY($1::bigint[]) AND removed_at IS NULL"

_RECEIPT_FACTS = """
WITH origins AS (
    SELECT m.* FROM unnest($1::varchar[]) AS k(id)
    CROSS JOIN LATERAL (
        SELECT id, sender_user_id, sender_device_id, recipient_user_id, group_id, created_at, body_sha256
        FROM messages WHERE messages.id = k.id OFFSET 0
    ) AS m
)
SELECT 'o' AS fact, id AS message_id, sender_user_id AS user_id, sender_device_id AS device_id,
       recipient_user_id AS recipient_id, created_at AS at, group_id, body_sha256 AS bytes
FROM origins
UNION ALL
SELECT 'd', NULL, user_id, id, NULL, created_at, NULL, identity_signing_key
FROM devices WHERE id = ANY($2::bigint[]) AND removed_at IS NULL
UNION ALL
SELECT 'h', c.message_id, NULL, c.device_id, NULL, NULL, NULL, c.sha256
FROM unnest($3::varchar[], $4::bigint[]) AS k(message_id, device_id)
CROSS JOIN LATERAL (
    SELECT message_id, device_id, sha256 FROM message_copies
    WHERE message_copies.message_id = k.message_id AND message_copies.device_id = k.device_id OFFSET 0
) AS c
UNION ALL
SELECT 'a', NULL, user_id, id, NULL, NULL, NULL, NULL
FROM devices
WHERE removed_at IS NULL AND user_id = ANY(ARRAY(SELECT sender_user_id FROM origins) || $5::bigint[])
"""
"""What a transaction's receipts are checked against, one row per fact, tagged by ``fact``:
``o`` a message's origin, ``d`` a receipting device (its key), ``h`` the hash of a copy stored
for a device, ``a`` a live device of a sender of those messages or of one of the users given.

Messages and copies are looked up one key at a time (``LATERAL … OFFSET 0``, which PostgreSQL
cannot flatten into a join): one primary-key probe each, whatever the planner believes of the
tables' sizes. With ``= ANY`` over the whole array, a plan made while ``messages`` was small (a
new deployment, or statistics not yet gathered, as on a server without autovacuum) kept scanning
the whole table for every batch of receipts once it had grown."""

Head = tuple[int, bytes]
"""The ledger head: last seq and hash."""


async def driver_of(connection: AsyncConnection) -> Any:
    """The asyncpg connection under ``connection``, its transaction begun.

    SQLAlchemy's asyncpg adapter sends ``BEGIN`` lazily, with its first
    statement; a statement sent straight to asyncpg before that would run
    outside the transaction, so the transaction is begun here if needed.
    ``tests/test_batch_pg.py`` checks that such writes roll back with it.
    """
    fairy = await connection.get_raw_connection()
    adapted: Any = fairy.dbapi_connection
    if adapted._transaction is None:
        await adapted._start_transaction()
    return adapted.driver_connection


async def autocommit_driver_of(connection: AsyncConnection) -> Any:
    """The asyncpg connection under ``connection``, for a statement that is its own transaction.

    ``connection`` must have no transaction open: the statement then runs
    in autocommit (PostgreSQL wraps it in a transaction of its own).
    """
    fairy = await connection.get_raw_connection()
    adapted: Any = fairy.dbapi_connection
    assert adapted._transaction is None, "a transaction is open on this connection"
    return adapted.driver_connection


async def apply_acks(driver: Any, acks: Mapping[int, int]) -> None:
    """Remember each device's ack and purge its inbox up to it, in one statement."""
    acked = sorted(acks.items())
    if acked:
        await driver.execute(_APPLY_ACKS, [device_id for device_id, _ in acked], [seq for _, seq in acked])


async def number_devices(
    driver: Any, added: Mapping[int, int], acks: Mapping[int, int], *, lock_head: bool
) -> tuple[dict[int, int], Head | None]:
    """Lock every device touched, give each live one ``added`` seqs, remember acks; then the head's lock.

    Returns device id -> first seq handed out (live devices of ``added``), and
    the ledger head when ``lock_head``.
    """
    device_ids = sorted(set(added) | set(acks))
    if not device_ids:
        return {}, (await lock_ledger_head(driver) if lock_head else None)
    rows = await driver.fetch(
        _NUMBER_DEVICES_THEN_LOCK_HEAD if lock_head else _NUMBER_DEVICES,
        device_ids,
        [added.get(device_id, 0) for device_id in device_ids],
        [acks.get(device_id, 0) for device_id in device_ids],
    )
    first_seqs = {}
    head = None
    for row in rows:
        if row["id"] is None:
            head = (int(row["next_seq"]), bytes(row["hash"]))
        elif row["live"] and added.get(row["id"]):
            first_seqs[row["id"]] = int(row["next_seq"]) - added[row["id"]] + 1
    return first_seqs, head


async def lock_ledger_head(driver: Any) -> Head:
    row = await driver.fetchrow(_LOCK_LEDGER_HEAD)
    return int(row["seq"]), bytes(row["hash"])


async def write(
    driver: Any,
    *,
    inbox_rows: Sequence[Mapping[str, Any]] = (),
    acks: Mapping[int, int] | None = None,
    copy_hashes: Sequence[tuple[str, int, bytes]] = (),
    ledger_rows: Sequence[Mapping[str, Any]] = (),
    head: Head = (0, b""),
) -> None:
    """Insert inbox rows, purge inboxes up to their acks, keep copy hashes, append ledger rows.

    ``head`` is the new ledger head, written when there are ledger rows (its
    row locked beforehand).
    """
    acked = sorted((acks or {}).items())
    if not (inbox_rows or acked or copy_hashes or ledger_rows):
        return
    await driver.execute(
        _WRITE,
        *_columns(inbox_rows, ("device_id", "seq", "kind", "message_id", "frame", "key", "created_at")),
        [device_id for device_id, _ in acked],
        [seq for _, seq in acked],
        [message_id for message_id, _, _ in copy_hashes],
        [device_id for _, device_id, _ in copy_hashes],
        [sha256 for _, _, sha256 in copy_hashes],
        *_columns(ledger_rows, ("seq", "entry", "digest", "hash", "ref", "created_at")),
        *head,
    )


def _columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[list[Any]]:
    """Rows as one list per column: the arrays ``unnest`` takes back apart."""
    return [[row[name] for row in rows] for name in names]


_MESSAGE_COLUMNS = (
    "id",
    "sender_user_id",
    "sender_device_id",
    "recipient_user_id",
    "client_id",
    "created_at",
    "group_id",
    "body",
    "body_sha256",
)


async def insert_messages_reading_devices(
    driver: Any, rows: Sequence[Mapping[str, Any]], user_ids: Sequence[int]
) -> tuple[set[str], dict[int, int]]:
    """Insert message rows, skipping reused client ids; the ids inserted, and device id -> user id
    for the live devices of ``user_ids``: one round trip."""
    found = await driver.fetch(
        _INSERT_MESSAGES_READING_DEVICES, *_columns(rows, _MESSAGE_COLUMNS), list(user_ids)
    )
    inserted = {row["message_id"] for row in found if row["message_id"] is not None}
    return inserted, {row["device_id"]: row["user_id"] for row in found if row["device_id"] is not None}


async def live_devices_of(driver: Any, user_ids: Sequence[int]) -> dict[int, int]:
    """device id -> user id for the live devices of these users."""
    rows = await driver.fetch(_LIVE_DEVICES_OF, list(user_ids))
    return {row["id"]: row["user_id"] for row in rows}


async def receipt_facts(
    driver: Any,
    message_ids: Sequence[str],
    device_ids: Sequence[int],
    hash_keys: Sequence[tuple[str, int]],
    users: Sequence[int],
) -> list[Any]:
    """The rows of :data:`_RECEIPT_FACTS` (decoded by ``server.storage.receipt_facts``): one round trip."""
    rows: list[Any] = await driver.fetch(
        _RECEIPT_FACTS,
        list(message_ids),
        list(device_ids),
        [message_id for message_id, _ in hash_keys],
        [device_id for _, device_id in hash_keys],
        list(users),
    )
    return rows
