"""Envelopes from several devices stored in one shared transaction (server/handlers/envelopes.py).

The group committer hands every connection's envelopes of a transaction to
one bulk job: one-to-one rows are checked and inserted together. These tests
hold the committer so that several devices' batches meet in one transaction,
then check each outcome is what that envelope alone would have got, and that
each device's envelopes reach the inboxes and the ledger in the order sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from lien import ledger as chain
from lien.protocol import errors, frames
from lien.protocol.codec import decode_server_frame
from server.app import create_app
from server.handlers.envelopes import Answers, accept_envelopes
from server.services import Caller, Services
from server.settings import Settings
from server.storage import groups as group_store
from server.storage import ledger as ledger_store
from server.storage import messages
from server.storage.schema import contacts
from server.storage.schema import messages as messages_table
from tests.shared_commit import HeldCommitter, add_user

TIMEOUT = 20.0


@pytest.fixture
async def services(database_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path))
    async with app.router.lifespan_context(app):
        yield app.state.services


def send(client_id: str, to: str, device_ids: list[int], body: bytes = b"ciphertext") -> frames.Send:
    return frames.Send(
        id=client_id, to=to, copies=[frames.Copy(device=device, body=body) for device in device_ids]
    )


async def test_batches_of_several_devices_share_a_transaction_and_keep_their_outcomes(
    services: Services,
) -> None:
    alice = await add_user(services, "alice", 2)
    bob = await add_user(services, "bob", 2)
    [carol] = await add_user(services, "carol", 1)
    bob_devices = [caller.device_id for caller in bob]
    to_bob_from_alice = [*bob_devices, alice[1].device_id]
    alice_batch = [
        send("a-1", "bob", to_bob_from_alice),
        send("a-1", "bob", to_bob_from_alice),  # the same client id again, in the same transaction
        send("a-2", "nobody", [bob_devices[0]]),
        send("a-3", "bob", bob_devices),  # alice's other device is missing
        send("a-4", "bob", to_bob_from_alice),
    ]
    carol_batch = [send("a-1", "bob", bob_devices)]  # another device may use the same client id
    bob_batch = [send("b-1", "alice", [alice[0].device_id, alice[1].device_id, bob[1].device_id])]

    async with HeldCommitter(services) as held:
        tasks = [
            asyncio.create_task(accept_envelopes(services, alice[0], alice_batch)),
            asyncio.create_task(accept_envelopes(services, carol, carol_batch)),
            asyncio.create_task(accept_envelopes(services, bob[0], bob_batch)),
        ]
        await held.queued(3)
    async with asyncio.timeout(TIMEOUT):
        from_alice, from_carol, from_bob = await asyncio.gather(*tasks)

    assert 3 in held.batches  # the three devices' envelopes met in one transaction
    first, again, unknown, mismatch, fourth = from_alice
    assert isinstance(first, frames.Accepted) and not first.duplicate
    assert isinstance(again, frames.Accepted) and again.duplicate and again.message == first.message
    assert isinstance(unknown, errors.UnknownUser)
    assert isinstance(mismatch, errors.DevicesMismatch)
    assert mismatch.details == {"missing": [alice[1].device_id], "extra": []}
    assert isinstance(fourth, frames.Accepted) and not fourth.duplicate
    [carols] = from_carol
    assert isinstance(carols, frames.Accepted) and carols.message != first.message
    [bobs] = from_bob
    assert isinstance(bobs, frames.Accepted)

    # Each device's envelopes reach an inbox in the order sent; nothing refused was stored.
    async with services.database.read() as connection:
        bob_inbox = await messages.read_inbox(connection, bob_devices[0], after_seq=0, limit=100)
        alice_other_inbox = await messages.read_inbox(connection, alice[1].device_id, after_seq=0, limit=100)
        stored_ids = {
            message.id
            for message in [
                await messages.get_message(connection, answer.message)
                for answer in (first, fourth, carols, bobs)
            ]
            if message is not None
        }
        entries = await ledger_store.entries_about(
            connection, [first.message, fourth.message, carols.message, bobs.message]
        )
        contact_rows = {
            (row.user_id, row.contact_id)
            for row in await connection.execute(select(contacts.c.user_id, contacts.c.contact_id))
        }
    alice_sent = [first.message, fourth.message]
    bob_received = [_message_of(entry.frame) for entry in bob_inbox]
    assert [message for message in bob_received if message in alice_sent] == alice_sent
    assert {_message_of(entry.frame) for entry in bob_inbox} == {
        first.message,
        fourth.message,
        carols.message,
    }
    assert {_message_of(entry.frame) for entry in alice_other_inbox} == {
        first.message,
        fourth.message,
        bobs.message,
    }
    assert stored_ids == {first.message, fourth.message, carols.message, bobs.message}

    accepted = [entry.entry for entry in entries]
    assert all(isinstance(entry, chain.MessageAccepted) for entry in accepted)
    alice_order = [
        entry.message
        for entry in accepted
        if isinstance(entry, chain.MessageAccepted) and entry.sender == "alice"
    ]
    assert alice_order == alice_sent
    alice_id, bob_id, carol_id = alice[0].user_id, bob[0].user_id, carol.user_id
    assert contact_rows == {(alice_id, bob_id), (bob_id, alice_id), (carol_id, bob_id), (bob_id, carol_id)}


def _message_of(frame: bytes | None) -> str:
    assert frame is not None
    deliver = decode_server_frame(frame)
    assert isinstance(deliver, frames.Deliver)
    return deliver.message


async def make_group(services: Services, group_id: str, members: list[Caller]) -> int:
    """A group of these users; returns its epoch."""
    async with services.database.write() as connection:
        await group_store.create_group(
            connection, group_id=group_id, name="Soins", created_by=members[0].user_id, now=1
        )
        for member in {caller.user_id: caller for caller in members}.values():
            await group_store.add_member(connection, group_id, member.user_id, "member", now=1)
        return await group_store.record_event(
            connection,
            group_id,
            kind="created",
            actor_id=members[0].user_id,
            subject_id=None,
            detail="",
            now=1,
        )


def group_send(client_id: str, group_id: str, epoch: int, keys: list[int] | None = None) -> frames.GroupSend:
    return frames.GroupSend(
        id=client_id,
        group=group_id,
        epoch=epoch,
        body=b"group ciphertext",
        keys=[frames.Copy(device=device, body=b"key") for device in keys or []],
    )


async def test_group_and_one_to_one_envelopes_of_several_devices_keep_each_devices_order(
    services: Services,
) -> None:
    alice = await add_user(services, "alice", 1)
    bob = await add_user(services, "bob", 2)
    [carol] = await add_user(services, "carol", 1)
    epoch = await make_group(services, "GCARE", [alice[0], bob[0]])
    other_epoch = await make_group(services, "GOTHER", [bob[0], carol])
    bob_devices = [caller.device_id for caller in bob]
    alice_batch = [
        send("a-1", "bob", bob_devices),
        group_send("a-2", "GCARE", epoch, keys=[bob_devices[0]]),
        send("a-3", "bob", bob_devices),
        group_send("a-2", "GCARE", epoch),  # a resend: answered duplicate
        group_send("a-4", "GCARE", epoch + 1),  # an epoch the group has not reached
        group_send("a-5", "GNOPE", 1),
        group_send("a-6", "GCARE", epoch, keys=[carol.device_id]),  # carol is not in the group
    ]
    carol_batch = [group_send("c-1", "GCARE", epoch), group_send("c-2", "GOTHER", other_epoch)]

    async with HeldCommitter(services) as held:
        tasks = [
            asyncio.create_task(accept_envelopes(services, alice[0], alice_batch)),
            asyncio.create_task(accept_envelopes(services, carol, carol_batch)),
        ]
        await held.queued(2)
    async with asyncio.timeout(TIMEOUT):
        from_alice, from_carol = await asyncio.gather(*tasks)

    assert 2 in held.batches
    first, grouped, third, again, stale, unknown, mismatch = from_alice
    assert all(isinstance(answer, frames.Accepted) for answer in (first, grouped, third, again))
    assert isinstance(again, frames.Accepted) and again.duplicate and again.message == grouped.message
    assert isinstance(stale, errors.StaleMembership) and stale.details == {"epoch": epoch}
    assert isinstance(unknown, errors.UnknownGroup)
    assert isinstance(mismatch, errors.DevicesMismatch)
    assert mismatch.details == {"missing": [], "extra": [carol.device_id]}
    not_member, other = from_carol
    assert isinstance(not_member, errors.NotAMember)
    assert isinstance(other, frames.Accepted) and not other.duplicate

    async with services.database.read() as connection:
        first_device = await messages.read_inbox(connection, bob_devices[0], after_seq=0, limit=100)
        second_device = await messages.read_inbox(connection, bob_devices[1], after_seq=0, limit=100)
        entries = await ledger_store.entries_about(
            connection, [first.message, grouped.message, third.message, other.message]
        )
    alice_sent = [first.message, grouped.message, third.message]
    for inbox in (first_device, second_device):
        received = [_delivered(entry) for entry in inbox]
        assert [message for message, _ in received if message in alice_sent] == alice_sent
        assert {message for message, _ in received} == {*alice_sent, other.message}
    # The sender key copy went to the one device it was for.
    assert [key for message, key in map(_delivered, first_device) if message == grouped.message] == [b"key"]
    assert [key for message, key in map(_delivered, second_device) if message == grouped.message] == [None]
    ledger_order = [
        entry.entry.message for entry in entries if isinstance(entry.entry, chain.MessageAccepted)
    ]
    assert [message for message in ledger_order if message in alice_sent] == alice_sent
    group_record = next(
        entry.entry
        for entry in entries
        if isinstance(entry.entry, chain.MessageAccepted) and entry.entry.message == grouped.message
    )
    assert isinstance(group_record, chain.MessageAccepted)
    assert [(copy.user, copy.device) for copy in group_record.copies] == [
        ("bob", d) for d in sorted(bob_devices)
    ]


def _delivered(entry: messages.PendingEntry) -> tuple[str, bytes | None]:
    """(message id, sender key copy) of an inbox entry, one-to-one or group."""
    if entry.group_message is not None:
        return entry.group_message.message_id, entry.group_message.key
    return _message_of(entry.frame), None


async def test_an_envelope_its_devices_refuse_leaves_no_row_and_its_client_id_stays_free(
    services: Services,
) -> None:
    """A refused envelope leaves no message row behind.

    Otherwise the corrected envelope, sent again under the same client id, would be
    answered "duplicate" of a message no inbox holds: lost.
    """
    [alice] = await add_user(services, "alice", 1)
    bob = await add_user(services, "bob", 2)
    bob_devices = [caller.device_id for caller in bob]
    epoch = await make_group(services, "GCARE", [alice, bob[0]])
    [missing, stray] = await accept_envelopes(
        services,
        alice,
        [send("m-1", "bob", bob_devices[:1]), group_send("g-1", "GCARE", epoch, keys=[alice.device_id])],
    )
    assert isinstance(missing, errors.DevicesMismatch) and isinstance(stray, errors.DevicesMismatch)
    async with services.database.read() as connection:
        rows = await connection.execute(select(messages_table.c.client_id))
        assert list(rows) == []
    accepted = await accept_envelopes(
        services, alice, [send("m-1", "bob", bob_devices), group_send("g-1", "GCARE", epoch)]
    )
    assert [(type(answer), getattr(answer, "duplicate", None)) for answer in accepted] == [
        (frames.Accepted, False),
        (frames.Accepted, False),
    ]
    async with services.database.read() as connection:
        for device_id in bob_devices:
            assert len(await messages.read_inbox(connection, device_id, after_seq=0, limit=10)) == 2


async def test_a_corrected_envelope_in_the_same_transaction_as_its_refused_one_is_stored(
    services: Services,
) -> None:
    """Rows are inserted before their envelopes are checked, and the refused ones withdrawn.

    An envelope that reused the client id of one refused in the same transaction was
    left out of that insert (its id looked taken): it must be stored all the same,
    as it would be had the refused one never been inserted.
    """
    [alice] = await add_user(services, "alice", 1)
    bob = await add_user(services, "bob", 2)
    bob_devices = [caller.device_id for caller in bob]
    epoch = await make_group(services, "GCARE", [alice, bob[0]])
    async with HeldCommitter(services) as held:
        task = asyncio.create_task(
            accept_envelopes(
                services,
                alice,
                [
                    send("m-1", "bob", bob_devices[:1]),  # bob's second device is missing
                    send("m-1", "bob", bob_devices),
                    group_send("g-1", "GCARE", epoch + 1),  # stale epoch: refused, withdrawn
                    group_send("g-2", "GCARE", epoch),
                ],
            )
        )
        await held.queued(1)
    async with asyncio.timeout(TIMEOUT):
        refused, corrected, stale, group_message = await task

    assert isinstance(refused, errors.DevicesMismatch)
    assert isinstance(corrected, frames.Accepted) and not corrected.duplicate
    assert isinstance(stale, errors.StaleMembership)
    assert isinstance(group_message, frames.Accepted) and not group_message.duplicate
    async with services.database.read() as connection:
        rows = await connection.execute(select(messages_table.c.id, messages_table.c.client_id))
        assert sorted(row.client_id for row in rows) == ["g-2", "m-1"]
        for device_id in bob_devices:
            inbox = await messages.read_inbox(connection, device_id, after_seq=0, limit=10)
            one_to_one = [_message_of(entry.frame) for entry in inbox if entry.group_message is None]
            assert one_to_one == [corrected.message]
        entries = await ledger_store.entries_about(connection, [corrected.message, group_message.message])
    assert sorted(
        entry.entry.message for entry in entries if isinstance(entry.entry, chain.MessageAccepted)
    ) == sorted([corrected.message, group_message.message])


async def test_accepted_is_answered_once_committed_before_the_notices_are_published(
    services: Services,
) -> None:
    """Protocol §6.1: store, answer, then notify; a slow broker does not hold ``accepted`` back."""
    [alice] = await add_user(services, "alice", 1)
    [bob] = await add_user(services, "bob", 1)
    release, answered_now = asyncio.Event(), asyncio.Event()
    published: list[list[str]] = []
    publish_many = services.broker.publish_many

    async def slow_publish_many(notices: Sequence[tuple[str, bytes]]) -> None:
        await release.wait()
        published.append([channel for channel, _ in notices])
        await publish_many(notices)

    services.broker.publish_many = slow_publish_many  # type: ignore[method-assign]
    answers: list[Answers] = []

    def answer(given: Answers) -> None:
        answers.append(given)
        answered_now.set()

    storing = asyncio.create_task(
        accept_envelopes(services, alice, [send("n-1", "bob", [bob.device_id])], answer=answer)
    )
    async with asyncio.timeout(TIMEOUT):
        await answered_now.wait()
    [[accepted]] = answers
    assert isinstance(accepted, frames.Accepted) and not accepted.duplicate
    assert published == [] and not storing.done()  # durable and answered; the notice still waits
    release.set()
    async with asyncio.timeout(TIMEOUT):
        assert await storing == [accepted]
    assert published == [[f"lien:d:{bob.device_id}"]]
