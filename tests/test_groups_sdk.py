"""Care-team groups end to end through the SDK: fan-out, order, removal, joining, repair."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import lien
from lien.crypto.errors import CryptoError
from lien.crypto.group import SenderKeyReceiver
from lien.crypto.payload import Conversation, DeviceAddress
from lien.keystore import Keystore
from lien.protocol import errors
from server.settings import Settings
from tests.inprocess import PASSWORD, serving

Factory = Callable[..., Awaitable[lien.Client]]


@pytest.fixture
async def server_url(tmp_path: Path) -> AsyncIterator[str]:
    async with serving(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'lien.db'}")) as url:
        yield url


@pytest.fixture
async def clients(server_url: str, tmp_path: Path) -> AsyncIterator[Factory]:
    made: list[lien.Client] = []

    async def make(username: str, *, login: bool = False, keystore: str | None = None) -> lien.Client:
        path = tmp_path / (keystore or username)
        if login:
            client = await lien.Client.login(server_url, username, PASSWORD, keystore=path)
        else:
            client = await lien.Client.register(server_url, username, PASSWORD, keystore=path)
        await client.connect()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def group_messages(client: lien.Client, count: int) -> list[lien.Message]:
    return [await client.receive(timeout=20) for _ in range(count)]


async def event_of(client: lien.Client, kind: type, *, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            if isinstance(event, kind):
                return event


async def test_a_care_team_talks_and_every_device_reads_each_message_once_in_order(clients: Factory) -> None:
    gp = await clients("dr.martin")
    nurse = await clients("nurse.dupont")
    nurse_tablet = await clients("nurse.dupont", login=True, keystore="nurse-tablet")
    pharmacist = await clients("pharma.leroy")
    team = await gp.create_group("Mme Lefèvre, soins à domicile", ["nurse.dupont", "pharma.leroy"])
    assert team.startswith("G")

    sent = [
        await gp.send_text(team, "Pansement à refaire demain 9 h"),
        await nurse.send_text(team, "Noté, je passe à 9 h 15 😊"),
        await pharmacist.send_text(team, "Compresses livrées ce soir"),
        await gp.send_text(team, "Merci à tous"),
    ]
    for device, others in ((gp, 2), (nurse, 3), (nurse_tablet, 4), (pharmacist, 3)):
        received = await group_messages(device, others)
        assert all(message.group == team and message.verify() for message in received)
        assert [m.id for m in received] == [m for m in sent if m in {r.id for r in received}]
        with pytest.raises(TimeoutError):
            await device.receive(timeout=0.3)
    info = await gp.group_info(team)
    assert sorted(m.user for m in info.members) == ["dr.martin", "nurse.dupont", "pharma.leroy"]


async def test_a_removed_member_cannot_read_later_messages_and_a_new_one_cannot_read_earlier(
    clients: Factory, tmp_path: Path
) -> None:
    gp = await clients("dr.martin")
    bob = await clients("bob.physio")
    carol = await clients("carol.nurse")
    team = await gp.create_group("Équipe", ["bob.physio"])
    before_carol = await gp.send_text(team, "avant l'arrivée de Carol")
    assert (await bob.receive(timeout=20)).id == before_carol

    await gp.add_member(team, "carol.nurse")
    await event_of(carol, lien.GroupChanged)
    after_carol = await gp.send_text(team, "bienvenue Carol")
    got = await carol.receive(timeout=20)
    assert got.id == after_carol  # and not the one before she joined
    assert (await bob.receive(timeout=20)).id == after_carol

    await gp.remove_member(team, "bob.physio")
    removal = await event_of(bob, lien.GroupChanged)
    while removal.event != "member-removed":
        removal = await event_of(bob, lien.GroupChanged)
    assert removal.subject == "bob.physio"
    secret = await gp.send_text(team, "après le départ de Bob")
    assert (await carol.receive(timeout=20)).id == secret
    with pytest.raises(TimeoutError):
        await bob.receive(timeout=0.5)  # the server no longer routes to him...

    # ...and nothing Bob's device holds opens the ciphertext anyway.
    body = await stored_group_body(tmp_path / "lien.db", secret)
    await bob.close()
    store = Keystore.open(tmp_path / "bob.physio", PASSWORD)
    gp_device = DeviceAddress("dr.martin", gp.device_id)
    held = store.sender_key_receiver(f"{team}/dr.martin/{gp.device_id}")
    assert held is not None, "Bob did hold the doctor's previous sender key"
    receiver = SenderKeyReceiver.from_bytes(held)
    with pytest.raises(CryptoError) as refused:
        receiver.decrypt(body, delivered_by=gp_device, conversation=Conversation.group(team))
    assert refused.value.code == "unknown-sender-key"


async def stored_group_body(database: Path, message_id: str) -> bytes:
    import sqlite3

    with sqlite3.connect(database) as connection:
        (body,) = connection.execute("SELECT body FROM messages WHERE id = ?", (message_id,)).fetchone()
    return bytes(body)


async def test_group_rules_reach_the_sdk_as_typed_errors(clients: Factory) -> None:
    owner = await clients("owner.gp")
    member = await clients("member.nurse")
    outsider = await clients("outsider")
    team = await owner.create_group("Équipe", ["member.nurse"])
    with pytest.raises(errors.RoleRequired):
        await member.add_member(team, "outsider")
    with pytest.raises(errors.NotAMember):
        await outsider.group_info(team)
    with pytest.raises(errors.NotAMember):
        await outsider.send_text(team, "hello?")
    await member.leave_group(team)
    with pytest.raises(errors.NotAMember):
        await member.send_text(team, "still here?")
    listed = await owner.groups()
    assert [group.id for group in listed] == [team]


async def test_a_member_who_lost_the_sender_key_gets_the_message_repaired(
    clients: Factory, tmp_path: Path
) -> None:
    gp = await clients("dr.martin")
    nurse = await clients("nurse.dupont", keystore="nurse")
    team = await gp.create_group("Équipe", ["nurse.dupont"])
    await gp.send_text(team, "premier")
    await nurse.receive(timeout=20)
    await nurse.close()
    store = Keystore.open(tmp_path / "nurse", PASSWORD)
    store.set_sender_key_receiver(f"{team}/dr.martin/{gp.device_id}", None)  # lost: say, an old backup
    store.save()

    lost = await gp.send_text(team, "deuxième, clé perdue")
    nurse = await clients("nurse.dupont", login=True, keystore="nurse")
    failure = await event_of(nurse, lien.Undecryptable)
    assert (failure.message_id, failure.reason) == (lost, "unknown-sender-key")
    repaired = await nurse.receive(timeout=20)
    assert (repaired.id, repaired.text, repaired.group) == (lost, "deuxième, clé perdue", team)
    following = await gp.send_text(team, "troisième")
    assert (await nurse.receive(timeout=20)).id == following  # the key came back with the next message
