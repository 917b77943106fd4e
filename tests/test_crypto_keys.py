"""lien.crypto.keys: canonical X25519 keys, signed prekeys, no secrets in reprs (protocol.md §3.1-3.3)."""

from __future__ import annotations

import nacl.public
import nacl.signing
import pytest

from lien.crypto import keys
from lien.crypto.errors import InvalidKey
from lien.protocol import limits
from tests.keys import sign_prekey

P = 2**255 - 19


def _le(value: int) -> bytes:
    return value.to_bytes(32, "little")


# --- canonical X25519 encodings (§3.1) ---------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 9, P - 1, 2**254])
def test_canonical_keys(value: int) -> None:
    assert keys.is_canonical_exchange_key(_le(value))


@pytest.mark.parametrize("value", [P, P + 1, 2**255 - 1, 2**255, 2**256 - 1])
def test_non_canonical_keys(value: int) -> None:
    assert not keys.is_canonical_exchange_key(_le(value))


@pytest.mark.parametrize("key", [b"", b"\x00" * 31, b"\x00" * 33, bytearray(32), "0" * 32, None])
def test_exchange_key_of_wrong_size_or_type(key: object) -> None:
    assert not keys.is_canonical_exchange_key(key)  # type: ignore[arg-type]


def test_generated_keys_are_canonical() -> None:
    for _ in range(20):
        assert keys.is_canonical_exchange_key(bytes(nacl.public.PrivateKey.generate().public_key))


def test_public_identity_validates() -> None:
    identity = keys.IdentityKeyPair.generate().public
    keys.PublicIdentity(identity.signing_key, identity.exchange_key)
    with pytest.raises(InvalidKey):
        keys.PublicIdentity(identity.signing_key[:31], identity.exchange_key)
    with pytest.raises(InvalidKey):
        keys.PublicIdentity(identity.signing_key, _le(P))
    with pytest.raises(InvalidKey):
        keys.PublicIdentity(identity.signing_key, identity.exchange_key + b"\x00")


def test_identity_sign_and_verify() -> None:
    pair = keys.IdentityKeyPair.generate()
    other = keys.IdentityKeyPair.generate()
    signature = pair.sign(b"hello")
    assert len(signature) == keys.SIGNATURE_SIZE
    assert pair.public.verify(b"hello", signature)
    assert not pair.public.verify(b"hellO", signature)
    assert not other.public.verify(b"hello", signature)
    assert not pair.public.verify(b"hello", signature[:-1])
    assert not pair.public.verify(b"hello", bytes(64))
    # Signed with the independent nacl key: the same Ed25519 signature (crypto_sign_detached).
    seed, _ = pair.secret_bytes()
    assert nacl.signing.SigningKey(seed).sign(b"hello").signature == signature


# --- signed prekeys (§3.2) ------------------------------------------------------------


def test_signed_prekey_message_layout() -> None:
    prekey = bytes(range(32))
    message = keys.signed_prekey_message(0x01020304, prekey)
    assert message == b"lien-signed-prekey-v1\x00" + b"\x01\x02\x03\x04" + prekey
    assert len(message) == 58
    with pytest.raises(ValueError):
        keys.signed_prekey_message(-1, prekey)
    with pytest.raises(ValueError):
        keys.signed_prekey_message(keys.PREKEY_ID_MAX + 1, prekey)
    with pytest.raises(InvalidKey):
        keys.signed_prekey_message(1, prekey[:31])


def test_signed_prekey_generate_and_verify() -> None:
    identity = keys.IdentityKeyPair.generate()
    prekey = keys.SignedPrekeyPair.generate(keys.PREKEY_ID_MAX, identity)
    assert prekey.prekey_id == keys.PREKEY_ID_MAX
    assert keys.verify_signed_prekey(
        identity.public.signing_key, prekey.prekey_id, prekey.public_key, prekey.signature
    )
    # Matches the specification as written independently in tests/keys.py.
    seed, _ = identity.secret_bytes()
    spec_signature = sign_prekey(nacl.signing.SigningKey(seed), prekey.prekey_id, prekey.public_key)
    assert spec_signature == prekey.signature
    body = prekey.to_body()
    assert (body.id, body.key, body.signature) == (prekey.prekey_id, prekey.public_key, prekey.signature)


