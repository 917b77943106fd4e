"""lien.crypto.sealed, message format 1 (docs/protocol.md §3.13): round trip and every failure."""

from __future__ import annotations

import base64

import msgspec
import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lien.crypto import errors
from lien.crypto.keys import IdentityKeyPair, PublicIdentity
from lien.crypto.sealed import SignedFields, open_sealed, seal, signed_message
from lien.protocol import limits

ALICE = IdentityKeyPair.generate()
BOB = IdentityKeyPair.generate()
MALLORY = IdentityKeyPair.generate()

# body = 0x01 || ephemeral public key (32) || nonce (24) || crypto_box(payload) (16-byte MAC first)
EPHEMERAL = slice(1, 33)
NONCE = slice(33, 57)
OVERHEAD = 1 + 32 + 24 + 16


def fields(text: str = "Kaliémie à 6,8 mmol/L : rappelez-moi.", **overrides: object) -> SignedFields:
    values: dict[str, object] = {
        "sender": "labo.bio",
        "sender_device": 3,
        "recipient": "dr.martin",
        "recipient_device": 7,
        "client_id": "c-1",
        "sent_at": 1_700_000_000_000,
        "text": text,
    }
    values.update(overrides)
    return SignedFields(**values)  # type: ignore[arg-type]


def open_as_bob(body: bytes, sender_key: PublicIdentity | None = None, **overrides: object):  # type: ignore[no-untyped-def]
    context: dict[str, object] = {
        "sender_key": sender_key or ALICE.public,
        "sender": "labo.bio",
        "sender_device": 3,
        "recipient": "dr.martin",
        "recipient_device": 7,
    }
    context.update(overrides)
    return open_sealed(BOB, body, **context)  # type: ignore[arg-type]


def box_by_hand(
    payload: bytes, recipient: PublicIdentity = BOB.public, ephemeral: bytes | None = None
) -> bytes:
    """Seal an arbitrary payload exactly as §3.13 describes, without lien.crypto.sealed."""
    public, secret = nacl.bindings.crypto_box_keypair()
    nonce = bytes(range(24))
    boxed = nacl.bindings.crypto_box(payload, nonce, recipient.exchange_key, secret)
    return b"\x01" + (ephemeral or public) + nonce + boxed


def payload_json(signed: SignedFields, signature: bytes, **extra: object) -> bytes:
    return msgspec.json.encode(
        {"fields": msgspec.to_builtins(signed), "signature": base64.b64encode(signature).decode(), **extra}
    )


# --- round trip -------------------------------------------------------------------------


def test_seal_and_open() -> None:
    sent = fields()
    body = seal(ALICE, BOB.public, sent)
    assert body[0] == 1
    opened = open_as_bob(body)
    assert opened.fields == sent
    assert ALICE.public.verify(signed_message(sent), opened.signature)  # kept for non-repudiation


def test_each_seal_is_fresh() -> None:
    first, second = seal(ALICE, BOB.public, fields()), seal(ALICE, BOB.public, fields())
    assert first[EPHEMERAL] != second[EPHEMERAL] and first[NONCE] != second[NONCE]
    assert open_as_bob(first).fields == open_as_bob(second).fields


def test_signed_message_is_domain_then_canonical_json() -> None:
    message = signed_message(fields(text="x"))
    assert message.startswith(b"lien-message-v1\x00")
    assert message[len(b"lien-message-v1\x00") :] == (
        b'{"sender":"labo.bio","sender_device":3,"recipient":"dr.martin","recipient_device":7,'
        b'"client_id":"c-1","sent_at":1700000000000,"text":"x"}'
    )


def test_a_payload_sealed_by_hand_opens() -> None:
    sent = fields()
    body = box_by_hand(payload_json(sent, ALICE.sign(signed_message(sent))))
    assert open_as_bob(body).fields == sent


# --- sizes ---------------------------------------------------------------------------------


def _body_size(text_length: int) -> int:
    return len(seal(ALICE, BOB.public, fields(text="a" * text_length)))


def test_largest_message_fits_one_copy_exactly() -> None:
    overhead = _body_size(0)
    largest = limits.MAX_COPY_BYTES - overhead
    body = seal(ALICE, BOB.public, fields(text="a" * largest))
    assert len(body) == limits.MAX_COPY_BYTES
    assert open_as_bob(body).fields.text == "a" * largest
    with pytest.raises(errors.MessageTooLarge) as caught:
        seal(ALICE, BOB.public, fields(text="a" * (largest + 1)))
    assert caught.value.code == "message-too-large"


