"""End to end through a running server: several devices, a restart, and what the operator can see."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

import lien
from lien.crypto.errors import CryptoError
from lien.crypto.payload import Conversation, DeviceAddress
from lien.keystore import Keystore
from lien.protocol import frames
from lien.sdk import e2e
from server.settings import Settings
from tests.inprocess import PASSWORD, serving


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    database = tmp_path / "lien.db"
    async with serving(Settings(database_url=f"sqlite+aiosqlite:///{database}")) as url:
        yield url, database


async def drain(client: lien.Client, count: int) -> list[lien.Message]:
    return [await client.receive(timeout=20) for _ in range(count)]


async def nothing_more(client: lien.Client) -> None:
    with pytest.raises(TimeoutError):
        await client.receive(timeout=0.5)


async def test_two_users_three_devices_and_a_restart(server: tuple[str, Path], tmp_path: Path) -> None:
    url, database = server
    desktop = await lien.Client.register(url, "dr.martin", PASSWORD, keystore=tmp_path / "desktop")
    web = await lien.Client.login(url, "dr.martin", PASSWORD, keystore=tmp_path / "web")
    lab = await lien.Client.register(url, "labo", PASSWORD, keystore=tmp_path / "labo")
    outsider = await lien.Client.register(url, "carol", PASSWORD, keystore=tmp_path / "carol")
    for client in (desktop, web, lab, outsider):
        await client.connect()

    async def exchange(round_name: str) -> None:
        from_lab = [await lab.send_text("dr.martin", f"{round_name}: résultat {n}") for n in range(4)]
        from_desktop = [await desktop.send_text("labo", f"{round_name}: bureau {n}") for n in range(3)]
        from_web = [await web.send_text("labo", f"{round_name}: web {n}") for n in range(3)]
        on_desktop = await drain(desktop, 4 + 3)
        on_web = await drain(web, 4 + 3)
        on_lab = await drain(lab, 6)
        assert sorted(m.id for m in on_desktop) == sorted(from_lab + from_web)
        assert sorted(m.id for m in on_web) == sorted(from_lab + from_desktop)
        assert sorted(m.id for m in on_lab) == sorted(from_desktop + from_web)
        assert all(m.verify() for m in on_desktop + on_web + on_lab)
        assert {m.outgoing for m in on_desktop if m.sender == "dr.martin"} == {True}
        for client in (desktop, web, lab):
            await nothing_more(client)

    await exchange("avant")
    await web.close()
    web = await lien.Client.login(url, "dr.martin", PASSWORD, keystore=tmp_path / "web")
    await web.connect()
    await exchange("après")
    await nothing_more(outsider)  # a third user receives nothing of it

    # A copy addressed to one device opens on that device only.
    await desktop.close()
    extra = await lab.send_text("dr.martin", "une copie pour chaque appareil")
    assert (await web.receive(timeout=20)).id == extra
    copies = stored_copies(database)
    (copy,) = [copy for copy in copies if copy.to_device == desktop.device_id and copy.sender == "labo"]
    for other in (web, outsider):
        with pytest.raises(CryptoError):
            e2e.decrypt(
                other.keystore,
                DeviceAddress(other.username, other.device_id),
                copy.body,
                delivered_by=DeviceAddress("labo", lab.device_id),
                sender_identity=lab.keystore.identity.public,
                conversation=Conversation.user(copy.to),
            )
    desktop = await lien.Client.login(url, "dr.martin", PASSWORD, keystore=tmp_path / "desktop")
    await desktop.connect()
    assert (await desktop.receive(timeout=20)).text == "une copie pour chaque appareil"
    for client in (desktop, web, lab, outsider):
        await client.close()


class StoredCopy(msgspec.Struct):
    to_device: int
    sender: str
    to: str
    body: bytes


def stored_copies(database: Path) -> list[StoredCopy]:
    """What an operator reading the database finds: inbox frames (ciphertext and routing only)."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT device_id, frame FROM inbox").fetchall()
    copies = []
    for device_id, raw in rows:
        frame = msgspec.json.decode(raw, type=frames.Deliver | frames.Status)
        if isinstance(frame, frames.Deliver):
            copies.append(StoredCopy(device_id, frame.sender, frame.to, frame.body))
    return copies


async def test_an_operator_with_the_database_reads_no_text_and_holds_no_private_key(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, database = server
    alice = await lien.Client.register(url, "alice", PASSWORD, keystore=tmp_path / "alice")
    bob = await lien.Client.register(url, "bob", PASSWORD, keystore=tmp_path / "bob")
    await alice.connect()
    await bob.connect()
    bob_id = bob.device_id
    await bob.close()  # Bob is away: his copies wait in the database
    texts = ["Patient: M. Bernard, INR 5,2", "Arrêter le Préviscan ce soir", "Rappel à 18 h"]
    for text in texts:
        await alice.send_text("bob", text)

    dump = b"".join(database.parent.joinpath(name).read_bytes() for name in ("lien.db", "lien.db-wal")
                    if database.parent.joinpath(name).exists())  # fmt: skip
    for text in texts:
        assert text.encode() not in dump
    copies = [copy for copy in stored_copies(database) if copy.to_device == bob_id]
    assert len(copies) == len(texts)

    # No private key of Bob's device is anywhere in the database.
    store = Keystore.open(tmp_path / "bob", PASSWORD)
    private_keys = [*store.identity.secret_bytes()]
    for prekey_id in range(1, 200):
        for prekey in (store.signed_prekey(prekey_id), store.one_time_prekey(prekey_id)):
            if prekey is not None:
                private_keys.append(prekey.private_bytes())
    assert len(private_keys) > 50
    assert not [key for key in private_keys if key in dump]
    assert store.identity.public.signing_key in dump  # the public half is there: the check can see keys

    # An operator who swaps in keys of its own (a fresh device pretending to be Bob's) opens nothing.
    impostor = await lien.Client.register(url, "mallory", PASSWORD, keystore=tmp_path / "mallory")
    for copy in copies:
        with pytest.raises(CryptoError):
            e2e.decrypt(
                impostor.keystore,
                DeviceAddress("bob", bob_id),
                copy.body,
                delivered_by=DeviceAddress("alice", alice.device_id),
                sender_identity=alice.keystore.identity.public,
                conversation=Conversation.user("bob"),
            )
    await alice.close()
    await impostor.close()