def _invalid_cases() -> list[tuple[str, tuple[object, object, object, object]]]:
    identity = keys.IdentityKeyPair.generate()
    other = keys.IdentityKeyPair.generate()
    prekey = keys.SignedPrekeyPair.generate(7, identity)
    signing, public, signature = identity.public.signing_key, prekey.public_key, prekey.signature
    flipped_signature = bytes([signature[0] ^ 1]) + signature[1:]
    flipped_key = bytes([public[0] ^ 1]) + public[1:]
    # The same X25519 key with the ignored top bit set: X25519 would accept it, the check must not.
    non_canonical = public[:31] + bytes([public[31] | 0x80])
    return [
        ("other identity", (other.public.signing_key, 7, public, signature)),
        ("other id", (signing, 8, public, signature)),
        ("other prekey", (signing, 7, flipped_key, signature)),
        ("flipped signature", (signing, 7, public, flipped_signature)),
        ("zero signature", (signing, 7, public, bytes(64))),
        ("short signature", (signing, 7, public, signature[:63])),
        ("long signature", (signing, 7, public, signature + b"\x00")),
        ("signature not bytes", (signing, 7, public, signature.hex())),
        ("negative id", (signing, -1, public, signature)),
        ("id too large", (signing, keys.PREKEY_ID_MAX + 1, public, signature)),
        ("bool id", (signing, True, public, signature)),
        ("float id", (signing, 7.0, public, signature)),
        ("non-canonical prekey", (signing, 7, non_canonical, signature)),
        ("short prekey", (signing, 7, public[:31], signature)),
        ("prekey not bytes", (signing, 7, bytearray(public), signature)),
        ("short signing key", (signing[:31], 7, public, signature)),
        ("signing key not bytes", (signing.hex(), 7, public, signature)),
        ("zero signing key", (bytes(32), 7, public, signature)),
        ("invalid point", (b"\xff" * 32, 7, public, signature)),
    ]


@pytest.mark.parametrize(("name", "arguments"), _invalid_cases(), ids=[name for name, _ in _invalid_cases()])
def test_verify_signed_prekey_returns_false(
    name: str, arguments: tuple[object, object, object, object]
) -> None:
    assert keys.verify_signed_prekey(*arguments) is False  # type: ignore[arg-type]


def test_signed_prekey_constructor_checks() -> None:
    identity = keys.IdentityKeyPair.generate()
    private = nacl.public.PrivateKey.generate()
    with pytest.raises(InvalidKey):
        keys.SignedPrekeyPair(1, private, b"\x00" * 63)
    with pytest.raises(ValueError):
        keys.SignedPrekeyPair(-1, private, b"\x00" * 64)
    with pytest.raises(TypeError):
        keys.SignedPrekeyPair(1, bytes(private), b"\x00" * 64)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        keys.SignedPrekeyPair.generate(keys.PREKEY_ID_MAX + 1, identity)


# --- secret bytes round trips ------------------------------------------------------------


def test_identity_secret_bytes_round_trip() -> None:
    pair = keys.IdentityKeyPair.generate()
    seed, exchange = pair.secret_bytes()
    assert len(seed) == keys.SIGNING_SEED_SIZE and len(exchange) == keys.EXCHANGE_PRIVATE_SIZE
    again = keys.IdentityKeyPair.from_secret_bytes(seed, exchange)
    assert again == pair and hash(again) == hash(pair)
    assert again.public == pair.public
    assert again.sign(b"m") == pair.sign(b"m")
    assert keys.IdentityKeyPair.generate() != pair
    with pytest.raises(InvalidKey):
        keys.IdentityKeyPair.from_secret_bytes(seed[:31], exchange)
    with pytest.raises(InvalidKey):
        keys.IdentityKeyPair.from_secret_bytes(seed, exchange + b"\x00")
    with pytest.raises(TypeError):
        keys.IdentityKeyPair(seed, exchange)  # type: ignore[arg-type]


