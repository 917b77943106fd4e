"""Sessions: set-up, ratchet bounds, replay, tampering, persistence (docs/protocol-crypto.md §3.5 to §3.9)."""

from __future__ import annotations

import pytest

from lien.crypto import errors, primitives, session_state
from lien.crypto import session as session_module
from lien.crypto.keys import IdentityKeyPair, SignedPrekeyPair
from lien.crypto.payload import Conversation, DeviceAddress, encode_plaintext, sign_payload
from lien.crypto.ratchet import RatchetLimits, RatchetState, SkippedKey
from lien.crypto.session import Session, initiate_session
from lien.crypto.wire import TYPE_PREKEY, TYPE_RATCHET, parse_body

from .crypto_helpers import device, encrypt_raw, open_pair, payload, receive, send, state_secrets


def decrypt_fails(session: Session, body: bytes, sender_address: DeviceAddress, own_user: str) -> str:
    before = session.to_bytes()
    with pytest.raises(errors.CryptoError) as caught:
        session.decrypt(body, delivered_by=sender_address, conversation=Conversation.user(own_user))
    assert session.to_bytes() == before, "a failed decrypt must leave the session unchanged"
    return caught.value.code


# --- set-up -----------------------------------------------------------------------------


def test_a_working_copy_of_the_ratchet_derives_no_key_and_shares_no_mutable_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every encrypt and decrypt works on a copy: deriving the sending public key there cost an
    # X25519 base-point multiplication per message.
    state = RatchetState.for_initiator(
        bytes(range(32)), primitives.x25519_public(bytes([9] * 32)), bytes([5] * 32)
    )
    state.previous_receiving_keys.append(bytes([7] * 32))
    state.skipped[(bytes([7] * 32), 3)] = SkippedKey(bytes([8] * 32), 0)

    def derive(_private: bytes) -> bytes:
        raise AssertionError("copy() derived the sending public key again")

    monkeypatch.setattr(primitives, "x25519_public", derive)
    twin = state.copy()
    assert {name: getattr(twin, name) for name in RatchetState.__slots__} == {
        name: getattr(state, name) for name in RatchetState.__slots__
    }
    twin.previous_receiving_keys.clear()
    twin.skipped.clear()
    assert state.previous_receiving_keys == [bytes([7] * 32)]
    assert list(state.skipped) == [(bytes([7] * 32), 3)]


def test_initiator_sends_prekey_messages_until_the_peer_answers() -> None:
    alice, bob = device("alice", 1), device("bob", 2)
    alice_session = initiate_session(alice.identity, alice.address, bob.address, bob.bundle())
    first, first_payload = send(alice_session, alice, bob, "un")
    second, _ = send(alice_session, alice, bob, "deux")
    assert first[:2] == second[:2] == bytes([0x02, TYPE_PREKEY])
    assert alice_session.awaiting_reply and alice_session.is_initiator

    accepted = bob.accept(first, alice)
    assert accepted.message.payload == first_payload
    assert accepted.used_one_time_prekey_id == 100
    assert 100 not in bob.one_time_prekeys
    bob_session = accepted.session
    assert bob_session.matches(second) and not bob_session.is_initiator
    assert receive(bob_session, second, alice, bob).payload.text == "deux"

    reply, _ = send(bob_session, bob, alice, "trois")
    assert reply[:2] == bytes([0x02, TYPE_RATCHET])
    assert receive(alice_session, reply, bob, alice).payload.text == "trois"
    assert not alice_session.awaiting_reply
    after, _ = send(alice_session, alice, bob, "quatre")
    assert after[1] == TYPE_RATCHET
    assert receive(bob_session, after, alice, bob).payload.text == "quatre"


def test_session_without_one_time_prekey() -> None:
    alice, bob = device("alice", 1), device("bob", 2)
    session = initiate_session(alice.identity, alice.address, bob.address, bob.bundle(with_one_time=False))
    body, _ = send(session, alice, bob)
    parsed = parse_body(body)
    assert parsed.x3dh is not None and parsed.x3dh.one_time_prekey_id is None
    accepted = bob.accept(body, alice)
    assert accepted.used_one_time_prekey_id is None
    assert len(bob.one_time_prekeys) == 3


def test_used_one_time_prekey_cannot_open_a_second_session() -> None:
    alice, bob = device("alice", 1), device("bob", 2)
    session = initiate_session(alice.identity, alice.address, bob.address, bob.bundle())
    body, _ = send(session, alice, bob)
    bob.accept(body, alice)
    with pytest.raises(errors.UnknownPrekey):
        bob.accept(body, alice)


