"""The primitives and key-derivation functions of message format 2 (docs/protocol-crypto.md §3.4).

Only what exists both in PyNaCl (or the Python standard library) and in the
browser's ``libsodium-wrappers-sumo`` is used:

=====================  ==========================================  ==========================================
primitive              here                                        libsodium-wrappers-sumo
=====================  ==========================================  ==========================================
X25519                 ``crypto_scalarmult``                       ``crypto_scalarmult``
HMAC-SHA-256           :mod:`hmac` + :mod:`hashlib`                ``crypto_auth_hmacsha256``
HKDF-SHA-256           RFC 5869 over HMAC-SHA-256                  ``crypto_kdf_hkdf_sha256_extract/expand``
XChaCha20-Poly1305     ``crypto_aead_xchacha20poly1305_ietf_*``    ``crypto_aead_xchacha20poly1305_ietf_*``
SHA-512                :mod:`hashlib`                              ``crypto_hash_sha512``
Ed25519                :mod:`nacl.signing`                         ``crypto_sign_(verify_)detached``
Ed25519 point check    ``crypto_core_ed25519_is_valid_point``      ``crypto_core_ed25519_is_valid_point``
=====================  ==========================================  ==========================================

Every function takes and returns ``bytes`` of fixed, checked sizes. Secrets
are compared with :func:`hmac.compare_digest` only.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.signing

from lien.crypto.errors import DecryptionFailed, InvalidKey
from lien.crypto.keys import EXCHANGE_KEY_SIZE, is_canonical_exchange_key

KEY_SIZE: Final = 32
"""Root keys, chain keys, message keys, X3DH secrets and AEAD keys are 32 bytes."""
HASH_SIZE: Final = 32
"""SHA-256 output size; also the HKDF salt size when the salt is 'absent' (32 zero bytes)."""
AEAD_NONCE_SIZE: Final = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
AEAD_TAG_SIZE: Final = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES
ZERO_SALT: Final = bytes(HASH_SIZE)

X3DH_INFO: Final = b"Lien X3DH v2"
"""HKDF info of the X3DH shared secret (§3.5.3)."""
ROOT_KDF_INFO: Final = b"Lien Ratchet v2"
"""HKDF info of KDF_RK (§3.4.3)."""
MESSAGE_KEY_INFO: Final = b"Lien Message Keys v2"
"""HKDF info of the message-key expansion into AEAD key and nonce (§3.4.5)."""
GROUP_MESSAGE_KEY_INFO: Final = b"Lien Group Message Keys v1"
"""HKDF info of the same expansion for group (sender-key) messages (docs/protocol-group.md §3.17.3).

