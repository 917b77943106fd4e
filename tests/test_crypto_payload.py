"""Payloads, primitives, X3DH inputs, safety numbers (docs/protocol-crypto.md §3.4, §3.5, §3.8, §3.10)."""

from __future__ import annotations

import pytest

from lien.crypto import errors, primitives, x3dh
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair
from lien.crypto.payload import (
    MAX_TEXT_BYTES,
    Conversation,
    DeviceAddress,
    Payload,
    check_delivery,
    decode_plaintext,
    encode_plaintext,
    sign_payload,
    verify_payload,
)
from lien.crypto.safety import safety_number, user_fingerprint
from lien.protocol import api

from .crypto_helpers import open_pair, receive, send

ALICE, BOB = DeviceAddress("alice", 1), DeviceAddress("bob", 2)


def sample(**changes: object) -> Payload:
    fields: dict[str, object] = {
        "sender": ALICE,
        "recipient": BOB,
        "conversation": Conversation.user("bob"),
        "client_message_id": "msg-1",
        "sent_at_ms": 1_700_000_000_000,
        "text": "Hémoglobine 7,1 g/dL",
    }
    fields.update(changes)
    return Payload(**fields)  # type: ignore[arg-type]


# --- payload encoding and signatures ----------------------------------------------------------


def test_payload_round_trips_and_is_canonical() -> None:
    payload = sample(text="ligne 1\nligne 2 — ✓", content_type="text/markdown")
    encoded = payload.encode()
    assert Payload.decode(encoded) == payload
    assert encoded[0] == 2
    assert encoded[1:7] == b"\x05alice"


@pytest.mark.parametrize(
    "changes",
    [
        {"client_message_id": ""},
        {"client_message_id": "has space"},
        {"client_message_id": "x" * 65},
        {"sent_at_ms": -1},
        {"sent_at_ms": 2**63},
        {"content_type": "Text/Plain"},
        {"content_type": "text"},
        {"text": "x" * (MAX_TEXT_BYTES + 1)},
        {"text": "\ud800"},
    ],
)
def test_invalid_payload_fields_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        sample(**changes)