def test_accept_rejects_unknown_signed_prekey_and_wrong_identity_and_ratchet_messages() -> None:
    alice, bob = device("alice", 1), device("bob", 2)
    session = initiate_session(alice.identity, alice.address, bob.address, bob.bundle())
    body, _ = send(session, alice, bob)
    rotated = device("bob", 2)
    rotated.identity = bob.identity
    rotated.signed_prekey = SignedPrekeyPair.generate(2, bob.identity)
    rotated.one_time_prekeys = bob.one_time_prekeys
    with pytest.raises(errors.UnknownPrekey):
        rotated.accept(body, alice)
    impostor = device("alice", 1)
    with pytest.raises(errors.IdentityMismatch):
        bob.accept(body, impostor)
    alice2, bob2, alice2_session, _ = open_pair()
    normal, _ = send(alice2_session, alice2, bob2)
    with pytest.raises(errors.NoSession):
        bob2.accept(normal, alice2)


def test_bundle_with_bad_signature_is_refused() -> None:
    bob = device("bob", 2)
    assert bob.signed_prekey is not None
    forged = SignedPrekeyPair.generate(1, IdentityKeyPair.generate())
    bob.signed_prekey = forged
    with pytest.raises(errors.BadPrekeySignature):
        bob.bundle()


def test_prekey_message_of_another_set_up_does_not_match() -> None:
    alice, bob = device("alice", 1), device("bob", 2)
    first = initiate_session(alice.identity, alice.address, bob.address, bob.bundle())
    body_one, _ = send(first, alice, bob)
    bob_session = bob.accept(body_one, alice).session
    again = initiate_session(alice.identity, alice.address, bob.address, bob.bundle())
    body_two, _ = send(again, alice, bob)
    assert not bob_session.matches(body_two)
    assert decrypt_fails(bob_session, body_two, alice.address, "bob") == "session-mismatch"
    assert bob.accept(body_two, alice).message.payload.sender == alice.address


def test_prekey_message_sent_back_to_its_initiator_is_refused() -> None:
    alice, bob, alice_session, _ = open_pair()
    fresh = initiate_session(alice.identity, alice.address, bob.address, bob.bundle())
    body, _ = send(fresh, alice, bob)
    assert decrypt_fails(alice_session, body, bob.address, "alice") == "session-mismatch"


# --- ordering, replay, bounds ---------------------------------------------------------


def test_out_of_order_and_replay() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    bodies = [send(alice_session, alice, bob, f"n{index}")[0] for index in range(6)]
    for index in (3, 0, 5, 1, 4, 2):
        assert receive(bob_session, bodies[index], alice, bob).payload.text == f"n{index}"
    for body in bodies:
        assert decrypt_fails(bob_session, body, alice.address, "bob") == "replayed-message"


def test_messages_from_a_previous_chain_still_decrypt_and_replays_of_them_are_reported() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    late, _ = send(alice_session, alice, bob, "late")
    on_time, _ = send(alice_session, alice, bob, "on time")
    receive(bob_session, on_time, alice, bob)
    for _ in range(3):  # three round trips: three DH ratchet steps each way
        body, _ = send(bob_session, bob, alice)
        receive(alice_session, body, bob, alice)
        body, _ = send(alice_session, alice, bob)
        receive(bob_session, body, alice, bob)
    assert receive(bob_session, late, alice, bob).payload.text == "late"
    assert decrypt_fails(bob_session, late, alice.address, "bob") == "replayed-message"
    assert decrypt_fails(bob_session, on_time, alice.address, "bob") == "replayed-message"


def test_too_many_skipped_in_one_chain() -> None:
    limits = RatchetLimits(max_skip=5, max_skipped_keys=10, skipped_key_max_steps=3)
    alice, bob, alice_session, bob_session = open_pair(limits=limits)
    bodies = [send(alice_session, alice, bob, f"n{index}")[0] for index in range(8)]
    assert decrypt_fails(bob_session, bodies[6], alice.address, "bob") == "too-many-skipped"
    assert receive(bob_session, bodies[5], alice, bob).payload.text == "n5"  # skips exactly 5
    assert len(bob_session._core.ratchet.skipped) == 5
    assert receive(bob_session, bodies[6], alice, bob).payload.text == "n6"


