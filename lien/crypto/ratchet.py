"""The Double Ratchet state machine, without the AEAD and without I/O (docs/protocol-crypto.md §3.6).

Signal's Double Ratchet specification, with its recommended KDFs (§3.4) and
these Lien bounds on skipped message keys (§3.6.4):

* one message may make the receiver skip at most ``max_skip`` keys in one
  chain (else :class:`~lien.crypto.errors.TooManySkipped`);
* at most ``max_skipped_keys`` keys are stored; the oldest go first;
* a skipped key is dropped once ``skipped_key_max_steps`` DH ratchet steps
  happened on the receiving side after it was stored.

A message key leaves the state as soon as it is handed out: :meth:`RatchetState.next_sending_key`
advances the sending chain, and :meth:`RatchetState.message_key_for` advances the
receiving chain or pops the skipped key. Callers that must be able to roll
back (a message that then fails to authenticate) work on :meth:`RatchetState.copy`
and keep it only on success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from lien.crypto import primitives
from lien.crypto.errors import DecryptionFailed, ReplayedMessage, SessionExhausted, TooManySkipped
from lien.crypto.wire import MAX_COUNTER, RatchetHeader

RandomSource = Callable[[int], bytes]
"""Returns that many random bytes; the OS source in production, a seeded one for test vectors."""

MAX_SKIP: Final = 1000
MAX_SKIPPED_KEYS: Final = 2000
SKIPPED_KEY_MAX_STEPS: Final = 20
LIMITS_CEILING: Final = 100_000
"""No configured bound may exceed this: the stored state stays small."""


@dataclass(frozen=True, slots=True)
class RatchetLimits:
    """Bounds on skipped message keys (§3.6.4); the receiver's local policy, not part of the wire format."""

    max_skip: int = MAX_SKIP
    """Keys one message may make the receiver skip in one chain."""
    max_skipped_keys: int = MAX_SKIPPED_KEYS
    """Skipped keys kept in all; the oldest are dropped beyond this."""
    skipped_key_max_steps: int = SKIPPED_KEY_MAX_STEPS
    """Receiving DH ratchet steps after which a skipped key is dropped; also how many past ratchet keys
    are remembered to report replays."""

    def __post_init__(self) -> None:
        for value in (self.max_skip, self.max_skipped_keys, self.skipped_key_max_steps):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LIMITS_CEILING:
                raise ValueError(f"ratchet limits are integers from 0 to {LIMITS_CEILING}")
        if self.max_skipped_keys < self.max_skip:
            raise ValueError("max_skipped_keys must be at least max_skip")


DEFAULT_LIMITS: Final = RatchetLimits()


class SkippedKey(NamedTuple):
    message_key: bytes
    stored_at_step: int
    """Value of ``receive_steps`` when the key was stored."""