@pytest.mark.parametrize(
    "build",
    [
        lambda: DeviceAddress("ab", 1),
        lambda: DeviceAddress("Alice", 1),
        lambda: DeviceAddress("alice", 0),
        lambda: DeviceAddress("alice", 2**62 + 1),
        lambda: Conversation.user("no spaces allowed"),
        lambda: Conversation.group(""),
    ],
)
def test_invalid_addresses_are_refused(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_offline_verification_needs_only_bytes_signature_and_key() -> None:
    alice, bob, alice_session, bob_session = open_pair()
    body, sent = send(alice_session, alice, bob, "Résultat critique")
    received = receive(bob_session, body, alice, bob)
    evidence = (bytes(received.encoded), bytes(received.signature), bytes(received.signer))
    assert evidence[2] == alice.identity.public.signing_key
    assert verify_payload(*evidence) == sent

    altered = bytearray(evidence[0])
    altered[-1] ^= 1
    with pytest.raises(errors.BadSignature):
        verify_payload(bytes(altered), evidence[1], evidence[2])
    with pytest.raises(errors.BadSignature):
        verify_payload(evidence[0], evidence[1], bob.identity.public.signing_key)
    with pytest.raises(errors.BadSignature):
        verify_payload(evidence[0], evidence[1][:-1], evidence[2])
    with pytest.raises(errors.BadSignature):
        verify_payload(evidence[0], evidence[1], b"\x00" * 31)


def test_signature_is_domain_separated_from_signed_prekeys() -> None:
    identity = IdentityKeyPair.generate()
    signed = sign_payload(identity, sample())
    assert not identity.public.verify(signed.encoded, signed.signature)
    assert identity.public.verify(b"lien-payload-v2\x00" + signed.encoded, signed.signature)


def test_plaintext_padding() -> None:
    signed = sign_payload(IdentityKeyPair.generate(), sample())
    plaintext = encode_plaintext(signed)
    assert len(plaintext) % 256 == 0
    assert decode_plaintext(plaintext) == (signed.encoded, signed.signature)
    big = sign_payload(IdentityKeyPair.generate(), sample(text="x" * 1000))
    assert len(encode_plaintext(big)) == 1280


def test_check_delivery() -> None:
    payload = sample()
    check_delivery(payload, delivered_by=ALICE, own=BOB, conversation=Conversation.user("bob"))
    with pytest.raises(errors.SenderMismatch):
        check_delivery(payload, delivered_by=BOB, own=BOB, conversation=Conversation.user("bob"))
    with pytest.raises(errors.WrongRecipient):
        check_delivery(payload, delivered_by=ALICE, own=ALICE, conversation=Conversation.user("bob"))
    with pytest.raises(errors.ConversationMismatch):
        check_delivery(payload, delivered_by=ALICE, own=BOB, conversation=Conversation.group("bob"))


# --- primitives -----------------------------------------------------------------------------


def test_x25519_refuses_small_order_and_non_canonical_keys() -> None:
    private = bytes(range(32))
    for public in (bytes(32), (1).to_bytes(32, "little"), b"\xff" * 32, (2**255 - 19).to_bytes(32, "little")):
        with pytest.raises(errors.InvalidKey):
            primitives.x25519(private, public)
    with pytest.raises(ValueError):
        primitives.x25519(private[:31], primitives.x25519_public(private))


def test_hkdf_bounds_and_aead_failure() -> None:
    with pytest.raises(ValueError):
        primitives.hkdf_sha256(b"", salt=b"", info=b"", length=0)
    with pytest.raises(ValueError):
        primitives.hkdf_sha256(b"", salt=b"", info=b"", length=255 * 32 + 1)
    assert len(primitives.hkdf_sha256(b"", salt=b"", info=b"", length=255 * 32)) == 255 * 32
    key = bytes(32)
    sealed = primitives.aead_encrypt(key, b"abc", b"ad")
    with pytest.raises(errors.DecryptionFailed):
        primitives.aead_decrypt(key, sealed, b"other ad")
    with pytest.raises(errors.DecryptionFailed):
        primitives.aead_decrypt(key, sealed[:15], b"ad")


def test_kdf_ck_outputs_differ_and_chain() -> None:
    chain, message = primitives.kdf_ck(bytes(32))
    assert chain != message
    assert primitives.kdf_ck(chain)[1] != message


# --- x3dh inputs ------------------------------------------------------------------------------


def test_bundle_from_api_and_small_order_prekeys() -> None:
    bob = IdentityKeyPair.generate()
    spk = SignedPrekeyPair.generate(4, bob)
    opk = OneTimePrekeyPair.generate(8)
    body = api.KeyBundle(
        device=2,
        identity_signing_key=bob.public.signing_key,
        identity_exchange_key=bob.public.exchange_key,
        signed_prekey=spk.to_body(),
        prekey=opk.to_body(),
    )
    bundle = x3dh.PrekeyBundle.from_api(body)
    assert bundle.one_time_prekey == x3dh.OneTimePrekeyPublic(8, opk.public_key)
    assert "signature" not in repr(bundle)
    with pytest.raises(errors.InvalidKey):
        x3dh.OneTimePrekeyPublic(8, b"\xff" * 32)
    zero_prekey = x3dh.PrekeyBundle(
        bob.public, 4, spk.public_key, spk.signature, x3dh.OneTimePrekeyPublic(8, bytes(32))
    )
    with pytest.raises(errors.InvalidKey):
        x3dh.initiate(IdentityKeyPair.generate(), zero_prekey, bytes(range(32)))
    low_order = (1).to_bytes(32, "little")
    with pytest.raises(errors.InvalidKey):
        x3dh.initiate(
            IdentityKeyPair.generate(),
            x3dh.PrekeyBundle(
                PublicIdentity(bob.public.signing_key, low_order), 4, spk.public_key, spk.signature, None
            ),
            bytes(range(32)),
        )


def test_x3dh_both_sides_agree_and_depend_on_every_key() -> None:
    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    spk, opk = SignedPrekeyPair.generate(1, bob), OneTimePrekeyPair.generate(2)
    bundle = x3dh.PrekeyBundle(
        bob.public, 1, spk.public_key, spk.signature, x3dh.OneTimePrekeyPublic(2, opk.public_key)
    )
    ephemeral = bytes(range(32))
    sent = x3dh.initiate(alice, bundle, ephemeral)
    received = x3dh.respond(bob, spk, opk, alice.public, primitives.x25519_public(ephemeral))
    assert sent.shared_secret == received.shared_secret
    assert sent.associated_data == received.associated_data and len(sent.associated_data) == 128
    without_opk = x3dh.respond(bob, spk, None, alice.public, primitives.x25519_public(ephemeral))
    assert without_opk.shared_secret != sent.shared_secret
    other = x3dh.respond(
        bob, spk, OneTimePrekeyPair.generate(2), alice.public, primitives.x25519_public(ephemeral)
    )
    assert other.shared_secret != sent.shared_secret
    assert "shared" not in repr(sent) and sent.shared_secret.hex() not in repr(sent)


# --- safety numbers ---------------------------------------------------------------------------


def test_safety_numbers_are_symmetric_and_change_with_devices() -> None:
    alice = [IdentityKeyPair.generate().public for _ in range(2)]
    bob = [IdentityKeyPair.generate().public]
    number = safety_number("alice", alice, "bob", bob)
    assert number == safety_number("bob", bob, "alice", alice)
    assert len(number.digits) == 60 and number.digits.isdigit()
    assert len(number.groups()) == 12 and str(number).count(" ") == 11
    assert number == safety_number("alice", list(reversed(alice)), "bob", bob + bob)
    assert number != safety_number("alice", [*alice, IdentityKeyPair.generate().public], "bob", bob)
    assert number != safety_number("alice", alice[:1], "bob", bob)
    assert number != safety_number("alicia", alice, "bob", bob)
    swapped_exchange = PublicIdentity(bob[0].signing_key, alice[0].exchange_key)
    assert number != safety_number("alice", alice, "bob", [swapped_exchange])
    assert user_fingerprint("alice", alice) in number.digits


def test_safety_number_input_checks() -> None:
    keys = [IdentityKeyPair.generate().public]
    with pytest.raises(ValueError):
        safety_number("alice", keys, "alice", keys)
    with pytest.raises(ValueError):
        user_fingerprint("alice", [])
    with pytest.raises(ValueError):
        user_fingerprint("alice", [IdentityKeyPair.generate().public for _ in range(11)])