def test_too_many_skipped_in_the_previous_chain() -> None:
    limits = RatchetLimits(max_skip=3, max_skipped_keys=6, skipped_key_max_steps=3)
    alice, bob, alice_session, bob_session = open_pair(limits=limits)
    for _ in range(5):
        send(alice_session, alice, bob)  # lost
    reply, _ = send(bob_session, bob, alice)
    receive(alice_session, reply, bob, alice)
    next_chain, _ = send(alice_session, alice, bob)  # PN = 5 > max_skip
    assert decrypt_fails(bob_session, next_chain, alice.address, "bob") == "too-many-skipped"


def test_stored_skipped_keys_are_bounded_oldest_first() -> None:
    limits = RatchetLimits(max_skip=4, max_skipped_keys=6, skipped_key_max_steps=10)
    alice, bob, alice_session, bob_session = open_pair(limits=limits)
    lost = []
    for _ in range(3):
        bodies = [send(alice_session, alice, bob)[0] for _ in range(4)]
        lost.append(bodies[:3])
        receive(bob_session, bodies[3], alice, bob)
        assert len(bob_session._core.ratchet.skipped) <= 6
    assert len(bob_session._core.ratchet.skipped) == 6
    assert decrypt_fails(bob_session, lost[0][0], alice.address, "bob") == "replayed-message"  # evicted
    assert receive(bob_session, lost[2][0], alice, bob).payload is not None


def test_skipped_keys_expire_after_ratchet_steps() -> None:
    limits = RatchetLimits(max_skip=10, max_skipped_keys=20, skipped_key_max_steps=2)
    alice, bob, alice_session, bob_session = open_pair(limits=limits)
    lost, _ = send(alice_session, alice, bob)
    kept, _ = send(alice_session, alice, bob)
    receive(bob_session, kept, alice, bob)
    assert len(bob_session._core.ratchet.skipped) == 1
    for step in range(3):
        body, _ = send(bob_session, bob, alice)
        receive(alice_session, body, bob, alice)
        body, _ = send(alice_session, alice, bob)
        receive(bob_session, body, alice, bob)
        assert len(bob_session._core.ratchet.skipped) == (1 if step < 2 else 0)
    assert decrypt_fails(bob_session, lost, alice.address, "bob") in {"replayed-message", "decryption-failed"}


# --- tampering -------------------------------------------------------------------------


def test_every_bit_flip_of_a_ratchet_message_is_rejected() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    body, _ = send(alice_session, alice, bob, "x" * 40)
    for index in range(len(body)):
        for bit in range(8):
            tampered = bytearray(body)
            tampered[index] ^= 1 << bit
            decrypt_fails(bob_session, bytes(tampered), alice.address, "bob")
    assert receive(bob_session, body, alice, bob).payload.text == "x" * 40


def test_every_bit_flip_of_a_prekey_message_is_rejected() -> None:
    alice, bob = device("alice", 1), device("bob", 2)
    alice_session = initiate_session(alice.identity, alice.address, bob.address, bob.bundle())
    body, _ = send(alice_session, alice, bob)
    opk_count = len(bob.one_time_prekeys)
    for index in range(len(body)):
        for bit in range(8):
            tampered = bytearray(body)
            tampered[index] ^= 1 << bit
            with pytest.raises(errors.CryptoError):
                bob.accept(bytes(tampered), alice)
    assert len(bob.one_time_prekeys) == opk_count
    assert bob.accept(body, alice).message.payload.sender == alice.address


def test_truncated_and_extended_bodies_are_rejected() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    body, _ = send(alice_session, alice, bob)
    for size in range(len(body)):
        decrypt_fails(bob_session, body[:size], alice.address, "bob")
    decrypt_fails(bob_session, body + b"\x00", alice.address, "bob")


# --- the signed payload inside ---------------------------------------------------------


def test_forged_signature_inside_a_valid_session_is_rejected() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    signed = sign_payload(alice.identity, payload(alice, bob))
    mallory = IdentityKeyPair.generate()
    forged = sign_payload(mallory, payload(alice, bob))
    bad = encode_plaintext(type(signed)(signed.payload, signed.encoded, forged.signature, signed.signer))
    assert (
        decrypt_fails(bob_session, encrypt_raw(alice_session, bad), alice.address, "bob") == "bad-signature"
    )


@pytest.mark.parametrize(
    ("sender", "recipient", "conversation", "code"),
    [
        (("carol", 1), ("bob", 2), "bob", "sender-mismatch"),
        (("alice", 9), ("bob", 2), "bob", "sender-mismatch"),
        (("alice", 1), ("bob", 3), "bob", "wrong-recipient"),
        (("alice", 1), ("dave", 2), "bob", "wrong-recipient"),
        (("alice", 1), ("bob", 2), "carol", "conversation-mismatch"),
    ],
)
def test_misaddressed_payloads_are_rejected(
    sender: tuple[str, int], recipient: tuple[str, int], conversation: str, code: str
) -> None:
    alice, _, alice_session, bob_session = open_pair()
    forged = payload(device(*sender), device(*recipient), conversation=conversation)
    plaintext = encode_plaintext(sign_payload(alice.identity, forged))
    assert decrypt_fails(bob_session, encrypt_raw(alice_session, plaintext), alice.address, "bob") == code


