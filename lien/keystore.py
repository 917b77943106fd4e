"""The device's local keystore: private keys and session state, encrypted at rest (docs/protocol.md §3.16).

A keystore is a directory holding one file, ``keystore.lien``::

    b"LIENKS" || version (1 byte) || opslimit (u32 be) || memlimit (u64 be) || salt (16)
    || nonce (24) || XChaCha20-Poly1305 ciphertext

The key is argon2id(password, salt, opslimit, memlimit), 32 bytes; the
associated data is everything before the nonce, so the cost parameters cannot
be swapped. The plaintext is a msgspec-encoded :class:`_Contents`. Saving
writes a temporary file, fsyncs it and renames it over the old one, so a crash
leaves either the old or the new keystore, never a torn one.

Nothing in the clear says whose keystore it is: the username lives inside.
"""

from __future__ import annotations

import os
import secrets
import shutil
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Final

import msgspec
import nacl.bindings
import nacl.exceptions
import nacl.pwhash

from lien.crypto.errors import KeystoreCorrupt, KeystoreExists, WrongPassword
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair
from lien.protocol.frames import Status

FILE_NAME: Final = "keystore.lien"
_MAGIC: Final = b"LIENKS"
_VERSION: Final = 1
_HEADER = struct.Struct(">6sBIQ16s")
_NONCE_SIZE: Final = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
OPSLIMIT: Final[int] = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
MEMLIMIT: Final[int] = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
SENT_KEPT: Final = 1_000
"""Sent messages kept to repair after a ``decrypt-failed`` receipt (encrypted at rest like the rest)."""
SEEN_MESSAGES_KEPT: Final = 20_000
"""Server message ids remembered to show each message once (redeliveries come from the unacked tail)."""


class _SignedPrekeySecret(msgspec.Struct, frozen=True):
    id: int
    private: bytes
    signature: bytes


class SentRecord(msgspec.Struct, frozen=True):
    """A message this device sent, kept a while so it can be re-encrypted after a ``decrypt-failed``."""

    to: str
    client_id: str
    sent_at: int
    text: str
    resent_to: tuple[int, ...] = ()
    """Devices already sent a repaired copy (one repair per device)."""


class KeptReceipt(msgspec.Struct, frozen=True):
    """A verified receipt for a message this device sent, kept as proof (docs/protocol.md §10.4)."""

    kind: str
    by: str
    by_device: int
    at: int
    ciphertext_sha256: bytes
    device_time: int
    signature: bytes


class GroupRecord(msgspec.Struct):
    """What this device knows of a group it belongs to (docs/protocol.md §7.7)."""

    name: str
    epoch: int
    members: list[str]
    active: bool = True
    """False once this user left or was removed."""
    rotate: bool = False
    """The sender key must be replaced before the next message (someone left, a device changed)."""
    distributed: list[str] = []
    """``user/device`` of the member devices that hold this device's current sender key."""
    synced: bool = False
    """True once the member list came from the server (events alone do not list the first members)."""


