"""Sender-key chains and their bounds, without I/O (docs/protocol-group.md §3.17.2, §3.17.3, §3.17.7).

A sender key is one symmetric chain per (group, sender device), stepped with
the KDF_CK of §3.4.4: ``message key = HMAC(CK, 0x01)``, ``next CK = HMAC(CK, 0x02)``.
The sender holds the chain key of its next iteration and a dedicated
Ed25519 key pair (:class:`SenderSigningKey`); each member device holds a
:class:`ReceiverChain` per sender key it was given, which can only move
forward, keeping a bounded number of skipped message keys for messages that
arrive out of order (:class:`SenderKeyLimits`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

import nacl.signing

from lien.crypto import primitives
from lien.crypto.errors import InvalidKey, ReplayedMessage, TooManySkipped

MAX_SKIP: Final = 1000
MAX_SKIPPED_KEYS: Final = 2000
LIMITS_CEILING: Final = 100_000
"""No configured bound may exceed this: the stored state stays small."""
MAX_RECEIVED_KEYS: Final = 2
"""Sender keys a member device keeps per sender device: the current one and the previous one (§3.17.9)."""
END_OF_CHAIN: Final = 2**32
"""Iteration of a chain whose last message (iteration 2**32 - 1) was used: nothing more can be sent."""


@dataclass(frozen=True, slots=True)
class SenderKeyLimits:
    """Bounds on a receiving chain (§3.17.7); the receiver's local policy, not part of the wire format."""

    max_skip: int = MAX_SKIP
    """Iterations one message may make the receiver skip."""
    max_skipped_keys: int = MAX_SKIPPED_KEYS
    """Skipped message keys kept per sender key; the oldest (lowest iteration) go first."""

    def __post_init__(self) -> None:
        for value in (self.max_skip, self.max_skipped_keys):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LIMITS_CEILING:
                raise ValueError(f"sender-key limits are integers from 0 to {LIMITS_CEILING}")
        if self.max_skipped_keys < self.max_skip:
            raise ValueError("max_skipped_keys must be at least max_skip")


DEFAULT_SENDER_KEY_LIMITS: Final = SenderKeyLimits()


class SenderSigningKey:
    """The Ed25519 key pair of one sender key, used for nothing else (§3.17.2).

    Not the device's identity key: every member device learns the public half
    from the distribution and checks each body's signature with it.
    ``repr`` shows the public key only.
    """

    __slots__ = ("_public_key", "_signing_key")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        if not isinstance(signing_key, nacl.signing.SigningKey):
            raise TypeError("SenderSigningKey needs a nacl SigningKey")
        self._signing_key = signing_key
        self._public_key = bytes(signing_key.verify_key)

    @classmethod
    def from_seed(cls, seed: bytes) -> SenderSigningKey:
        """The key pair of a 32-byte Ed25519 seed (``crypto_sign_seed_keypair``)."""
        if not isinstance(seed, bytes) or len(seed) != primitives.KEY_SIZE:
            raise InvalidKey("An Ed25519 seed is 32 bytes.")
        return cls(nacl.signing.SigningKey(seed))

    def seed_bytes(self) -> bytes:
        """The 32-byte seed, for the keystore only."""
        return bytes(self._signing_key)

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._signing_key.sign(message).signature

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SenderSigningKey):
            return NotImplemented
        return hmac.compare_digest(self.seed_bytes(), other.seed_bytes())

    def __hash__(self) -> int:
        return hash(self._public_key)

    def __repr__(self) -> str:
        return f"SenderSigningKey(public_key={self._public_key[:8].hex()}…)"


class ReceiverChain:
    """One sender key as a member device holds it (§3.17.7).

    ``chain_key`` is the chain key of ``iteration``, the next iteration not
    yet derived; ``skipped`` maps earlier iterations whose messages have not
    arrived to their message keys, lowest iteration first. Nothing here can
    derive the key of an iteration below ``iteration`` that is not in
    ``skipped``. ``repr`` shows counters only.
    """

    __slots__ = ("chain_key", "iteration", "key_id", "signing_key", "skipped")

    def __init__(
        self,
        *,
        key_id: int,
        signing_key: bytes,
        iteration: int,
        chain_key: bytes,
        skipped: dict[int, bytes] | None = None,
    ) -> None:
        self.key_id = key_id
        self.signing_key = signing_key
        self.iteration = iteration
        self.chain_key = chain_key
        self.skipped: dict[int, bytes] = dict(skipped or {})

    def copy(self) -> ReceiverChain:
        return ReceiverChain(
            key_id=self.key_id,
            signing_key=self.signing_key,
            iteration=self.iteration,
            chain_key=self.chain_key,
            skipped=self.skipped,
        )

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this sender key's signature of ``message``."""
        return primitives.ed25519_verify(self.signing_key, message, signature)

    def message_key_for(self, iteration: int, limits: SenderKeyLimits) -> bytes:
        """The message key of ``iteration``, skipping (and keeping) the keys of any iterations before it.

        Raises :class:`~lien.crypto.errors.ReplayedMessage` when that key was
        already used or dropped (or lies before the iteration this chain was
        installed at), and :class:`~lien.crypto.errors.TooManySkipped` when
        more than ``limits.max_skip`` keys would be skipped. The chain may be
        half-updated when this raises: work on a :meth:`copy`.
        """
        stored = self.skipped.pop(iteration, None)
        if stored is not None:
            return stored
        if iteration < self.iteration:
            raise ReplayedMessage()
        if iteration - self.iteration > limits.max_skip:
            raise TooManySkipped()
        chain_key = self.chain_key
        while self.iteration < iteration:
            chain_key, message_key = primitives.kdf_ck(chain_key)
            self.skipped[self.iteration] = message_key
            self.iteration += 1
        while len(self.skipped) > limits.max_skipped_keys:
            del self.skipped[next(iter(self.skipped))]
        self.chain_key, message_key = primitives.kdf_ck(chain_key)
        self.iteration += 1
        return message_key

    def __repr__(self) -> str:
        return f"ReceiverChain(key_id={self.key_id}, iteration={self.iteration}, skipped={len(self.skipped)})"
