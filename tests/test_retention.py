"""Retention: ciphertext goes when acked or too old; the ledger keeps hashes and stays provable."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import lien
from lien import ledger
from lien.proofs import verify_proof
from server.retention import DAY_MS, Policy, purge
from server.settings import Settings
from server.storage.database import Database
from server.storage.migrate import upgrade_to_head
from server.storage.schema import metadata
from tests.inprocess import PASSWORD, serving


def count(database: Path, query: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(query).fetchone()[0])


async def test_ciphertext_goes_once_acked_or_too_old_and_the_ledger_stays_provable(tmp_path: Path) -> None:
    file = tmp_path / "lien.db"
    url = f"sqlite+aiosqlite:///{file}"
    settings = Settings(database_url=url, data_dir=tmp_path, retention_interval=0, ledger_sign_interval=0.2)
    async with serving(settings) as server:
        gp = await lien.Client.register(server, "dr.martin", PASSWORD, keystore=tmp_path / "gp")
        nurse = await lien.Client.register(server, "nurse", PASSWORD, keystore=tmp_path / "nurse")
        away = await lien.Client.register(server, "away", PASSWORD, keystore=tmp_path / "away")
        await gp.connect()
        await nurse.connect()
        team = await gp.create_group("Équipe", ["nurse"])
        group_message = await gp.send_text(team, "pour l'équipe")
        assert (await nurse.receive(timeout=20)).id == group_message
        waiting = await gp.send_text("away", "pour un absent")  # never acked: `away` is offline
        async with asyncio.timeout(20):
            while count(file, "SELECT count(*) FROM inbox WHERE kind = 3") > 0:  # the nurse's ack lands
                await asyncio.sleep(0.05)
        database = Database(url)
        try:
            now = gp_clock = await _now(database)
            first = await purge(database, Policy(message_max_age_days=30, ledger_retention_days=3650), now)
            assert first.group_bodies == 1 and first.inbox_entries == 0  # acked by every member device: gone
            assert (
                count(file, f"SELECT count(*) FROM messages WHERE id = '{group_message}' AND body IS NULL")
                == 1
            )
            assert count(file, f"SELECT count(*) FROM inbox WHERE message_id = '{waiting}'") == 1

            later = gp_clock + 31 * DAY_MS  # a month on, the absent device never came back
            second = await purge(database, Policy(message_max_age_days=30, ledger_retention_days=3650), later)
            assert second.inbox_entries >= 1
            assert count(file, f"SELECT count(*) FROM inbox WHERE message_id = '{waiting}'") == 0

            entries_before = count(file, "SELECT count(*) FROM ledger")
            much_later = gp_clock + 4000 * DAY_MS
            third = await purge(
                database, Policy(message_max_age_days=30, ledger_retention_days=3650), much_later
            )
            assert third.messages >= 2 and third.ledger_entries >= entries_before - 1
            assert count(file, "SELECT count(*) FROM messages") == 0
            # Devices still in use were stated again in the ledger: later messages stay provable.
            restated = count(file, "SELECT count(*) FROM ledger WHERE ref LIKE 'd%'")
            assert restated >= 3
        finally:
            await database.close()
        fresh = await gp.send_text(team, "après la purge")
        received = await nurse.receive(timeout=20)
        assert received.id == fresh
        proof = ledger.proof_decoder.decode(await nurse.message_proof(received))
        assert verify_proof(proof).proven
        for client in (gp, nurse, away):
            await client.close()


async def _now(database: Database) -> int:
    from server.services import now_ms

    del database
    return now_ms()


def _compare(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_the_migrations_build_exactly_the_schema_the_code_declares(database_url: str) -> None:
    database = Database(database_url)
    try:
        await upgrade_to_head(database)
        async with database.read() as connection:
            differences = await connection.run_sync(_compare)
    finally:
        await database.close()
    assert differences == []
