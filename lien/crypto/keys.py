"""A device's long-term keys and prekeys (docs/protocol-crypto.md §3.1 to §3.3).

Every device has an *identity*: an Ed25519 signing key pair and an X25519
key-exchange key pair, generated independently (no key is converted from the
other). It also publishes a *signed prekey* (an X25519 public key signed by
the identity signing key, §3.2) and a supply of *one-time prekeys* (§3.3).
X3DH (§3.5) uses the identity keys and the prekeys to set up the pairwise
sessions of message format 2.

Private keys live in the typed classes below and never appear in their
``repr``. Public keys travel as raw 32-byte strings (base64 in JSON) and are
validated whenever one is turned into a typed object.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from lien.crypto.errors import InvalidKey
from lien.protocol import api, limits

SIGNING_SEED_SIZE: Final[int] = nacl.bindings.crypto_sign_SEEDBYTES
SIGNING_KEY_SIZE: Final[int] = nacl.bindings.crypto_sign_PUBLICKEYBYTES
SIGNATURE_SIZE: Final[int] = nacl.bindings.crypto_sign_BYTES
EXCHANGE_KEY_SIZE: Final[int] = nacl.bindings.crypto_box_PUBLICKEYBYTES
EXCHANGE_PRIVATE_SIZE: Final[int] = nacl.bindings.crypto_box_SECRETKEYBYTES
PREKEY_ID_MAX: Final = 2**31 - 1
"""Prekey ids are 0 to 2**31 - 1, encoded on 4 bytes big-endian when signed (§3.2)."""
SIGNED_PREKEY_DOMAIN: Final = b"lien-signed-prekey-v1\x00"
"""Prefix of the message an identity key signs to vouch for a prekey (§3.2)."""

_CURVE25519_P: Final = 2**255 - 19


def is_canonical_exchange_key(key: bytes) -> bool:
    """Whether ``key`` is a canonical X25519 public key (§3.1).

    Canonical means 32 bytes whose little-endian integer is below 2**255 - 19.
    libsodium always produces canonical keys; X25519 itself ignores the top
    bit, so without this check two encodings would name the same key and a
    flipped bit in a message's ephemeral key would go unnoticed.
    """
    return (
        isinstance(key, bytes)
        and len(key) == EXCHANGE_KEY_SIZE
        and int.from_bytes(key, "little") < _CURVE25519_P
    )


def _check_prekey_id(prekey_id: int) -> int:
    if isinstance(prekey_id, bool) or not isinstance(prekey_id, int) or not 0 <= prekey_id <= PREKEY_ID_MAX:
        raise ValueError(f"prekey ids are integers from 0 to {PREKEY_ID_MAX}")
    return prekey_id


def _exchange_private(private: bytes) -> nacl.public.PrivateKey:
    if not isinstance(private, bytes) or len(private) != EXCHANGE_PRIVATE_SIZE:
        raise InvalidKey(f"An X25519 private key is {EXCHANGE_PRIVATE_SIZE} bytes.")
    return nacl.public.PrivateKey(private)


def _short(key: bytes) -> str:
    return key[:8].hex() + "…"


# --- identity (§3.1) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """A device's public identity: Ed25519 ``signing_key`` and X25519 ``exchange_key``.

    The constructor validates both (sizes, canonical X25519 encoding) and
    raises :class:`~lien.crypto.errors.InvalidKey` otherwise.
    """

    signing_key: bytes
    exchange_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signing_key, bytes) or len(self.signing_key) != SIGNING_KEY_SIZE:
            raise InvalidKey(f"An Ed25519 public key is {SIGNING_KEY_SIZE} bytes.")
        if not is_canonical_exchange_key(self.exchange_key):
            raise InvalidKey("The X25519 public key is not a canonical 32-byte encoding.")

    @classmethod
    def from_device(cls, device: api.DeviceIdentity | api.KeyBundle) -> PublicIdentity:
        """The identity of a device as listed by the server (device list or key bundle)."""
        return cls(signing_key=device.identity_signing_key, exchange_key=device.identity_exchange_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this identity's Ed25519 signature of ``message``.

        Never raises for a bad signature or a signing key that is not a valid
        point; libsodium's ``crypto_sign_verify_detached`` rejects both.
        """
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
            return False
        try:
            nacl.signing.VerifyKey(self.signing_key).verify(message, signature)
        except nacl.exceptions.BadSignatureError:
            return False
        return True

    def __repr__(self) -> str:
        signing, exchange = _short(self.signing_key), _short(self.exchange_key)
        return f"PublicIdentity(signing_key={signing}, exchange_key={exchange})"