def test_delivery_by_another_device_or_in_another_conversation_is_rejected() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    body, _ = send(alice_session, alice, bob)
    assert decrypt_fails(bob_session, body, DeviceAddress("alice", 7), "bob") == "sender-mismatch"
    assert decrypt_fails(bob_session, body, alice.address, "carol") == "conversation-mismatch"
    assert receive(bob_session, body, alice, bob).payload.sender == alice.address


@pytest.mark.parametrize(
    ("plaintext", "code"),
    [
        (b"", "malformed-payload"),  # not a multiple of 256
        (b"\x00" * 255, "malformed-payload"),
        (b"\x00" * 256, "bad-signature"),  # framing fine: empty payload, zero signature
        (b"\x00\x00\x00\x10" + b"\x00" * 252, "bad-signature"),
        (b"\x00\x00\x01\x00" + b"\x00" * 252, "malformed-payload"),  # length runs past the end
        (b"\xff" * 256, "malformed-payload"),
        (b"\x00" * 512, "malformed-payload"),  # more padding than needed
    ],
)
def test_malformed_plaintexts_are_rejected(plaintext: bytes, code: str) -> None:
    alice, _, alice_session, bob_session = open_pair()
    assert decrypt_fails(bob_session, encrypt_raw(alice_session, plaintext), alice.address, "bob") == code


def test_non_zero_padding_is_rejected() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    plaintext = bytearray(encode_plaintext(sign_payload(alice.identity, payload(alice, bob))))
    plaintext[-1] = 1
    code = decrypt_fails(bob_session, encrypt_raw(alice_session, bytes(plaintext)), alice.address, "bob")
    assert code == "malformed-payload"


def test_encrypt_refuses_misuse() -> None:
    alice, bob, alice_session, _ = open_pair()
    carol = device("carol", 3)
    with pytest.raises(ValueError, match="peer"):
        alice_session.encrypt(payload(alice, carol), alice.identity)
    with pytest.raises(ValueError, match="identity"):
        alice_session.encrypt(payload(alice, bob), carol.identity)
    with pytest.raises(ValueError, match="itself"):
        initiate_session(alice.identity, alice.address, alice.address, alice.bundle())


def test_message_too_large_leaves_the_session_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, alice_session, bob_session = open_pair()
    before = alice_session.to_bytes()
    monkeypatch.setattr(session_module, "MAX_BODY_BYTES", 500)
    with pytest.raises(errors.MessageTooLarge):
        alice_session.encrypt(payload(alice, bob, "x" * 300), alice.identity)
    assert alice_session.to_bytes() == before
    body, _ = send(alice_session, alice, bob, "short")
    assert len(body) <= 500
    assert receive(bob_session, body, alice, bob).payload.text == "short"


# --- forward secrecy -------------------------------------------------------------------


def test_state_holds_no_key_for_a_decrypted_message() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    bodies = [send(alice_session, alice, bob, f"n{index}")[0] for index in range(4)]
    receive(bob_session, bodies[2], alice, bob)  # n0 and n1 skipped, their keys stored
    receive(bob_session, bodies[0], alice, bob)
    parsed = parse_body(bodies[0])
    candidates = state_secrets(bob_session) + state_secrets(alice_session)
    assert len(candidates) > 100
    ad = bob_session.associated_data + parsed.prefix
    for candidate in candidates:
        with pytest.raises(errors.DecryptionFailed):
            primitives.aead_decrypt(candidate, parsed.ciphertext, ad)
    still_skipped = parse_body(bodies[1])
    usable = [
        key
        for key in state_secrets(bob_session)
        if _opens(key, still_skipped.ciphertext, bob_session.associated_data + still_skipped.prefix)
    ]
    assert len(usable) == 1, "the skipped key of n1 is in the state until n1 arrives"


def _opens(key: bytes, ciphertext: bytes, ad: bytes) -> bool:
    try:
        primitives.aead_decrypt(key, ciphertext, ad)
    except errors.DecryptionFailed:
        return False
    return True


# --- persistence -------------------------------------------------------------------------


