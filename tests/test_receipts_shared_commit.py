"""Receipts from several devices recorded in one shared transaction (server/handlers/receipts.py).

The group committer hands every connection's receipts of a transaction to one
bulk job, which reads what they are checked against once for all of them.
These tests hold the committer so that several devices' receipts meet in one
transaction, then check that each outcome is what that receipt alone would
have got, that each receipt recorded reaches the devices it should once, and
that the ledger holds it once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lien import ledger as chain
from lien.protocol import errors, frames
from lien.protocol.codec import decode_server_frame
from server.app import create_app
from server.handlers.envelopes import accept_envelopes
from server.handlers.receipts import ReceiptOutcome, record_receipts
from server.services import Services
from server.settings import Settings
from server.storage import devices, messages, receipt_facts
from server.storage import groups as group_store
from server.storage import ledger as ledger_store
from tests.keys import signed_receipt
from tests.shared_commit import TIMEOUT, HeldCommitter, add_user_with_keys


@pytest.fixture
async def services(database_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path))
    async with app.router.lifespan_context(app):
        yield app.state.services


async def _statuses(services: Services, device_id: int) -> list[tuple[str, str, str, int]]:
    """(message, kind, by, by device) of every status entry waiting in a device's inbox, in order."""
    async with services.database.read() as connection:
        entries = await messages.read_inbox(connection, device_id, after_seq=0, limit=100)
    found = []
    for entry in entries:
        if entry.frame is None:
            continue  # a group message, stored as its parts
        frame = decode_server_frame(entry.frame)
        if isinstance(frame, frames.Status):
            found.append((frame.message, frame.kind, frame.by, frame.by_device))
    return found


def _code(outcome: ReceiptOutcome) -> str:
    return "recorded" if outcome.error is None and outcome.entries else (
        "repeat" if outcome.error is None else outcome.error.code
    )  # fmt: skip


async def test_receipts_of_several_devices_share_a_transaction_and_keep_their_outcomes(
    services: Services,
) -> None:
    [(alice, _)] = await add_user_with_keys(services, "alice", 1)
    [(bob, bob_keys), (bob2, bob2_keys)] = await add_user_with_keys(services, "bob", 2)
    [(carol, carol_keys)] = await add_user_with_keys(services, "carol", 1)
    to_bob = frames.Send(
        id="m1",
        to="bob",
        copies=[
            frames.Copy(device=bob.device_id, body=b"for b1"),
            frames.Copy(device=bob2.device_id, body=b"for b2"),
        ],
    )
    to_carol = frames.Send(id="m2", to="carol", copies=[frames.Copy(device=carol.device_id, body=b"for c1")])
    async with services.database.write() as connection:
        await group_store.create_group(
            connection, group_id="GCARE", name="Soins", created_by=alice.user_id, now=1
        )
        for member in (alice, bob):
            await group_store.add_member(connection, "GCARE", member.user_id, "member", now=1)
        epoch = await group_store.record_event(
            connection, "GCARE", kind="created", actor_id=alice.user_id, subject_id=None, detail="", now=1
        )
    in_group = frames.GroupSend(id="g1", group="GCARE", epoch=epoch, body=b"group body", keys=[])
    m1, m2, g1 = (
        answer.message
        for answer in await accept_envelopes(services, alice, [to_bob, to_carol, in_group])
        if isinstance(answer, frames.Accepted)
    )

    def receipt(keys, caller, message: str, kind: str, body: bytes):  # type: ignore[no-untyped-def]
        return signed_receipt(keys, caller.username, caller.device_id, message, kind, body)

    # Reported before the shared transaction: repeated inside it, it is recorded and sent once.
    await record_receipts(services, bob2, [receipt(bob2_keys, bob2, m1, "delivered", b"for b2")])
    forged = receipt(carol_keys, carol, m2, "read", b"for c1")
    bob_batch = [
        receipt(bob_keys, bob, m1, "delivered", b"for b1"),
        receipt(bob_keys, bob, m1, "delivered", b"for b1"),  # the same receipt again, same transaction
        receipt(bob_keys, bob, m1, "read", b"for b1"),
        receipt(bob_keys, bob, "0" * 28, "delivered", b"for b1"),  # no such message
        receipt(bob_keys, bob, m2, "delivered", b"for c1"),  # to carol, not to bob
        receipt(bob_keys, bob, m1, "decrypted", b"for b2"),  # the hash of b2's copy, not b1's
        receipt(bob_keys, bob, g1, "delivered", b"group body"),
    ]
    carol_batch = [
        receipt(carol_keys, carol, m2, "delivered", b"for c1"),
        frames.Receipt(message=m2, kind="read", hash=forged.hash, at=forged.at, signature=bytes(64)),
    ]
    bob2_batch = [receipt(bob2_keys, bob2, m1, "delivered", b"for b2")]

    async with HeldCommitter(services) as held:
        tasks = [
            asyncio.create_task(record_receipts(services, caller, batch))
            for caller, batch in ((bob, bob_batch), (carol, carol_batch), (bob2, bob2_batch))
        ]
        await held.queued(3)
    async with asyncio.timeout(TIMEOUT):
        from_bob, from_carol, from_bob2 = await asyncio.gather(*tasks)

    assert 3 in held.batches  # the three devices' receipts met in one transaction
    assert [_code(outcome) for outcome in from_bob] == [
        "recorded",
        "repeat",
        "recorded",
        errors.UnknownMessage.code,
        errors.NotARecipient.code,
        errors.InvalidReceipt.code,
        "recorded",
    ]
    assert [_code(outcome) for outcome in from_carol] == ["recorded", errors.InvalidReceipt.code]
    assert [_code(outcome) for outcome in from_bob2] == ["repeat"]

    # The sender's device hears of each receipt once, in each device's order; a read also reaches
    # the reader's other device, a delivered receipt does not.
    assert await _statuses(services, alice.device_id) == [
        (m1, "delivered", "bob", bob2.device_id),
        (m1, "delivered", "bob", bob.device_id),
        (m1, "read", "bob", bob.device_id),
        (g1, "delivered", "bob", bob.device_id),
        (m2, "delivered", "carol", carol.device_id),
    ]
    assert await _statuses(services, bob2.device_id) == [(m1, "read", "bob", bob.device_id)]
    async with services.database.read() as connection:
        entries = await ledger_store.entries_about(connection, [m1, m2, g1])
        recorded = sorted(
            (entry.entry.message, entry.entry.kind, entry.entry.by_device)
            for entry in entries
            if isinstance(entry.entry, chain.ReceiptRecorded)
        )
        stored = {
            (row.message_id, row.kind, row.device_id)
            for message_id in (m1, m2, g1)
            for row in await messages.receipts_for(connection, message_id)
        }
    expected = {
        (m1, "delivered", bob2.device_id),
        (m1, "delivered", bob.device_id),
        (m1, "read", bob.device_id),
        (g1, "delivered", bob.device_id),
        (m2, "delivered", carol.device_id),
    }
    assert recorded == sorted(expected)
    assert stored == expected
    assert hashlib.sha256(b"for b1").digest() == from_bob[0].receipt.hash