def test_multibyte_text_counts_in_bytes() -> None:
    overhead = _body_size(0)
    with pytest.raises(errors.MessageTooLarge):
        seal(ALICE, BOB.public, fields(text="é" * ((limits.MAX_COPY_BYTES - overhead) // 2 + 1)))


# --- failures ------------------------------------------------------------------------------


def test_empty_body() -> None:
    with pytest.raises(errors.DecryptionFailed) as caught:
        open_as_bob(b"")
    assert type(caught.value) is errors.DecryptionFailed


@pytest.mark.parametrize("version", [0, 2, 0x81, 0xFF])
def test_unknown_format(version: int) -> None:
    body = seal(ALICE, BOB.public, fields())
    with pytest.raises(errors.UnsupportedFormat) as caught:
        open_as_bob(bytes([version]) + body[1:])
    assert caught.value.code == "unsupported-format"


@pytest.mark.parametrize("keep", [1, 2, 33, 57, OVERHEAD - 1, OVERHEAD, OVERHEAD + 1, -1])
def test_truncated(keep: int) -> None:
    body = seal(ALICE, BOB.public, fields())
    with pytest.raises(errors.DecryptionFailed) as caught:
        open_as_bob(body[:keep])
    assert type(caught.value) is errors.DecryptionFailed


def test_extended() -> None:
    body = seal(ALICE, BOB.public, fields())
    with pytest.raises(errors.DecryptionFailed):
        open_as_bob(body + b"\x00")


def test_oversized_body_is_refused_before_decrypting() -> None:
    body = seal(ALICE, BOB.public, fields())
    with pytest.raises(errors.DecryptionFailed):
        open_as_bob(body + b"\x00" * (limits.MAX_COPY_BYTES - len(body) + 1))


_SAMPLE = seal(ALICE, BOB.public, fields(text="short"))


@settings(derandomize=True, database=None, max_examples=300)
@given(st.integers(0, len(_SAMPLE) * 8 - 1))
def test_any_flipped_bit_is_detected(bit: int) -> None:
    damaged = bytearray(_SAMPLE)
    damaged[bit // 8] ^= 1 << (bit % 8)
    expected = errors.UnsupportedFormat if bit < 8 else errors.DecryptionFailed
    with pytest.raises(expected) as caught:
        open_as_bob(bytes(damaged))
    assert type(caught.value) is expected


def test_every_byte_position_is_covered() -> None:
    # The same property exhaustively over byte positions (one flip each), cheap enough.
    for position in range(len(_SAMPLE)):
        damaged = bytearray(_SAMPLE)
        damaged[position] ^= 0x80
        with pytest.raises((errors.UnsupportedFormat, errors.DecryptionFailed)) as caught:
            open_as_bob(bytes(damaged))
        assert type(caught.value) in (errors.UnsupportedFormat, errors.DecryptionFailed)


def test_non_canonical_ephemeral_key() -> None:
    # X25519 ignores the top bit: without the canonical check this body would open.
    body = bytearray(seal(ALICE, BOB.public, fields()))
    body[EPHEMERAL.stop - 1] |= 0x80
    with pytest.raises(errors.DecryptionFailed):
        open_as_bob(bytes(body))
    # 2**255 - 19 itself: the first non-canonical value with the top bit clear.
    p = (2**255 - 19).to_bytes(32, "little")
    with pytest.raises(errors.DecryptionFailed):
        open_as_bob(box_by_hand(b"{}", ephemeral=p))


def test_small_order_ephemeral_key() -> None:
    with pytest.raises(errors.DecryptionFailed):
        open_as_bob(box_by_hand(b"{}", ephemeral=bytes(32)))


def test_wrong_recipient_key() -> None:
    body = seal(ALICE, MALLORY.public, fields())
    with pytest.raises(errors.DecryptionFailed):
        open_as_bob(body)


def test_signed_by_someone_else() -> None:
    # Mallory encrypts to Bob (anyone can) and claims to be Alice's device.
    body = seal(MALLORY, BOB.public, fields())
    with pytest.raises(errors.BadSignature) as caught:
        open_as_bob(body)
    assert caught.value.code == "bad-signature"


def test_signature_does_not_cover_altered_fields() -> None:
    sent = fields()
    signature = ALICE.sign(signed_message(sent))
    altered = fields(text="Kaliémie normale.")
    with pytest.raises(errors.BadSignature):
        open_as_bob(box_by_hand(payload_json(altered, signature)))
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(errors.BadSignature):
        open_as_bob(box_by_hand(payload_json(sent, flipped)))
    with pytest.raises(errors.BadSignature):
        open_as_bob(box_by_hand(payload_json(sent, signature[:-1])))


@pytest.mark.parametrize(("name", "value"), [("sender", "other.lab"), ("sender_device", 4)])
def test_sender_mismatch(name: str, value: object) -> None:
    body = seal(ALICE, BOB.public, fields())
    with pytest.raises(errors.SenderMismatch) as caught:
        open_as_bob(body, **{name: value})
    assert caught.value.code == "sender-mismatch"


@pytest.mark.parametrize(("name", "value"), [("recipient", "dr.durand"), ("recipient_device", 8)])
def test_wrong_recipient(name: str, value: object) -> None:
    # Signed for another device of the same key holder, or forwarded by the server to the wrong user.
    body = seal(ALICE, BOB.public, fields())
    with pytest.raises(errors.WrongRecipient) as caught:
        open_as_bob(body, **{name: value})
    assert caught.value.code == "wrong-recipient"


@pytest.mark.parametrize(
    "payload",
    [
        b" ",
        b"not json",
        b"[]",
        b'{"fields": {}, "signature": ""}',
        b'{"signature": "AAAA"}',
    ],
)
def test_malformed_payload(payload: bytes) -> None:
    with pytest.raises(errors.MalformedPayload) as caught:
        open_as_bob(box_by_hand(payload))
    assert isinstance(caught.value, errors.DecryptionFailed)  # "could not read" handlers catch it


def test_unknown_payload_fields_are_malformed() -> None:
    sent = fields()
    signature = ALICE.sign(signed_message(sent))
    with pytest.raises(errors.MalformedPayload):
        open_as_bob(box_by_hand(payload_json(sent, signature, extra=1)))
    with_extra_field = msgspec.to_builtins(sent) | {"cc": "someone"}
    with pytest.raises(errors.MalformedPayload):
        open_as_bob(
            box_by_hand(
                msgspec.json.encode(
                    {"fields": with_extra_field, "signature": base64.b64encode(signature).decode()}
                )
            )
        )


def test_error_messages_carry_no_library_details() -> None:
    body = bytearray(seal(ALICE, BOB.public, fields()))
    body[-1] ^= 1
    with pytest.raises(errors.DecryptionFailed) as caught:
        open_as_bob(bytes(body))
    assert caught.value.message == errors.DecryptionFailed.public_message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
