"""X3DH session set-up with separate Ed25519 and X25519 identity keys (docs/protocol-crypto.md §3.5).

Follows Signal's X3DH specification with these Lien choices:

* the identity key used in the Diffie-Hellman computations is the device's
  X25519 identity key; the Ed25519 identity key only signs (§3.1);
* the signed prekey is verified with the Ed25519 identity key over
  ``b"lien-signed-prekey-v1\\x00" || uint32_be(id) || prekey`` (§3.2);
* ``SK = HKDF-SHA-256(ikm = 0xFF*32 || DH1 || DH2 || DH3 [|| DH4], salt = 0^32,
  info = b"Lien X3DH v2", L = 32)`` (§3.5.3);
* ``AD = IKs_A || IKx_A || IKs_B || IKx_B`` (128 bytes): the Ed25519 then the
  X25519 identity key of the initiator A, then of the responder B (§3.5.4).

This module only computes; it keeps no state and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lien.crypto import primitives
from lien.crypto.errors import BadPrekeySignature, InvalidKey
from lien.crypto.keys import (
    PREKEY_ID_MAX,
    IdentityKeyPair,
    OneTimePrekeyPair,
    PublicIdentity,
    SignedPrekeyPair,
    is_canonical_exchange_key,
    verify_signed_prekey,
)
from lien.protocol import api

X3DH_PAD: Final = b"\xff" * 32
"""The 32 bytes of 0xFF put before the DH outputs (X3DH's F for X25519)."""
ASSOCIATED_DATA_SIZE: Final = 128


def _check_id(prekey_id: int) -> int:
    if isinstance(prekey_id, bool) or not isinstance(prekey_id, int) or not 0 <= prekey_id <= PREKEY_ID_MAX:
        raise ValueError(f"prekey ids are integers from 0 to {PREKEY_ID_MAX}")
    return prekey_id


@dataclass(frozen=True, slots=True)
class OneTimePrekeyPublic:
    """A peer's one-time prekey as handed out by the server (§3.3)."""

    prekey_id: int
    public_key: bytes

    def __post_init__(self) -> None:
        _check_id(self.prekey_id)
        if not is_canonical_exchange_key(self.public_key):
            raise InvalidKey("A one-time prekey is not a canonical X25519 public key.")


@dataclass(frozen=True, slots=True)
class PrekeyBundle:
    """What the initiator needs from the server to open a session with one device (§3.5.1).

    The constructor checks sizes and encodings, and the signed prekey's
    signature against ``identity.signing_key``: a bundle that exists is a
    bundle whose signed prekey is vouched for by that identity. It raises
    :class:`~lien.crypto.errors.BadPrekeySignature` otherwise.
    """

    identity: PublicIdentity
    signed_prekey_id: int
    signed_prekey: bytes
    signed_prekey_signature: bytes
    one_time_prekey: OneTimePrekeyPublic | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.identity, PublicIdentity):
            raise TypeError("identity must be a PublicIdentity")
        _check_id(self.signed_prekey_id)
        if not is_canonical_exchange_key(self.signed_prekey):
            raise InvalidKey("The signed prekey is not a canonical X25519 public key.")
        if not verify_signed_prekey(
            self.identity.signing_key, self.signed_prekey_id, self.signed_prekey, self.signed_prekey_signature
        ):
            raise BadPrekeySignature()

    @classmethod
    def from_api(cls, bundle: api.KeyBundle) -> PrekeyBundle:
        """The bundle the server returned for one device (``GET /keys/{user}``)."""
        one_time = None
        if bundle.prekey is not None:
            one_time = OneTimePrekeyPublic(bundle.prekey.id, bundle.prekey.key)
        return cls(
            identity=PublicIdentity.from_device(bundle),
            signed_prekey_id=bundle.signed_prekey.id,
            signed_prekey=bundle.signed_prekey.key,
            signed_prekey_signature=bundle.signed_prekey.signature,
            one_time_prekey=one_time,
        )

    def __repr__(self) -> str:
        one_time = None if self.one_time_prekey is None else self.one_time_prekey.prekey_id
        return (
            f"PrekeyBundle(identity={self.identity!r}, signed_prekey_id={self.signed_prekey_id}, "
            f"one_time_prekey_id={one_time})"
        )


def associated_data(initiator: PublicIdentity, responder: PublicIdentity) -> bytes:
    """``AD = IKs_A || IKx_A || IKs_B || IKx_B`` (§3.5.4), 128 bytes."""
    return initiator.signing_key + initiator.exchange_key + responder.signing_key + responder.exchange_key


def _shared_secret(dh_outputs: list[bytes]) -> bytes:
    ikm = X3DH_PAD + b"".join(dh_outputs)
    return primitives.hkdf_sha256(
        ikm, salt=primitives.ZERO_SALT, info=primitives.X3DH_INFO, length=primitives.KEY_SIZE
    )


class X3dhSecret:
    """The outcome of X3DH on either side: ``SK`` (secret) and ``AD`` (public)."""

    __slots__ = ("_shared_secret", "associated_data", "dh_outputs")

    def __init__(self, shared_secret: bytes, associated_data: bytes, dh_outputs: tuple[bytes, ...]) -> None:
        self._shared_secret = shared_secret
        self.associated_data = associated_data
        self.dh_outputs = dh_outputs
        """DH1 … DH4, kept only so that test vectors can show every step."""

    @property
    def shared_secret(self) -> bytes:
        return self._shared_secret

    def __repr__(self) -> str:
        return f"X3dhSecret(dh_count={len(self.dh_outputs)})"


def initiate(own: IdentityKeyPair, bundle: PrekeyBundle, ephemeral_private: bytes) -> X3dhSecret:
    """Initiator A's side (§3.5.2): DH1..DH4 with the ephemeral key ``EK_A``, then ``SK`` and ``AD``.

    ``DH1 = DH(IKx_A, SPK_B)``, ``DH2 = DH(EK_A, IKx_B)``, ``DH3 = DH(EK_A, SPK_B)``,
    ``DH4 = DH(EK_A, OPK_B)`` when the bundle holds a one-time prekey.
    """
    identity_private = own.secret_bytes()[1]
    dh_outputs = [
        primitives.x25519(identity_private, bundle.signed_prekey),
        primitives.x25519(ephemeral_private, bundle.identity.exchange_key),
        primitives.x25519(ephemeral_private, bundle.signed_prekey),
    ]
    if bundle.one_time_prekey is not None:
        dh_outputs.append(primitives.x25519(ephemeral_private, bundle.one_time_prekey.public_key))
    return X3dhSecret(
        _shared_secret(dh_outputs), associated_data(own.public, bundle.identity), tuple(dh_outputs)
    )


def respond(
    own: IdentityKeyPair,
    signed_prekey: SignedPrekeyPair,
    one_time_prekey: OneTimePrekeyPair | None,
    initiator: PublicIdentity,
    ephemeral_public: bytes,
) -> X3dhSecret:
    """Responder B's side (§3.5.5): the same four DH values from B's private keys."""
    identity_private = own.secret_bytes()[1]
    spk_private = signed_prekey.private_bytes()
    dh_outputs = [
        primitives.x25519(spk_private, initiator.exchange_key),
        primitives.x25519(identity_private, ephemeral_public),
        primitives.x25519(spk_private, ephemeral_public),
    ]
    if one_time_prekey is not None:
        dh_outputs.append(primitives.x25519(one_time_prekey.private_bytes(), ephemeral_public))
    return X3dhSecret(_shared_secret(dh_outputs), associated_data(initiator, own.public), tuple(dh_outputs))