def test_state_round_trips_through_bytes_and_dict() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    bodies = [send(alice_session, alice, bob, f"n{index}")[0] for index in range(3)]
    receive(bob_session, bodies[2], alice, bob)
    restored = Session.from_bytes(bob_session.to_bytes())
    assert restored.to_bytes() == bob_session.to_bytes()
    from_dict = Session.from_dict(bob_session.to_dict())
    assert from_dict.to_bytes() == bob_session.to_bytes()
    assert receive(restored, bodies[0], alice, bob).payload.text == "n0"
    assert receive(from_dict, bodies[1], alice, bob).payload.text == "n1"
    reply, _ = send(restored, bob, alice, "after restart")
    assert (
        receive(Session.from_bytes(alice_session.to_bytes()), reply, bob, alice).payload.text
        == "after restart"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"format": 2},
        {"role": "observer"},
        {"root_key": "AAAA"},
        {"sending_length": -1},
        {"receiving_key": None},
        {"confirmed": False},
        {"peer_user": "Not A User"},
        {"peer_device": 0},
        {"peer_exchange_key": "7" * 43 + "="},
        {"unexpected": 1},
    ],
)
def test_corrupt_states_are_refused(change: dict[str, object]) -> None:
    _, _, _, bob_session = open_pair()
    data = bob_session.to_dict()
    data.update(change)
    with pytest.raises(errors.SessionStateCorrupt) as caught:
        Session.from_dict(data)
    assert caught.value.code == "session-state-corrupt"


def test_inconsistent_skipped_keys_are_refused() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    bodies = [send(alice_session, alice, bob)[0] for _ in range(3)]
    receive(bob_session, bodies[2], alice, bob)
    data = bob_session.to_dict()
    data["skipped"] = [data["skipped"][0], data["skipped"][0]]
    with pytest.raises(errors.SessionStateCorrupt):
        Session.from_dict(data)
    data = bob_session.to_dict()
    data["skipped"][0][3] = data["receive_steps"] + 1
    with pytest.raises(errors.SessionStateCorrupt):
        Session.from_dict(data)


def test_truncated_or_garbage_state_bytes_are_refused() -> None:
    _, _, _, bob_session = open_pair()
    data = bob_session.to_bytes()
    for size in range(0, len(data), 7):
        with pytest.raises(errors.SessionStateCorrupt):
            Session.from_bytes(data[:size])
    with pytest.raises(errors.SessionStateCorrupt):
        Session.from_bytes(b"\x00" * 64)


def test_tighter_limits_on_restore_trim_skipped_keys() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    bodies = [send(alice_session, alice, bob)[0] for _ in range(10)]
    receive(bob_session, bodies[9], alice, bob)
    assert len(bob_session._core.ratchet.skipped) == 9
    tight = RatchetLimits(max_skip=4, max_skipped_keys=4, skipped_key_max_steps=2)
    restored = Session.from_bytes(bob_session.to_bytes(), limits=tight)
    assert len(restored._core.ratchet.skipped) == 4
    assert receive(restored, bodies[8], alice, bob) is not None
    code = decrypt_fails(restored, bodies[0], alice.address, "bob")
    assert code == "replayed-message"


# --- no secrets in reprs ---------------------------------------------------------------


def test_reprs_show_no_secrets() -> None:
    alice, bob, _, bob_session = open_pair()
    ratchet = bob_session._core.ratchet
    secrets = [
        ratchet.root_key,
        ratchet.sending_private,
        ratchet.sending_chain_key,
        ratchet.receiving_chain_key,
    ]
    secrets += [alice.identity.secret_bytes()[0], alice.identity.secret_bytes()[1]]
    record = session_state._record(bob_session._core)
    texts = [repr(bob_session), str(bob_session), repr(bob_session._core), repr(ratchet), repr(record)]
    texts += [repr(alice.identity), repr(bob.bundle()), repr(errors.DecryptionFailed())]
    for text in texts:
        for secret in secrets:
            assert secret is not None
            assert secret.hex() not in text and secret.hex()[:16] not in text
            assert repr(secret) not in text
    assert "alice" in repr(bob_session)
    message = payload(alice, bob, "Kaliémie confidentielle")
    assert "confidentielle" not in repr(message)
    assert "confidentielle" not in repr(sign_payload(alice.identity, message))


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        RatchetLimits(max_skip=10, max_skipped_keys=5)
    with pytest.raises(ValueError):
        RatchetLimits(max_skip=-1)
    with pytest.raises(ValueError):
        RatchetLimits(max_skipped_keys=10**6)