A different info string keeps group message keys apart from pairwise ones:
the same 32 bytes used as a message key in both would still give unrelated
AEAD keys and nonces."""
CHAIN_KEY_CONSTANT: Final = b"\x02"
"""KDF_CK input giving the next chain key (§3.4.4)."""
MESSAGE_KEY_CONSTANT: Final = b"\x01"
"""KDF_CK input giving the message key (§3.4.4)."""

ED25519_PUBLIC_SIZE: Final = nacl.bindings.crypto_sign_PUBLICKEYBYTES
ED25519_SIGNATURE_SIZE: Final = nacl.bindings.crypto_sign_BYTES

_HKDF_MAX_OUTPUT: Final = 255 * HASH_SIZE


def _check_key(name: str, key: bytes, size: int = KEY_SIZE) -> None:
    if not isinstance(key, bytes) or len(key) != size:
        raise ValueError(f"{name} must be {size} bytes")


# --- §3.4.1 HMAC and HKDF ---------------------------------------------------


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA-256 (RFC 2104); ``crypto_auth_hmacsha256`` in libsodium."""
    return hmac.new(key, message, hashlib.sha256).digest()


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 (RFC 5869): extract with ``salt``, then expand ``info`` to ``length`` bytes."""
    if not 0 < length <= _HKDF_MAX_OUTPUT:
        raise ValueError(f"HKDF-SHA-256 output is 1 to {_HKDF_MAX_OUTPUT} bytes")
    prk = hmac_sha256(salt, ikm)
    output = b""
    block = b""
    counter = 1
    while len(output) < length:
        block = hmac_sha256(prk, block + info + bytes([counter]))
        output += block
        counter += 1
    return output[:length]


# --- §3.4.2 X25519 ----------------------------------------------------------


def x25519_public(private: bytes) -> bytes:
    """The X25519 public key of a 32-byte private key (``crypto_scalarmult_base``)."""
    _check_key("an X25519 private key", private)
    return nacl.bindings.crypto_scalarmult_base(private)


def x25519(private: bytes, public: bytes) -> bytes:
    """X25519 shared secret; rejects non-canonical public keys and all-zero outputs.

    An all-zero output means ``public`` is a point of small order (or the
    zero point): libsodium's ``crypto_scalarmult`` refuses it, and so does
    this function, raising :class:`~lien.crypto.errors.InvalidKey`.
    """
    _check_key("an X25519 private key", private)
    if not is_canonical_exchange_key(public):
        raise InvalidKey("The X25519 public key is not a canonical 32-byte encoding.")
    try:
        shared = nacl.bindings.crypto_scalarmult(private, public)
    except nacl.exceptions.RuntimeError:
        raise InvalidKey("The X25519 public key is of small order.") from None
    if hmac.compare_digest(shared, bytes(EXCHANGE_KEY_SIZE)):  # belt and braces; libsodium checks too
        raise InvalidKey("The X25519 public key is of small order.")
    return shared


# --- §3.4.3 to §3.4.5 Double Ratchet KDFs -----------------------------------


def kdf_rk(root_key: bytes, dh_output: bytes) -> tuple[bytes, bytes]:
    """KDF_RK: ``HKDF-SHA-256(salt=root_key, ikm=dh_output, info=ROOT_KDF_INFO, 64)`` split 32 | 32.

    Returns ``(new_root_key, chain_key)`` (§3.4.3).
    """
    _check_key("a root key", root_key)
    _check_key("a DH output", dh_output)
    output = hkdf_sha256(dh_output, salt=root_key, info=ROOT_KDF_INFO, length=2 * KEY_SIZE)
    return output[:KEY_SIZE], output[KEY_SIZE:]


def kdf_ck(chain_key: bytes) -> tuple[bytes, bytes]:
    """KDF_CK: ``(HMAC(ck, 0x02), HMAC(ck, 0x01))`` = ``(next_chain_key, message_key)`` (§3.4.4)."""
    _check_key("a chain key", chain_key)
    return hmac_sha256(chain_key, CHAIN_KEY_CONSTANT), hmac_sha256(chain_key, MESSAGE_KEY_CONSTANT)


_MESSAGE_KEY_INFOS: Final = (MESSAGE_KEY_INFO, GROUP_MESSAGE_KEY_INFO)


def message_aead_key(message_key: bytes, *, info: bytes = MESSAGE_KEY_INFO) -> tuple[bytes, bytes]:
    """The AEAD key and nonce of one message: ``HKDF(salt=0^32, ikm=mk, info, 56)`` split 32 | 24.

    The nonce is derived, not random: every message key encrypts exactly one
    message, so a (key, nonce) pair never repeats, and test vectors are
    reproducible (§3.4.5). ``info`` is :data:`MESSAGE_KEY_INFO` for pairwise
    messages and :data:`GROUP_MESSAGE_KEY_INFO` for group messages (§3.17.3);
    no other value is accepted.
    """
    _check_key("a message key", message_key)
    if info not in _MESSAGE_KEY_INFOS:
        raise ValueError("info must be MESSAGE_KEY_INFO or GROUP_MESSAGE_KEY_INFO")
    output = hkdf_sha256(message_key, salt=ZERO_SALT, info=info, length=KEY_SIZE + AEAD_NONCE_SIZE)
    return output[:KEY_SIZE], output[KEY_SIZE:]


# --- §3.4.6 AEAD --------------------------------------------------------------


def aead_encrypt(
    message_key: bytes, plaintext: bytes, associated_data: bytes, *, info: bytes = MESSAGE_KEY_INFO
) -> bytes:
    """XChaCha20-Poly1305-IETF under the key and nonce derived from ``message_key``; ``ct || tag``."""
    key, nonce = message_aead_key(message_key, info=info)
    return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, associated_data, nonce, key)


def aead_decrypt(
    message_key: bytes, ciphertext: bytes, associated_data: bytes, *, info: bytes = MESSAGE_KEY_INFO
) -> bytes:
    """Inverse of :func:`aead_encrypt`; raises :class:`~lien.crypto.errors.DecryptionFailed`."""
    if len(ciphertext) < AEAD_TAG_SIZE:
        raise DecryptionFailed()
    key, nonce = message_aead_key(message_key, info=info)
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, associated_data, nonce, key
        )
    except nacl.exceptions.CryptoError:
        raise DecryptionFailed() from None


def sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


# --- Ed25519 public keys received from peers (docs/protocol-group.md §3.17.2) ---


def is_valid_ed25519_public(key: bytes) -> bool:
    """Whether ``key`` is a canonical Ed25519 point of prime order (``crypto_core_ed25519_is_valid_point``).

    Every key made by ``crypto_sign_keypair`` passes; the identity, small-order
    points and non-canonical encodings do not. Used on signing keys that arrive
    in sender-key distributions, so that a bad key is refused when installed
    rather than on every message.
    """
    return (
        isinstance(key, bytes)
        and len(key) == ED25519_PUBLIC_SIZE
        and bool(nacl.bindings.crypto_core_ed25519_is_valid_point(key))
    )


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` (``crypto_sign_verify_detached``)."""
    if not isinstance(signature, bytes) or len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    if not isinstance(public_key, bytes) or len(public_key) != ED25519_PUBLIC_SIZE:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
    return True