class RatchetState:
    """One side of a Double Ratchet: root, sending and receiving chains, skipped keys (§3.6.1).

    Field names follow the specification: ``DHs`` is :attr:`sending_private`,
    ``DHr`` :attr:`receiving_key`, ``RK`` :attr:`root_key`, ``CKs``/``CKr``
    the chain keys, ``Ns``/``Nr``/``PN`` the counters, ``MKSKIPPED``
    :attr:`skipped`. ``repr`` shows counters only.
    """

    __slots__ = (
        "previous_receiving_keys",
        "previous_sending_length",
        "receive_steps",
        "receiving_chain_key",
        "receiving_key",
        "receiving_length",
        "root_key",
        "sending_chain_key",
        "sending_length",
        "sending_private",
        "sending_public",
        "skipped",
    )

    def __init__(
        self,
        *,
        root_key: bytes,
        sending_private: bytes,
        receiving_key: bytes | None,
        sending_chain_key: bytes | None,
        receiving_chain_key: bytes | None,
        sending_length: int = 0,
        receiving_length: int = 0,
        previous_sending_length: int = 0,
        receive_steps: int = 0,
        previous_receiving_keys: list[bytes] | None = None,
        skipped: dict[tuple[bytes, int], SkippedKey] | None = None,
    ) -> None:
        self.root_key = root_key
        self.sending_private = sending_private
        self.sending_public = primitives.x25519_public(sending_private)
        self.receiving_key = receiving_key
        self.sending_chain_key = sending_chain_key
        self.receiving_chain_key = receiving_chain_key
        self.sending_length = sending_length
        self.receiving_length = receiving_length
        self.previous_sending_length = previous_sending_length
        self.receive_steps = receive_steps
        self.previous_receiving_keys: list[bytes] = list(previous_receiving_keys or [])
        self.skipped: dict[tuple[bytes, int], SkippedKey] = dict(skipped or {})

    # --- initialisation (§3.6.2) ------------------------------------------

    @classmethod
    def for_initiator(
        cls, shared_secret: bytes, peer_ratchet_key: bytes, own_ratchet_private: bytes
    ) -> RatchetState:
        """Alice: ``DHs`` fresh, ``DHr = SPK_B``, ``RK, CKs = KDF_RK(SK, DH(DHs, DHr))``."""
        root_key, sending_chain_key = primitives.kdf_rk(
            shared_secret, primitives.x25519(own_ratchet_private, peer_ratchet_key)
        )
        return cls(
            root_key=root_key,
            sending_private=own_ratchet_private,
            receiving_key=peer_ratchet_key,
            sending_chain_key=sending_chain_key,
            receiving_chain_key=None,
        )

    @classmethod
    def for_responder(cls, shared_secret: bytes, signed_prekey_private: bytes) -> RatchetState:
        """Bob: ``DHs = SPK_B``, ``RK = SK``, no chains until Alice's first message arrives."""
        return cls(
            root_key=shared_secret,
            sending_private=signed_prekey_private,
            receiving_key=None,
            sending_chain_key=None,
            receiving_chain_key=None,
        )

    def copy(self) -> RatchetState:
        """A working copy for one encrypt or decrypt; the sending public key is copied, not derived again.

        Every message makes one (the state changes only once the message is
        through), so deriving the public key here cost an X25519 base-point
        multiplication per message.
        """
        twin = RatchetState.__new__(RatchetState)
        for name in RatchetState.__slots__:
            setattr(twin, name, getattr(self, name))
        twin.previous_receiving_keys = list(self.previous_receiving_keys)
        twin.skipped = dict(self.skipped)
        return twin

    # --- sending (§3.6.3) ---------------------------------------------------

    @property
    def can_send(self) -> bool:
        return self.sending_chain_key is not None

    def next_sending_key(self) -> tuple[RatchetHeader, bytes]:
        """``CKs, mk = KDF_CK(CKs)``; the header ``(DHs, PN, Ns)``; then ``Ns += 1``."""
        if self.sending_chain_key is None:
            raise RuntimeError("this side cannot send before it has received the first message")
        if self.sending_length > MAX_COUNTER:
            raise SessionExhausted()
        header = RatchetHeader(self.sending_public, self.previous_sending_length, self.sending_length)
        self.sending_chain_key, message_key = primitives.kdf_ck(self.sending_chain_key)
        self.sending_length += 1
        return header, message_key

    # --- receiving (§3.6.4, §3.6.5) -----------------------------------------

    def message_key_for(
        self, header: RatchetHeader, random_source: RandomSource, limits: RatchetLimits
    ) -> bytes:
        """The message key for ``header``, after any skip and DH ratchet step it needs.

        Raises :class:`~lien.crypto.errors.ReplayedMessage` when the key was
        already used or dropped, and :class:`~lien.crypto.errors.TooManySkipped`
        when too many keys would be skipped. The state may be half-updated when
        this raises: work on a :meth:`copy`.
        """
        stored = self.skipped.pop((header.ratchet_key, header.message_number), None)
        if stored is not None:
            return stored.message_key
        if self.receiving_key is not None and header.ratchet_key == self.receiving_key:
            if self.receiving_chain_key is None:
                raise DecryptionFailed()  # the peer's signed prekey is never a sending ratchet key
            if header.message_number < self.receiving_length:
                raise ReplayedMessage()
        elif header.ratchet_key in self.previous_receiving_keys:
            raise ReplayedMessage()
        else:
            self._skip_until(header.previous_chain_length, limits)
            self._dh_ratchet(header.ratchet_key, random_source, limits)
        self._skip_until(header.message_number, limits)
        assert self.receiving_chain_key is not None
        self.receiving_chain_key, message_key = primitives.kdf_ck(self.receiving_chain_key)
        self.receiving_length += 1
        return message_key

    def _skip_until(self, until: int, limits: RatchetLimits) -> None:
        if self.receiving_chain_key is None or self.receiving_key is None:
            return
        if until - self.receiving_length > limits.max_skip:
            raise TooManySkipped()
        chain_key = self.receiving_chain_key
        while self.receiving_length < until:
            chain_key, message_key = primitives.kdf_ck(chain_key)
            self.skipped[(self.receiving_key, self.receiving_length)] = SkippedKey(
                message_key, self.receive_steps
            )
            self.receiving_length += 1
        self.receiving_chain_key = chain_key
        while len(self.skipped) > limits.max_skipped_keys:
            del self.skipped[next(iter(self.skipped))]

    def _dh_ratchet(self, ratchet_key: bytes, random_source: RandomSource, limits: RatchetLimits) -> None:
        if self.receiving_key is not None:
            self.previous_receiving_keys.append(self.receiving_key)
            excess = len(self.previous_receiving_keys) - limits.skipped_key_max_steps
            if excess > 0:
                del self.previous_receiving_keys[:excess]
        self.previous_sending_length = self.sending_length
        self.sending_length = 0
        self.receiving_length = 0
        self.receiving_key = ratchet_key
        self.root_key, self.receiving_chain_key = primitives.kdf_rk(
            self.root_key, primitives.x25519(self.sending_private, ratchet_key)
        )
        self.sending_private = random_source(primitives.KEY_SIZE)
        self.sending_public = primitives.x25519_public(self.sending_private)
        self.root_key, self.sending_chain_key = primitives.kdf_rk(
            self.root_key, primitives.x25519(self.sending_private, ratchet_key)
        )
        self.receive_steps += 1
        self.skipped = {
            index: key
            for index, key in self.skipped.items()
            if self.receive_steps - key.stored_at_step <= limits.skipped_key_max_steps
        }

    def __repr__(self) -> str:
        return (
            f"RatchetState(Ns={self.sending_length}, Nr={self.receiving_length}, "
            f"PN={self.previous_sending_length}, steps={self.receive_steps}, skipped={len(self.skipped)})"
        )
