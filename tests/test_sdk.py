"""The asyncio SDK against a real server (uvicorn in the test loop, SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import lien
from lien.crypto import session as crypto_session
from lien.crypto.errors import BadSignature, WrongPassword
from lien.crypto.keys import IdentityKeyPair
from lien.crypto.payload import verify_payload
from lien.keystore import Keystore
from lien.protocol import errors, frames
from lien.sdk.trust import IdentityNotAccepted
from server.settings import Settings
from tests.inprocess import PASSWORD, frame_socket, serving
from tests.live import free_port

Factory = Callable[..., Awaitable[lien.Client]]


@pytest.fixture
async def server_url(database_url: str) -> AsyncIterator[str]:
    async with serving(Settings(database_url=database_url)) as url:
        yield url


@pytest.fixture
async def clients(server_url: str, tmp_path: Path) -> AsyncIterator[Factory]:
    """``await clients("alice")`` registers (or, with ``login=True``, signs in a new device) and connects."""
    made: list[lien.Client] = []

    async def make(
        username: str, *, login: bool = False, keystore: str | None = None, **profile: str
    ) -> lien.Client:
        path = tmp_path / (keystore or f"{username}-{len(made)}")
        if login:
            client = await lien.Client.login(server_url, username, PASSWORD, keystore=path)
        else:
            client = await lien.Client.register(server_url, username, PASSWORD, keystore=path, **profile)
        await client.connect()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def next_event_of(client: lien.Client, kind: type, *, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            if isinstance(event, kind):
                return event


async def test_a_lab_alert_is_delivered_decrypted_read_and_traced(clients: Factory) -> None:
    biologist = await clients("labo.durand", display_name="Laboratoire Durand", profession="Biologiste")
    prescriber = await clients("dr.martin", display_name="Dr Hélène Martin", profession="Médecin généraliste")
    text = "Kaliémie 6,8 mmol/L chez Mme Lefèvre — rappel urgent ☎️ 😷"

    message_id = await biologist.send_text("dr.martin", text)
    received = await prescriber.receive(timeout=10)
    assert (received.id, received.text, received.sender, received.recipient) == (
        message_id,
        text,
        "labo.durand",
        "dr.martin",
    )
    assert not received.outgoing and len(received.signature) == 64

    decrypted = await next_event_of(biologist, lien.Receipt)
    assert (decrypted.message_id, decrypted.kind, decrypted.by) == (message_id, "decrypted", "dr.martin")
    await prescriber.mark_read(received)
    read = await next_event_of(biologist, lien.Receipt)
    assert (read.message_id, read.kind) == (message_id, "read")
    assert read.at >= decrypted.at

    recorded = await biologist.receipts(message_id)
    assert [r.kind for r in recorded] == ["decrypted", "read"]
    with pytest.raises(errors.UnknownMessage):
        await prescriber.receipts(message_id)


async def test_every_device_of_both_users_gets_its_copy(clients: Factory) -> None:
    alice_desktop = await clients("alice", keystore="alice-desktop")
    alice_laptop = await clients("alice", login=True, keystore="alice-laptop")
    bob = await clients("bob")
    assert alice_desktop.device_id != alice_laptop.device_id

    to_alice = await bob.send_text("alice", "pour vos deux appareils")
    for device in (alice_desktop, alice_laptop):
        got = await device.receive(timeout=10)
        assert (got.id, got.text, got.outgoing) == (to_alice, "pour vos deux appareils", False)

    from_laptop = await alice_laptop.send_text("bob", "réponse depuis le portable")
    at_bob = await bob.receive(timeout=10)
    at_desktop = await alice_desktop.receive(timeout=10)
    assert at_bob.id == at_desktop.id == from_laptop
    assert (
        at_desktop.outgoing and at_desktop.peer == "bob" and at_desktop.text == "réponse depuis le portable"
    )


async def test_a_new_device_of_the_recipient_is_picked_up_on_the_next_send(clients: Factory) -> None:
    alice = await clients("alice")
    bob_first = await clients("bob", keystore="bob-first")
    await alice.send_text("bob", "one")
    assert (await bob_first.receive(timeout=10)).text == "one"

    bob_second = await clients("bob", login=True, keystore="bob-second")
    await alice.send_text("bob", "two")  # alice's device list is stale: the server says so, she resends
    assert (await bob_first.receive(timeout=10)).text == "two"
    assert (await bob_second.receive(timeout=10)).text == "two"


async def test_the_keystore_survives_a_restart_and_the_backlog_arrives_in_order(
    clients: Factory, server_url: str, tmp_path: Path
) -> None:
    alice = await clients("alice")
    bob = await clients("bob", keystore="bob")
    device_id = bob.device_id
    await bob.close()
    sent = [await alice.send_text("bob", f"message {n}") for n in range(20)]

    with pytest.raises(WrongPassword):
        await lien.Client.login(server_url, "bob", "not the password at all", keystore=tmp_path / "bob")
    async with await lien.Client.login(server_url, "bob", PASSWORD, keystore=tmp_path / "bob") as again:
        assert again.device_id == device_id
        await again.connect()
        received = [await again.receive(timeout=10) for _ in sent]
    assert [m.id for m in received] == sent
    assert [m.text for m in received] == [f"message {n}" for n in range(20)]


async def test_a_send_made_while_the_server_is_down_is_delivered_once_after_it_returns(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    settings = Settings(database_url=database_url)
    async with serving(settings, port=port) as url:
        alice = await lien.Client.register(url, "alice", PASSWORD, keystore=tmp_path / "alice")
        bob = await lien.Client.register(url, "bob", PASSWORD, keystore=tmp_path / "bob")
        await alice.connect()
        await bob.connect()
        await alice.send_text("bob", "before")
        assert (await bob.receive(timeout=10)).text == "before"
    # The node is gone: the send waits, then goes out when a node is back on that address.
    pending = asyncio.create_task(alice.send_text("bob", "during the outage"))
    async with serving(settings, port=port):
        message_id = await asyncio.wait_for(pending, 30)
        got = await bob.receive(timeout=30)
        assert (got.id, got.text) == (message_id, "during the outage")
        await alice.send_text("bob", "after")
        assert (await bob.receive(timeout=10)).text == "after"  # nothing was delivered twice in between
        await alice.close()
        await bob.close()


async def test_unreadable_bodies_are_reported_never_shown(clients: Factory, server_url: str) -> None:
    alice = await clients("alice")
    bob = await clients("bob")
    mallory = await clients("mallory")
    token = mallory.keystore.token
    assert token is not None
    bodies = {
        "legacy": b"\x01an old sealed-box body",
        "garbage": b"\x02\x01" + b"\x00" * 80,
        "empty-ish": b"\x02",
    }
    async with frame_socket(server_url, token) as raw:
        for client_id, body in bodies.items():
            await raw.send(
                frames.Send(id=client_id, to="bob", copies=[frames.Copy(device=bob.device_id, body=body)])
            )
            assert isinstance(await raw.receive_until(frames.Accepted), frames.Accepted)
    reasons = sorted([(await next_event_of(bob, lien.Undecryptable)).reason for _ in bodies])
    assert reasons == ["malformed-message", "no-session", "unsupported-format"]
    await alice.send_text("bob", "a real one")
    assert (await bob.receive(timeout=10)).text == "a real one"  # nothing unreadable came out of receive()


async def test_a_forged_signature_in_a_valid_session_is_rejected(
    clients: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await clients("alice")
    bob = await clients("bob")
    mallory = await clients("mallory")
    await mallory.send_text("bob", "bonjour")  # a genuine session first
    assert (await bob.receive(timeout=10)).text == "bonjour"

    impostor = IdentityKeyPair.generate()
    genuine_sign = crypto_session.sign_payload
    monkeypatch.setattr(
        crypto_session, "sign_payload", lambda _identity, payload: genuine_sign(impostor, payload)
    )
    forged_id = await mallory.send_text("bob", "Arrêtez le traitement de Mme Lefèvre")
    failure = await next_event_of(bob, lien.Undecryptable)
    assert (failure.message_id, failure.reason, failure.sender) == (forged_id, "bad-signature", "mallory")
    # Bob asked Mallory's device to repair; its resent copy is forged the same way, and refused again.
    again = await next_event_of(bob, lien.Undecryptable)
    assert (again.message_id, again.reason) == (forged_id, "bad-signature")
    monkeypatch.undo()

    await alice.send_text("bob", "la vraie consigne")
    assert (await bob.receive(timeout=10)).text == "la vraie consigne"


async def test_a_lost_session_is_repaired_and_the_message_resent(clients: Factory, tmp_path: Path) -> None:
    alice = await clients("alice")
    bob = await clients("bob", keystore="bob")
    await alice.send_text("bob", "premier")
    first = await bob.receive(timeout=10)
    await bob.send_text("alice", "reçu")
    await alice.receive(timeout=10)
    # Bob's device loses its session with Alice (say, a keystore restored from an old backup).
    await bob.close()
    store = Keystore.open(tmp_path / "bob", PASSWORD)
    assert store.session_names() == [f"alice/{alice.device_id}"]
    store.set_session(f"alice/{alice.device_id}", None)
    store.save()

    lost_id = await alice.send_text("bob", "second, après la perte")  # a ratchet message Bob cannot open
    bob = await clients("bob", login=True, keystore="bob")
    failure = await next_event_of(bob, lien.Undecryptable)
    assert (failure.message_id, failure.reason, failure.repairing) == (lost_id, "no-session", True)
    repaired = await bob.receive(timeout=20)
    assert (repaired.id, repaired.text, repaired.sender) == (lost_id, "second, après la perte", "alice")
    assert repaired.sent_at > first.sent_at
    kinds = []
    while "decrypted" not in kinds:
        receipt = await next_event_of(alice, lien.Receipt)
        if receipt.message_id == lost_id:
            kinds.append(receipt.kind)
    assert kinds == ["decrypt-failed", "decrypted"]
    await alice.send_text("bob", "et la suite")
    assert (await bob.receive(timeout=10)).text == "et la suite"


async def test_safety_numbers_and_a_new_device_of_a_correspondent(clients: Factory) -> None:
    alice = await clients("alice")
    bob = await clients("bob", keystore="bob-phone")
    await alice.send_text("bob", "hello")
    await bob.receive(timeout=10)
    before = await alice.safety_number("bob")
    assert before == await bob.safety_number("alice") and len(before.digits) == 60

    alice.identity_policy = "block"
    await clients("bob", login=True, keystore="bob-desktop")
    changed = await next_event_of(alice, lien.IdentityChanged)  # pushed to contacts when a device is added
    assert changed.user == "bob" and len(changed.added) == 1 and changed.removed == changed.replaced == []
    with pytest.raises(IdentityNotAccepted):
        await alice.send_text("bob", "to a device I have not checked")
    after = await alice.safety_number("bob")
    assert after != before
    await alice.accept_identity("bob")
    await alice.send_text("bob", "checked")
    assert (await bob.receive(timeout=10)).text == "checked"


async def test_a_received_message_carries_a_proof_anyone_can_check(clients: Factory) -> None:
    alice = await clients("alice")
    bob = await clients("bob")
    await alice.send_text("bob", "K+ 6,8 mmol/L")
    received = await bob.receive(timeout=10)
    assert received.verify()
    payload = verify_payload(received.payload, received.signature, received.signer_key)
    assert (payload.sender.user, payload.recipient.user, payload.text) == ("alice", "bob", "K+ 6,8 mmol/L")
    assert received.signer_key == alice.keystore.identity.public.signing_key
    tampered = received.payload.replace(b"6,8", b"3,8")
    with pytest.raises(BadSignature):
        verify_payload(tampered, received.signature, received.signer_key)


async def test_typing_and_presence_between_contacts(clients: Factory) -> None:
    alice = await clients("alice")
    bob = await clients("bob")
    await alice.send_text("bob", "hello")
    await bob.receive(timeout=10)
    await alice.watch(["bob"])
    assert await next_event_of(alice, lien.PresenceChange) == lien.PresenceChange("bob", True)
    await bob.set_typing("alice", True)
    typing = await next_event_of(alice, lien.Typing)
    assert (typing.sender, typing.active) == ("bob", True)
    await bob.close()
    assert await next_event_of(alice, lien.PresenceChange) == lien.PresenceChange("bob", False)


async def test_account_errors_are_typed(server_url: str, tmp_path: Path) -> None:
    first = await lien.Client.register(server_url, "alice", PASSWORD, keystore=tmp_path / "a1")
    await first.close()
    with pytest.raises(errors.UsernameTaken):
        await lien.Client.register(server_url, "alice", PASSWORD, keystore=tmp_path / "a2")
    assert not (tmp_path / "a2").exists()  # a failed registration leaves no keystore behind
    with pytest.raises(errors.InvalidCredentials):
        await lien.Client.login(server_url, "alice", "wrong password!!", keystore=tmp_path / "a3")
    with pytest.raises(errors.InvalidCredentials):
        await lien.Client.login(server_url, "nobody", PASSWORD, keystore=tmp_path / "a4")
    async with await lien.Client.login(server_url, "alice", PASSWORD, keystore=tmp_path / "a5") as alice:
        await alice.connect()
        with pytest.raises(errors.UnknownUser):
            await alice.send_text("nobody", "hello?")