async def test_the_reads_of_a_transactions_receipts_take_any_number_of_keys(services: Services) -> None:
    """Up to 256 connections of 1,024 receipts each may meet in one transaction: no parameter limit."""
    [(alice, _)] = await add_user_with_keys(services, "alice", 1)
    [(bob, bob_keys)] = await add_user_with_keys(services, "bob", 1)
    async with services.database.write() as connection:
        await group_store.create_group(
            connection, group_id="GCARE", name="Soins", created_by=alice.user_id, now=1
        )
        await group_store.add_member(connection, "GCARE", bob.user_id, "member", now=7)
    [accepted] = await accept_envelopes(
        services,
        alice,
        [frames.Send(id="m1", to="bob", copies=[frames.Copy(device=bob.device_id, body=b"c")])],
    )
    assert isinstance(accepted, frames.Accepted)
    many = 40_000  # beyond SQLite's 32,766 bound variables and asyncpg's 32,767 arguments
    async with services.database.read() as connection:
        joined = await group_store.joined_at(
            connection, [("GCARE", bob.user_id)] + [(f"G{n}", n) for n in range(many)]
        )
        owners = await devices.device_ids_of(connection, [bob.user_id, *range(10_000, 10_000 + many)])
        hashes = await messages.copy_hashes(
            connection, [(accepted.message, bob.device_id)] + [(f"m{n}", n) for n in range(many)]
        )
        origins = await messages.origins(connection, [accepted.message] + [f"m{n}" for n in range(many)])
        facts = await receipt_facts.read(
            connection,
            message_ids=[accepted.message] + [f"m{n}" for n in range(many)],
            device_ids=[bob.device_id, *range(10_000, 10_000 + many)],
            hash_keys=[(accepted.message, bob.device_id)] + [(f"m{n}", n) for n in range(many)],
            users=[bob.user_id, *range(10_000, 10_000 + many)],
        )
    assert joined == {("GCARE", bob.user_id): 7}
    assert owners == {bob.device_id: bob.user_id}
    assert hashes == {(accepted.message, bob.device_id): {hashlib.sha256(b"c").digest()}}
    assert list(origins) == [accepted.message]
    # Together (one statement on PostgreSQL): the same facts, and the devices a receipt may go to.
    assert facts.origins == origins
    assert list(facts.devices) == [bob.device_id]
    assert facts.devices[bob.device_id].identity_signing_key == bob_keys.registration.identity_signing_key
    assert facts.copy_hashes == hashes
    assert facts.audience == {alice.device_id: alice.user_id, bob.device_id: bob.user_id}
