"""The ledger in the database: appends under the head lock, signed heads, proof segments (§10).

One chain for the whole deployment: an append locks the single
``ledger_head`` row (PostgreSQL ``FOR UPDATE``; SQLite has one writer), so
entries from every node get consecutive seqs and each hash covers the previous
one. Committer transactions append at their very end, after their device locks,
which keeps the lock order the same everywhere (devices, then the head).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from lien import ledger as chain
from lien.protocol.api import LedgerKey
from server.storage import batch_pg
from server.storage.schema import ledger, ledger_head, ledger_signed_heads


@dataclass(frozen=True)
class Appended:
    seq: int
    hash: bytes


async def append(
    connection: AsyncConnection, entries: Sequence[tuple[chain.LedgerEntry, str | None]], now: int
) -> Appended | None:
    """Append entries (each with its ``ref``: message id or ``d<device>``) and move the head."""
    if not entries:
        return None
    if connection.dialect.name == "postgresql":
        driver = await batch_pg.driver_of(connection)
        rows, appended = chain_rows(entries, Appended(*await batch_pg.lock_ledger_head(driver)), now)
        await batch_pg.write(driver, ledger_rows=rows, head=(appended.seq, appended.hash))
        return appended
    head = (await connection.execute(select(ledger_head.c.seq, ledger_head.c.hash))).one()
    rows, appended = chain_rows(entries, Appended(int(head.seq), bytes(head.hash)), now)
    await connection.execute(insert(ledger), rows)
    await connection.execute(
        update(ledger_head).where(ledger_head.c.id == 1).values(seq=appended.seq, hash=appended.hash)
    )
    return appended


def chain_rows(
    entries: Sequence[tuple[chain.LedgerEntry, str | None]], head: Appended, now: int
) -> tuple[list[dict[str, Any]], Appended]:
    """The ledger rows that chain ``entries`` after ``head``, and the new head."""
    seq, current = head.seq, head.hash
    rows = []
    for entry, ref in entries:
        content = chain.encode_entry(entry)
        entry_digest = chain.digest(content)
        seq += 1
        current = chain.chain_hash(current, entry_digest)
        rows.append(
            {
                "seq": seq,
                "entry": content,
                "digest": entry_digest,
                "hash": current,
                "ref": ref,
                "created_at": now,
            }
        )
    return rows, Appended(seq, current)


async def head(connection: AsyncConnection) -> Appended:
    row = (await connection.execute(select(ledger_head.c.seq, ledger_head.c.hash))).one()
    return Appended(int(row.seq), bytes(row.hash))


async def last_signed_seq(connection: AsyncConnection) -> int:
    row = (
        await connection.execute(
            select(ledger_signed_heads.c.seq).order_by(ledger_signed_heads.c.seq.desc()).limit(1)
        )
    ).first()
    return 0 if row is None else int(row.seq)


async def store_signed_head(connection: AsyncConnection, signed: chain.SignedHead) -> None:
    """Keep a signed head; another node may have signed the same seq first (then nothing changes)."""
    values = {
        "seq": signed.seq,
        "hash": signed.hash,
        "signed_at": signed.signed_at,
        "key_id": signed.key_id,
        "public_key": signed.public_key,
        "signature": signed.signature,
    }
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    await connection.execute(dialect.insert(ledger_signed_heads).values(**values).on_conflict_do_nothing())


async def signed_head_at_or_after(connection: AsyncConnection, seq: int) -> chain.SignedHead | None:
    row = (
        await connection.execute(
            select(ledger_signed_heads)
            .where(ledger_signed_heads.c.seq >= seq)
            .order_by(ledger_signed_heads.c.seq)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return chain.SignedHead(
        seq=row.seq,
        hash=bytes(row.hash),
        signed_at=row.signed_at,
        key_id=row.key_id,
        public_key=bytes(row.public_key),
        signature=bytes(row.signature),
    )


@dataclass(frozen=True)
class StoredEntry:
    seq: int
    entry: chain.LedgerEntry


async def entries_about(connection: AsyncConnection, refs: list[str]) -> list[StoredEntry]:
    rows = await connection.execute(
        select(ledger.c.seq, ledger.c.entry).where(ledger.c.ref.in_(refs)).order_by(ledger.c.seq)
    )
    return [StoredEntry(int(row.seq), chain.decode_entry(bytes(row.entry))) for row in rows]


async def stretch(connection: AsyncConnection, first: int, last: int) -> tuple[bytes, dict[int, bytes]]:
    """The hash before ``first`` and every digest from ``first`` to ``last``."""
    before = (await connection.execute(select(ledger.c.hash).where(ledger.c.seq == first - 1))).first()
    start = chain.GENESIS if before is None else bytes(before.hash)
    rows = await connection.execute(
        select(ledger.c.seq, ledger.c.digest).where(ledger.c.seq >= first, ledger.c.seq <= last)
    )
    return start, {int(row.seq): bytes(row.digest) for row in rows}


async def signing_keys(connection: AsyncConnection) -> list[LedgerKey]:
    """Every key that signed a head, with when it first did."""
    rows = await connection.execute(
        select(
            ledger_signed_heads.c.key_id,
            ledger_signed_heads.c.public_key,
            func.min(ledger_signed_heads.c.signed_at).label("first_used_at"),
        ).group_by(ledger_signed_heads.c.key_id, ledger_signed_heads.c.public_key)
    )
    return [
        LedgerKey(key_id=row.key_id, public_key=bytes(row.public_key), first_used_at=row.first_used_at)
        for row in rows
    ]
