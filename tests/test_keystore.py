"""lien.keystore: the encrypted local keystore (docs/protocol.md §3.12), on a real file system."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import msgspec
import nacl.bindings
import nacl.pwhash
import pytest

from lien import keystore as keystore_module
from lien.crypto import keys
from lien.crypto.errors import KeystoreCorrupt, KeystoreError, KeystoreExists, WrongPassword
from lien.keystore import FILE_NAME, Keystore

FAST = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN, "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN}
PASSWORD = "correct horse battery"

# The documented layout: magic (6) | version (1) | opslimit (4) | memlimit (8) | salt (16) | nonce (24) | ...
HEADER_SIZE = 6 + 1 + 4 + 8 + 16
NONCE_SIZE = 24
MAC_SIZE = 16


def new_store(directory: Path, password: str = PASSWORD) -> Keystore:
    return Keystore.create(
        directory, password, username="dr.martin", server_url="https://lien.example", **FAST
    )


def file_of(directory: Path) -> Path:
    return directory / FILE_NAME


def damage(directory: Path, position: int, xor: int = 0x01) -> None:
    path = file_of(directory)
    data = bytearray(path.read_bytes())
    data[position] ^= xor
    path.write_bytes(bytes(data))


def test_create_open_round_trip(tmp_path: Path) -> None:
    directory = tmp_path / "ks"
    store = new_store(directory)
    assert Keystore.exists(directory)
    assert store.username == "dr.martin" and store.server_url == "https://lien.example"
    assert store.device_id is None and store.token is None
    store.device_id = 42
    store.set_token("tok", 1_900_000_000_000)
    store.set_session("bob:2", b"state")
    store.set_trusted("bob", b"digest")
    assert store.remember_seen("m1")
    signed = store.new_signed_prekey()
    one_time = store.new_one_time_prekeys(3)
    store.save()

    opened = Keystore.open(directory, PASSWORD)
    assert opened.identity == store.identity
    assert opened.identity.public == store.identity.public
    assert (opened.username, opened.server_url, opened.device_id) == ("dr.martin", "https://lien.example", 42)
    assert (opened.token, opened.token_expires_at) == ("tok", 1_900_000_000_000)
    assert opened.session("bob:2") == b"state" and opened.session_names() == ["bob:2"]
    assert opened.trusted("bob") == b"digest" and opened.trusted("carol") is None
    assert not opened.remember_seen("m1")
    reopened_signed = opened.signed_prekey(signed.prekey_id)
    assert reopened_signed is not None
    assert (reopened_signed.public_key, reopened_signed.signature) == (signed.public_key, signed.signature)
    assert opened.one_time_prekey_count == 3
    for prekey in one_time:
        again = opened.one_time_prekey(prekey.prekey_id)
        assert again is not None and again.public_key == prekey.public_key


def test_unsaved_changes_are_not_on_disk(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.device_id = 7
    assert Keystore.open(tmp_path, PASSWORD).device_id is None
    store.save()
    assert Keystore.open(tmp_path, PASSWORD).device_id == 7


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    with pytest.raises(KeystoreExists):
        new_store(tmp_path, "another password")
    assert Keystore.open(tmp_path, PASSWORD).identity == store.identity


def test_file_layout_and_permissions(tmp_path: Path) -> None:
    new_store(tmp_path / "ks")
    data = file_of(tmp_path / "ks").read_bytes()
    magic, version, opslimit, memlimit, _salt = struct.unpack_from(">6sBIQ16s", data)
    assert (magic, version) == (b"LIENKS", 1)
    assert (opslimit, memlimit) == (FAST["opslimit"], FAST["memlimit"])
    assert stat.S_IMODE(os.stat(file_of(tmp_path / "ks")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "ks").st_mode) == 0o700
    assert b"dr.martin" not in data  # nothing in the clear says whose keystore it is


def test_each_save_uses_a_fresh_nonce(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    first = file_of(tmp_path).read_bytes()
    store.save()
    second = file_of(tmp_path).read_bytes()
    assert first[:HEADER_SIZE] == second[:HEADER_SIZE]
    assert first[HEADER_SIZE : HEADER_SIZE + NONCE_SIZE] != second[HEADER_SIZE : HEADER_SIZE + NONCE_SIZE]


def test_wrong_password(tmp_path: Path) -> None:
    new_store(tmp_path)
    with pytest.raises(WrongPassword) as caught:
        Keystore.open(tmp_path, PASSWORD + "!")
    assert caught.value.code == "wrong-password"
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value)
    with pytest.raises(WrongPassword):
        Keystore.open(tmp_path, "")


def test_missing_keystore(tmp_path: Path) -> None:
    assert not Keystore.exists(tmp_path)
    with pytest.raises(KeystoreCorrupt):
        Keystore.open(tmp_path, PASSWORD)


# Every byte of the header and around it: the magic and version are checked in the clear,
# the rest is authenticated (associated data, or the key through the salt and costs).
HEADER_POSITIONS = list(range(HEADER_SIZE))


@pytest.mark.parametrize("position", HEADER_POSITIONS)
@pytest.mark.timeout(20)
def test_flipped_header_byte(tmp_path: Path, position: int) -> None:
    new_store(tmp_path)
    damage(tmp_path, position, 0xFF)
    with pytest.raises((WrongPassword, KeystoreCorrupt)) as caught:
        Keystore.open(tmp_path, PASSWORD)
    if position < 7:
        assert isinstance(caught.value, KeystoreCorrupt)  # magic or version


@pytest.mark.parametrize("region", ["nonce", "ciphertext", "mac"])
def test_flipped_body_byte(tmp_path: Path, region: str) -> None:
    new_store(tmp_path)
    size = file_of(tmp_path).stat().st_size
    position = {"nonce": HEADER_SIZE + 5, "ciphertext": HEADER_SIZE + NONCE_SIZE + 3, "mac": size - 1}[region]
    damage(tmp_path, position)
    with pytest.raises(WrongPassword):
        Keystore.open(tmp_path, PASSWORD)


def test_unknown_version(tmp_path: Path) -> None:
    new_store(tmp_path)
    path = file_of(tmp_path)
    data = bytearray(path.read_bytes())
    data[6] = 2
    path.write_bytes(bytes(data))
    with pytest.raises(KeystoreCorrupt, match="version"):
        Keystore.open(tmp_path, PASSWORD)


@pytest.mark.parametrize(
    "keep", [0, 1, 6, HEADER_SIZE, HEADER_SIZE + NONCE_SIZE, HEADER_SIZE + NONCE_SIZE + 15]
)
def test_truncated_before_the_ciphertext(tmp_path: Path, keep: int) -> None:
    new_store(tmp_path)
    path = file_of(tmp_path)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(KeystoreCorrupt):
        Keystore.open(tmp_path, PASSWORD)


@pytest.mark.parametrize("drop", [1, 16, 100])
def test_truncated_ciphertext(tmp_path: Path, drop: int) -> None:
    new_store(tmp_path)
    path = file_of(tmp_path)
    path.write_bytes(path.read_bytes()[:-drop])
    with pytest.raises(WrongPassword):
        Keystore.open(tmp_path, PASSWORD)


def _write_with_plaintext(directory: Path, plaintext: bytes) -> None:
    """A keystore file built from the documented format around an arbitrary plaintext."""
    salt = b"s" * 16
    header = struct.pack(">6sBIQ16s", b"LIENKS", 1, FAST["opslimit"], FAST["memlimit"], salt)
    key = nacl.pwhash.argon2id.kdf(32, PASSWORD.encode(), salt, **FAST)
    nonce = b"n" * NONCE_SIZE
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, header, nonce, key)
    directory.mkdir(parents=True, exist_ok=True)
    file_of(directory).write_bytes(header + nonce + ciphertext)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"not msgpack at all \xc1",
        msgspec.msgpack.encode({"server_url": "x"}),  # no username
        msgspec.msgpack.encode({"username": "u", "server_url": "x", "identity_seed": b"short"}),
        msgspec.msgpack.encode(
            {"username": "u", "server_url": "x", "identity_seed": b"s" * 32, "identity_exchange": b"e"}
        ),
    ],
)
def test_decrypts_to_something_inconsistent(tmp_path: Path, plaintext: bytes) -> None:
    _write_with_plaintext(tmp_path, plaintext)
    with pytest.raises(KeystoreCorrupt):
        Keystore.open(tmp_path, PASSWORD)


def test_older_contents_open_with_defaults(tmp_path: Path) -> None:
    identity = keys.IdentityKeyPair.generate()
    seed, exchange = identity.secret_bytes()
    _write_with_plaintext(
        tmp_path,
        msgspec.msgpack.encode(
            {"username": "u", "server_url": "x", "identity_seed": seed, "identity_exchange": exchange}
        ),
    )
    store = Keystore.open(tmp_path, PASSWORD)
    assert store.identity == identity
    assert store.one_time_prekey_count == 0 and store.session_names() == []


def test_no_identity_is_reported_on_use(tmp_path: Path) -> None:
    _write_with_plaintext(tmp_path, msgspec.msgpack.encode({"username": "u", "server_url": "x"}))
    store = Keystore.open(tmp_path, PASSWORD)
    with pytest.raises(KeystoreCorrupt):
        _ = store.identity


def test_absurd_cost_parameters_are_refused_at_create(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Keystore.create(tmp_path, PASSWORD, username="u", server_url="x", opslimit=2**32 - 1)
    assert not Keystore.exists(tmp_path)


def test_atomic_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    for n in range(3):
        store.device_id = n
        store.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]


def test_a_leftover_temporary_file_is_harmless(tmp_path: Path) -> None:
    # A crash between writing the temporary file and the rename leaves it behind.
    store = new_store(tmp_path)
    (tmp_path / (FILE_NAME + ".tmp")).write_bytes(b"torn half-written keystore")
    assert Keystore.open(tmp_path, PASSWORD).identity == store.identity
    store.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]
    assert Keystore.open(tmp_path, PASSWORD).identity == store.identity


def test_destroy(tmp_path: Path) -> None:
    new_store(tmp_path / "ks")
    Keystore.destroy(tmp_path / "ks")
    assert not (tmp_path / "ks").exists()
    Keystore.destroy(tmp_path / "ks")  # idempotent


def test_remember_seen_is_bounded(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    kept = keystore_module.SEEN_MESSAGES_KEPT
    assert store.remember_seen("m0")
    assert not store.remember_seen("m0")
    for n in range(1, kept + 1):
        assert store.remember_seen(f"m{n}")
    # m0 was the oldest: forgotten once the bound was passed; the newest are kept.
    assert store.remember_seen("m0")
    assert not store.remember_seen(f"m{kept}")
    store.save()
    opened = Keystore.open(tmp_path, PASSWORD)
    assert not opened.remember_seen(f"m{kept}")
    assert not opened.remember_seen("m0")
    assert opened.remember_seen("m1")  # evicted when m0 came back


def test_one_time_prekeys_are_consumed_once(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    first = store.new_one_time_prekeys(3)
    second = store.new_one_time_prekeys(2)
    ids = [p.prekey_id for p in first + second]
    assert ids == list(range(ids[0], ids[0] + 5))  # never reused
    store.consume_one_time_prekey(ids[1])
    assert store.one_time_prekey(ids[1]) is None
    assert store.one_time_prekey_count == 4
    store.consume_one_time_prekey(ids[1])  # again: nothing to consume
    store.consume_one_time_prekey(10_000)
    assert store.one_time_prekey_count == 4
    store.save()
    opened = Keystore.open(tmp_path, PASSWORD)
    assert opened.one_time_prekey(ids[1]) is None
    assert opened.one_time_prekey_count == 4
    assert [p.prekey_id for p in opened.new_one_time_prekeys(1)] == [ids[-1] + 1]


def test_signed_prekey_rotation_keeps_the_previous_one(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    first = store.new_signed_prekey()
    second = store.new_signed_prekey()
    assert second.prekey_id != first.prekey_id
    assert store.signed_prekey(first.prekey_id) is not None
    assert store.signed_prekey(second.prekey_id) is not None
    third = store.new_signed_prekey()
    assert store.signed_prekey(first.prekey_id) is None  # two generations are kept
    for prekey in (second, third):
        kept = store.signed_prekey(prekey.prekey_id)
        assert kept is not None and kept.private_bytes() == prekey.private_bytes()
        assert keys.verify_signed_prekey(
            store.identity.public.signing_key, kept.prekey_id, kept.public_key, kept.signature
        )
    store.save()
    opened = Keystore.open(tmp_path, PASSWORD)
    assert opened.signed_prekey(first.prekey_id) is None
    assert opened.signed_prekey(second.prekey_id) is not None
    assert opened.signed_prekey(third.prekey_id) is not None


def test_sessions_can_be_removed(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.set_session("a", b"1")
    store.set_session("a", None)
    store.set_session("missing", None)
    assert store.session("a") is None and store.session_names() == []


def test_repr_shows_no_secret(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.set_token("very-secret-token", None)
    shown = repr(store)
    seed, exchange = store.identity.secret_bytes()
    assert "dr.martin" in shown
    assert "very-secret-token" not in shown and PASSWORD not in shown
    assert seed.hex()[:12] not in shown and exchange.hex()[:12] not in shown


def test_errors_are_keystore_errors() -> None:
    for cls in (WrongPassword, KeystoreCorrupt, KeystoreExists):
        assert issubclass(cls, KeystoreError)