class IdentityKeyPair:
    """A device's private identity: an Ed25519 signing key and an X25519 private key."""

    __slots__ = ("_exchange_key", "_public", "_signing_key")

    def __init__(self, signing_key: nacl.signing.SigningKey, exchange_key: nacl.public.PrivateKey) -> None:
        if not isinstance(signing_key, nacl.signing.SigningKey) or not isinstance(
            exchange_key, nacl.public.PrivateKey
        ):
            raise TypeError("IdentityKeyPair needs a nacl SigningKey and a nacl PrivateKey")
        self._signing_key = signing_key
        self._exchange_key = exchange_key
        self._public = PublicIdentity(
            signing_key=bytes(signing_key.verify_key), exchange_key=bytes(exchange_key.public_key)
        )

    @classmethod
    def generate(cls) -> IdentityKeyPair:
        """Two fresh, independent key pairs from the operating system's random source."""
        return cls(nacl.signing.SigningKey.generate(), nacl.public.PrivateKey.generate())

    @classmethod
    def from_secret_bytes(cls, signing_seed: bytes, exchange_private: bytes) -> IdentityKeyPair:
        """Rebuild from what :meth:`secret_bytes` returned (32-byte seed, 32-byte X25519 key)."""
        if not isinstance(signing_seed, bytes) or len(signing_seed) != SIGNING_SEED_SIZE:
            raise InvalidKey(f"An Ed25519 seed is {SIGNING_SEED_SIZE} bytes.")
        return cls(nacl.signing.SigningKey(signing_seed), _exchange_private(exchange_private))

    def secret_bytes(self) -> tuple[bytes, bytes]:
        """``(signing_seed, exchange_private)``, for the keystore only; handle with care."""
        return bytes(self._signing_key), bytes(self._exchange_key)

    @property
    def public(self) -> PublicIdentity:
        return self._public

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (``crypto_sign_detached``)."""
        return self._signing_key.sign(message).signature

    @property
    def _exchange_private(self) -> nacl.public.PrivateKey:
        """The X25519 private key, for :mod:`lien.crypto.sealed` to open messages."""
        return self._exchange_key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdentityKeyPair):
            return NotImplemented
        return hmac.compare_digest(b"".join(self.secret_bytes()), b"".join(other.secret_bytes()))

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        return f"IdentityKeyPair(public={self._public!r})"


# --- signed prekey (§3.2) ---------------------------------------------------


def signed_prekey_message(prekey_id: int, prekey: bytes) -> bytes:
    """The exact bytes an identity key signs for a signed prekey (§3.2).

    ``b"lien-signed-prekey-v1\\x00" || uint32_be(prekey_id) || prekey`` (58 bytes).
    """
    _check_prekey_id(prekey_id)
    if not isinstance(prekey, bytes) or len(prekey) != EXCHANGE_KEY_SIZE:
        raise InvalidKey(f"A prekey is a {EXCHANGE_KEY_SIZE}-byte X25519 public key.")
    return SIGNED_PREKEY_DOMAIN + prekey_id.to_bytes(4, "big") + prekey


def verify_signed_prekey(
    identity_signing_key: bytes, prekey_id: int, prekey: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` vouches for ``prekey`` under ``prekey_id`` (§3.2).

    Called by the server on registration and rotation. Returns ``False``, never
    raises, for anything invalid: wrong sizes, an id out of range, a
    non-canonical prekey, or a signature that does not verify.
    """
    if isinstance(prekey_id, bool) or not isinstance(prekey_id, int) or not 0 <= prekey_id <= PREKEY_ID_MAX:
        return False
    if not is_canonical_exchange_key(prekey):
        return False
    if not isinstance(identity_signing_key, bytes) or len(identity_signing_key) != SIGNING_KEY_SIZE:
        return False
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        message = signed_prekey_message(prekey_id, prekey)
        nacl.signing.VerifyKey(identity_signing_key).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