def test_prekey_secret_bytes_round_trip() -> None:
    identity = keys.IdentityKeyPair.generate()
    signed = keys.SignedPrekeyPair.generate(3, identity)
    again = keys.SignedPrekeyPair.from_secret_bytes(3, signed.private_bytes(), signed.signature)
    assert (again.prekey_id, again.public_key, again.signature) == (3, signed.public_key, signed.signature)
    one_time = keys.OneTimePrekeyPair.generate(9)
    copy = keys.OneTimePrekeyPair.from_private_bytes(9, one_time.private_bytes())
    assert (copy.prekey_id, copy.public_key) == (9, one_time.public_key)
    assert copy.to_body().key == one_time.public_key
    with pytest.raises(InvalidKey):
        keys.OneTimePrekeyPair.from_private_bytes(9, one_time.private_bytes()[:31])


def test_one_time_prekey_batches() -> None:
    batch = keys.OneTimePrekeyPair.generate_batch(10, 5)
    assert [p.prekey_id for p in batch] == [10, 11, 12, 13, 14]
    assert len({p.public_key for p in batch}) == 5
    assert keys.OneTimePrekeyPair.generate_batch(keys.PREKEY_ID_MAX, 1)[0].prekey_id == keys.PREKEY_ID_MAX
    assert keys.OneTimePrekeyPair.generate_batch(5, 0) == []
    with pytest.raises(ValueError):
        keys.OneTimePrekeyPair.generate_batch(keys.PREKEY_ID_MAX, 2)
    with pytest.raises(ValueError):
        keys.OneTimePrekeyPair.generate_batch(1, -1)


# --- request bodies ------------------------------------------------------------------------


def test_registration_and_upload_bodies() -> None:
    identity = keys.IdentityKeyPair.generate()
    signed = keys.SignedPrekeyPair.generate(1, identity)
    prekeys = keys.OneTimePrekeyPair.generate_batch(2, limits.MAX_PREKEYS_PER_UPLOAD)
    body = keys.device_registration(identity, signed, prekeys, name="d" * limits.MAX_DEVICE_NAME_CHARS)
    assert body.identity_signing_key == identity.public.signing_key
    assert body.identity_exchange_key == identity.public.exchange_key
    assert [p.id for p in body.prekeys] == list(range(2, 2 + limits.MAX_PREKEYS_PER_UPLOAD))
    too_many = [*prekeys, keys.OneTimePrekeyPair.generate(500)]
    with pytest.raises(ValueError):
        keys.device_registration(identity, signed, too_many)
    with pytest.raises(ValueError):
        keys.device_registration(identity, signed, name="d" * (limits.MAX_DEVICE_NAME_CHARS + 1))
    assert len(keys.prekey_upload(prekeys).prekeys) == limits.MAX_PREKEYS_PER_UPLOAD
    with pytest.raises(ValueError):
        keys.prekey_upload([])
    with pytest.raises(ValueError):
        keys.prekey_upload(too_many)


# --- no secrets in reprs ---------------------------------------------------------------------


def _hex_fragments(secret: bytes) -> list[str]:
    """Every 6-byte window of the secret, in hex: no part of it may show."""
    return [secret[i : i + 6].hex() for i in range(len(secret) - 5)]


def test_reprs_never_show_private_keys() -> None:
    identity = keys.IdentityKeyPair.generate()
    signed = keys.SignedPrekeyPair.generate(1, identity)
    one_time = keys.OneTimePrekeyPair.generate(2)
    seed, exchange = identity.secret_bytes()
    cases = [
        (identity, [seed, exchange, bytes(nacl.signing.SigningKey(seed))]),
        (signed, [signed.private_bytes()]),
        (one_time, [one_time.private_bytes()]),
    ]
    for obj, secrets in cases:
        shown = repr(obj) + str(obj)
        for secret in secrets:
            for fragment in _hex_fragments(secret):
                assert fragment not in shown.lower(), type(obj).__name__
            assert repr(secret) not in shown
    assert identity.public.signing_key[:8].hex() in repr(identity)