class _Contents(msgspec.Struct, kw_only=True):
    """Everything the keystore holds; new fields get defaults so older files still open."""

    username: str
    server_url: str
    device_id: int | None = None
    identity_seed: bytes = b""
    identity_exchange: bytes = b""
    signed_prekeys: list[_SignedPrekeySecret] = []
    """Newest last; older ones are kept a while for sessions begun against them."""
    one_time_prekeys: dict[int, bytes] = {}
    next_prekey_id: int = 1
    token: str | None = None
    token_expires_at: int | None = None
    seen_messages: list[str] = []
    sessions: dict[str, bytes] = {}
    """Opaque per-peer-device session states, keyed by the SDK."""
    trusted: dict[str, bytes] = {}
    """Per correspondent: the device identities the user accepted (see lien.sdk.trust)."""
    sent: dict[str, SentRecord] = {}
    """Server message id -> what was sent, the last ``SENT_KEPT`` messages."""
    groups: dict[str, GroupRecord] = {}
    sender_keys: dict[str, bytes] = {}
    """Group id -> this device's sender key (lien.crypto.group.SenderKey.to_bytes)."""
    sender_key_receivers: dict[str, bytes] = {}
    """``group/user/device`` -> what this device holds of that member device's sender key."""
    receipts: dict[str, list[KeptReceipt]] = {}
    """Server message id -> its verified receipts, for the last ``SENT_KEPT`` messages that got one."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Contents)


def _derive_key(password: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    key: bytes = nacl.pwhash.argon2id.kdf(32, password.encode(), salt, opslimit=opslimit, memlimit=memlimit)
    return key


class Keystore:
    """An unlocked keystore. Create with :meth:`create`, open with :meth:`open`, persist with :meth:`save`."""

    def __init__(self, path: Path, key: bytes, header: bytes, contents: _Contents) -> None:
        self._path = path
        self._key = key
        self._header = header
        self._contents = contents
        self._seen: OrderedDict[str, None] = OrderedDict.fromkeys(contents.seen_messages)
        identity = None
        if contents.identity_seed:
            identity = IdentityKeyPair.from_secret_bytes(contents.identity_seed, contents.identity_exchange)
        self._identity = identity

    # --- life cycle ------------------------------------------------------

    @staticmethod
    def exists(path: str | Path) -> bool:
        return (Path(path) / FILE_NAME).exists()

    @classmethod
    def create(
        cls,
        path: str | Path,
        password: str,
        *,
        username: str,
        server_url: str,
        opslimit: int = OPSLIMIT,
        memlimit: int = MEMLIMIT,
    ) -> Keystore:
        """A new keystore with a fresh identity; raises KeystoreExists if one is there."""
        directory = Path(path)
        if cls.exists(directory):
            raise KeystoreExists()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        salt = secrets.token_bytes(nacl.pwhash.argon2id.SALTBYTES)
        header = _HEADER.pack(_MAGIC, _VERSION, opslimit, memlimit, salt)
        identity = IdentityKeyPair.generate()
        seed, exchange = identity.secret_bytes()
        contents = _Contents(
            username=username, server_url=server_url, identity_seed=seed, identity_exchange=exchange
        )
        store = cls(directory, _derive_key(password, salt, opslimit, memlimit), header, contents)
        store.save()
        return store

    @classmethod
    def open(cls, path: str | Path, password: str) -> Keystore:
        """Unlock an existing keystore; WrongPassword if the password (or the file) does not match."""
        file = Path(path) / FILE_NAME
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise KeystoreCorrupt(f"No keystore at {path}.") from None
        if len(data) < _HEADER.size + _NONCE_SIZE + 16:
            raise KeystoreCorrupt()
        magic, version, opslimit, memlimit, salt = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise KeystoreCorrupt("The keystore file is of an unknown kind or version.")
        header = data[: _HEADER.size]
        nonce = data[_HEADER.size : _HEADER.size + _NONCE_SIZE]
        try:
            key = _derive_key(password, salt, opslimit, memlimit)
        except (ValueError, nacl.exceptions.CryptoError):
            raise KeystoreCorrupt("The keystore's key derivation parameters are invalid.") from None
        try:
            plaintext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                data[_HEADER.size + _NONCE_SIZE :], header, nonce, key
            )
        except nacl.exceptions.CryptoError:
            raise WrongPassword() from None
        try:
            contents = _decoder.decode(plaintext)
            return cls(Path(path), key, header, contents)
        except (msgspec.MsgspecError, ValueError) as exc:
            raise KeystoreCorrupt() from exc

    @staticmethod
    def destroy(path: str | Path) -> None:
        """Delete a keystore directory (used when registration fails before the device exists)."""
        shutil.rmtree(Path(path), ignore_errors=True)

    def save(self) -> None:
        """Encrypt and write atomically (temporary file, fsync, rename)."""
        self._contents.seen_messages = list(self._seen)
        nonce = secrets.token_bytes(_NONCE_SIZE)
        ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            _encoder.encode(self._contents), self._header, nonce, self._key
        )
        temporary = self._path / (FILE_NAME + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, self._header + nonce + ciphertext)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, self._path / FILE_NAME)
        directory = os.open(self._path, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself must survive a power loss
        finally:
            os.close(directory)

    # --- account ---------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def username(self) -> str:
        return self._contents.username

    @property
    def server_url(self) -> str:
        return self._contents.server_url

    @property
    def device_id(self) -> int | None:
        return self._contents.device_id

    @device_id.setter
    def device_id(self, value: int | None) -> None:
        self._contents.device_id = value

    @property
    def token(self) -> str | None:
        return self._contents.token

    @property
    def token_expires_at(self) -> int | None:
        return self._contents.token_expires_at

    def set_token(self, token: str | None, expires_at: int | None) -> None:
        self._contents.token = token
        self._contents.token_expires_at = expires_at

    # --- keys ------------------------------------------------------------

    @property
    def identity(self) -> IdentityKeyPair:
        if self._identity is None:
            raise KeystoreCorrupt("The keystore holds no identity key.")
        return self._identity

    def new_signed_prekey(self) -> SignedPrekeyPair:
        """A new signed prekey; the previous one is kept for sessions begun against it."""
        prekey_id = self._take_prekey_ids(1)
        prekey = SignedPrekeyPair.generate(prekey_id, self.identity)
        kept = [*self._contents.signed_prekeys[-1:], _secret_of(prekey)]
        self._contents.signed_prekeys = kept
        return prekey

    def signed_prekey(self, prekey_id: int) -> SignedPrekeyPair | None:
        for secret in self._contents.signed_prekeys:
            if secret.id == prekey_id:
                return SignedPrekeyPair.from_secret_bytes(secret.id, secret.private, secret.signature)
        return None

    def new_one_time_prekeys(self, count: int) -> list[OneTimePrekeyPair]:
        start = self._take_prekey_ids(count)
        prekeys = OneTimePrekeyPair.generate_batch(start, count)
        for prekey in prekeys:
            self._contents.one_time_prekeys[prekey.prekey_id] = prekey.private_bytes()
        return prekeys

    def one_time_prekey(self, prekey_id: int) -> OneTimePrekeyPair | None:
        private = self._contents.one_time_prekeys.get(prekey_id)
        return None if private is None else OneTimePrekeyPair.from_private_bytes(prekey_id, private)

    def consume_one_time_prekey(self, prekey_id: int) -> None:
        """Forget a one-time prekey's private key once a session used it (it is single-use)."""
        self._contents.one_time_prekeys.pop(prekey_id, None)

    @property
    def one_time_prekey_count(self) -> int:
        return len(self._contents.one_time_prekeys)

    def _take_prekey_ids(self, count: int) -> int:
        start = self._contents.next_prekey_id
        self._contents.next_prekey_id = start + count
        return start

    # --- sessions and trust (opaque to the keystore) ------------------------

    def session(self, name: str) -> bytes | None:
        return self._contents.sessions.get(name)

    def set_session(self, name: str, state: bytes | None) -> None:
        if state is None:
            self._contents.sessions.pop(name, None)
        else:
            self._contents.sessions[name] = state

    def session_names(self) -> list[str]:
        return list(self._contents.sessions)

    def trusted(self, username: str) -> bytes | None:
        return self._contents.trusted.get(username)

    def set_trusted(self, username: str, digest: bytes) -> None:
        self._contents.trusted[username] = digest

    # --- groups ----------------------------------------------------------------

    def group(self, group_id: str) -> GroupRecord | None:
        return self._contents.groups.get(group_id)

    def set_group(self, group_id: str, record: GroupRecord) -> None:
        self._contents.groups[group_id] = record

    def group_ids(self) -> list[str]:
        return list(self._contents.groups)

    def sender_key(self, group_id: str) -> bytes | None:
        return self._contents.sender_keys.get(group_id)

    def set_sender_key(self, group_id: str, state: bytes | None) -> None:
        if state is None:
            self._contents.sender_keys.pop(group_id, None)
        else:
            self._contents.sender_keys[group_id] = state

    def sender_key_receiver(self, name: str) -> bytes | None:
        return self._contents.sender_key_receivers.get(name)

    def sender_key_receiver_names(self) -> list[str]:
        return list(self._contents.sender_key_receivers)

    def set_sender_key_receiver(self, name: str, state: bytes | None) -> None:
        if state is None:
            self._contents.sender_key_receivers.pop(name, None)
        else:
            self._contents.sender_key_receivers[name] = state

    # --- sent messages, for repair ----------------------------------------------

    def remember_sent(self, message_id: str, record: SentRecord) -> None:
        sent = self._contents.sent
        sent[message_id] = record
        while len(sent) > SENT_KEPT:
            del sent[next(iter(sent))]

    def sent_message(self, message_id: str) -> SentRecord | None:
        return self._contents.sent.get(message_id)

    def remember_receipt(self, message_id: str, receipt: Status) -> None:
        kept = self._contents.receipts
        entries = kept.setdefault(message_id, [])
        entries.append(
            KeptReceipt(
                kind=receipt.kind,
                by=receipt.by,
                by_device=receipt.by_device,
                at=receipt.at,
                ciphertext_sha256=receipt.hash,
                device_time=receipt.device_time,
                signature=receipt.signature,
            )
        )
        while len(kept) > SENT_KEPT:
            del kept[next(iter(kept))]

    def kept_receipts(self, message_id: str) -> list[KeptReceipt]:
        return list(self._contents.receipts.get(message_id, []))

    # --- delivery ----------------------------------------------------------

    def was_seen(self, message_id: str) -> bool:
        return message_id in self._seen

    def remember_seen(self, message_id: str) -> bool:
        """Record a shown message; False if it was already shown (a redelivery)."""
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        while len(self._seen) > SEEN_MESSAGES_KEPT:
            self._seen.popitem(last=False)
        return True

    def __repr__(self) -> str:
        return f"Keystore(path={str(self._path)!r}, username={self.username!r}, device_id={self.device_id})"


def _secret_of(prekey: SignedPrekeyPair) -> _SignedPrekeySecret:
    return _SignedPrekeySecret(
        id=prekey.prekey_id, private=prekey.private_bytes(), signature=prekey.signature
    )