class SignedPrekeyPair:
    """An X25519 prekey with its id and the identity key's signature over both."""

    __slots__ = ("_prekey_id", "_private_key", "_public_key", "_signature")

    def __init__(self, prekey_id: int, private_key: nacl.public.PrivateKey, signature: bytes) -> None:
        if not isinstance(private_key, nacl.public.PrivateKey):
            raise TypeError("SignedPrekeyPair needs a nacl PrivateKey")
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
            raise InvalidKey(f"A signature is {SIGNATURE_SIZE} bytes.")
        self._prekey_id = _check_prekey_id(prekey_id)
        self._private_key = private_key
        self._public_key = bytes(private_key.public_key)
        self._signature = signature

    @classmethod
    def generate(cls, prekey_id: int, identity: IdentityKeyPair) -> SignedPrekeyPair:
        private_key = nacl.public.PrivateKey.generate()
        message = signed_prekey_message(prekey_id, bytes(private_key.public_key))
        return cls(prekey_id, private_key, identity.sign(message))

    @classmethod
    def from_secret_bytes(cls, prekey_id: int, private: bytes, signature: bytes) -> SignedPrekeyPair:
        return cls(prekey_id, _exchange_private(private), signature)

    @classmethod
    def from_private_bytes(
        cls, prekey_id: int, private: bytes, identity: IdentityKeyPair
    ) -> SignedPrekeyPair:
        """A signed prekey from a given X25519 private key, signed now by ``identity``.

        Ed25519 signatures are deterministic, so this rebuilds the same pair
        every time: the test-vector generator uses it with fixed seeds.
        """
        private_key = _exchange_private(private)
        message = signed_prekey_message(prekey_id, bytes(private_key.public_key))
        return cls(prekey_id, private_key, identity.sign(message))

    @property
    def prekey_id(self) -> int:
        return self._prekey_id

    @property
    def public_key(self) -> bytes:
        return self._public_key

    @property
    def signature(self) -> bytes:
        return self._signature

    def private_bytes(self) -> bytes:
        """The raw X25519 private key, for the keystore only."""
        return bytes(self._private_key)

    def to_body(self) -> api.SignedPrekey:
        return api.SignedPrekey(id=self._prekey_id, key=self._public_key, signature=self._signature)

    def __repr__(self) -> str:
        return f"SignedPrekeyPair(prekey_id={self._prekey_id}, public_key={_short(self._public_key)})"


# --- one-time prekeys (§3.3) ------------------------------------------------


class OneTimePrekeyPair:
    """An X25519 prekey handed to at most one peer by the server."""

    __slots__ = ("_prekey_id", "_private_key", "_public_key")

    def __init__(self, prekey_id: int, private_key: nacl.public.PrivateKey) -> None:
        if not isinstance(private_key, nacl.public.PrivateKey):
            raise TypeError("OneTimePrekeyPair needs a nacl PrivateKey")
        self._prekey_id = _check_prekey_id(prekey_id)
        self._private_key = private_key
        self._public_key = bytes(private_key.public_key)

    @classmethod
    def generate(cls, prekey_id: int) -> OneTimePrekeyPair:
        return cls(prekey_id, nacl.public.PrivateKey.generate())

    @classmethod
    def generate_batch(cls, start_id: int, count: int) -> list[OneTimePrekeyPair]:
        """``count`` fresh prekeys with ids ``start_id`` … ``start_id + count - 1``."""
        if count < 0:
            raise ValueError("count must not be negative")
        _check_prekey_id(start_id)
        if count:
            _check_prekey_id(start_id + count - 1)
        return [cls.generate(start_id + offset) for offset in range(count)]

    @classmethod
    def from_private_bytes(cls, prekey_id: int, private: bytes) -> OneTimePrekeyPair:
        return cls(prekey_id, _exchange_private(private))

    @property
    def prekey_id(self) -> int:
        return self._prekey_id

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def private_bytes(self) -> bytes:
        """The raw X25519 private key, for the keystore only."""
        return bytes(self._private_key)

    def to_body(self) -> api.OneTimePrekey:
        return api.OneTimePrekey(id=self._prekey_id, key=self._public_key)

    def __repr__(self) -> str:
        return f"OneTimePrekeyPair(prekey_id={self._prekey_id}, public_key={_short(self._public_key)})"


# --- request bodies (docs/protocol.md §4) -----------------------------------


def _check_upload_size(prekeys: Sequence[OneTimePrekeyPair]) -> None:
    if len(prekeys) > limits.MAX_PREKEYS_PER_UPLOAD:
        raise ValueError(f"at most {limits.MAX_PREKEYS_PER_UPLOAD} one-time prekeys per upload")


def device_registration(
    identity: IdentityKeyPair,
    signed_prekey: SignedPrekeyPair,
    one_time_prekeys: Sequence[OneTimePrekeyPair] = (),
    *,
    name: str = "",
) -> api.DeviceRegistration:
    """The public part of a new device, as sent with ``register`` or ``login``."""
    _check_upload_size(one_time_prekeys)
    if len(name) > limits.MAX_DEVICE_NAME_CHARS:
        raise ValueError(f"device names are at most {limits.MAX_DEVICE_NAME_CHARS} characters")
    return api.DeviceRegistration(
        name=name,
        identity_signing_key=identity.public.signing_key,
        identity_exchange_key=identity.public.exchange_key,
        signed_prekey=signed_prekey.to_body(),
        prekeys=[prekey.to_body() for prekey in one_time_prekeys],
    )


def prekey_upload(one_time_prekeys: Sequence[OneTimePrekeyPair]) -> api.PrekeyUpload:
    """A body that replenishes the server's stock of this device's one-time prekeys."""
    if not one_time_prekeys:
        raise ValueError("an upload holds at least one prekey")
    _check_upload_size(one_time_prekeys)
    return api.PrekeyUpload(prekeys=[prekey.to_body() for prekey in one_time_prekeys])
