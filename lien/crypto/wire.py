"""The bytes of a format-2 message body, the one place that encodes and parses them (§3.7).

A body is what the server stores and forwards for one device (a ``Copy.body``):
opaque to the server, at most ``limits.MAX_COPY_BYTES``. Layout (all integers
big-endian, docs/protocol-crypto.md §3.7)::

    ratchet message  = 0x02 || 0x01 || header (40) || ciphertext (>= 16)
    prekey message   = 0x02 || 0x02 || x3dh (105) || header (40) || ciphertext (>= 16)
    header           = ratchet_key (32) || uint32 previous_chain_length || uint32 message_number
    x3dh             = IKs_A (32) || IKx_A (32) || EK_A (32) || uint32 signed_prekey_id
                       || uint8 has_one_time_prekey (0 or 1) || uint32 one_time_prekey_id (0 when absent)

Everything before the ciphertext is the *authenticated prefix*: it is part of
the AEAD associated data, so no byte of a body can change unnoticed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from lien.crypto.errors import InvalidKey, MalformedMessage, UnsupportedFormat
from lien.crypto.keys import PREKEY_ID_MAX, PublicIdentity, is_canonical_exchange_key
from lien.crypto.primitives import AEAD_TAG_SIZE
from lien.protocol import limits

FORMAT_VERSION: Final = 0x02
"""First byte of every body of this format; 0x01 is the legacy sealed-box format."""
LEGACY_FORMAT_VERSION: Final = 0x01
TYPE_RATCHET: Final = 0x01
TYPE_PREKEY: Final = 0x02
HEADER_SIZE: Final = 40
X3DH_DATA_SIZE: Final = 105
MAX_COUNTER: Final = 2**32 - 1
"""Largest ``previous_chain_length`` or ``message_number`` (uint32)."""
MAX_BODY_BYTES: Final = limits.MAX_COPY_BYTES

_HEADER: Final = struct.Struct(">32sII")
_X3DH: Final = struct.Struct(">32s32s32sIBI")


@dataclass(frozen=True, slots=True)
class RatchetHeader:
    """The Double Ratchet header: sender's ratchet public key, PN and N (§3.7.2)."""

    ratchet_key: bytes
    previous_chain_length: int
    message_number: int

    def __post_init__(self) -> None:
        if not is_canonical_exchange_key(self.ratchet_key):
            raise InvalidKey("The ratchet key is not a canonical X25519 public key.")
        for value in (self.previous_chain_length, self.message_number):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNTER:
                raise ValueError("header counters are integers from 0 to 2**32 - 1")

    def encode(self) -> bytes:
        return _HEADER.pack(self.ratchet_key, self.previous_chain_length, self.message_number)

    @classmethod
    def decode(cls, data: bytes) -> RatchetHeader:
        ratchet_key, previous, number = _HEADER.unpack(data)
        return cls(ratchet_key, previous, number)


@dataclass(frozen=True, slots=True)
class X3dhData:
    """What a prekey message tells the responder so it can run X3DH (§3.7.3)."""

    sender: PublicIdentity
    ephemeral_key: bytes
    signed_prekey_id: int
    one_time_prekey_id: int | None

    def __post_init__(self) -> None:
        if not is_canonical_exchange_key(self.ephemeral_key):
            raise InvalidKey("The ephemeral key is not a canonical X25519 public key.")
        for prekey_id in (self.signed_prekey_id, self.one_time_prekey_id):
            if prekey_id is not None and (
                isinstance(prekey_id, bool)
                or not isinstance(prekey_id, int)
                or not 0 <= prekey_id <= PREKEY_ID_MAX
            ):
                raise ValueError(f"prekey ids are integers from 0 to {PREKEY_ID_MAX}")

    def encode(self) -> bytes:
        has_one_time = 0 if self.one_time_prekey_id is None else 1
        return _X3DH.pack(
            self.sender.signing_key,
            self.sender.exchange_key,
            self.ephemeral_key,
            self.signed_prekey_id,
            has_one_time,
            self.one_time_prekey_id or 0,
        )

    @classmethod
    def decode(cls, data: bytes) -> X3dhData:
        signing, exchange, ephemeral, spk_id, has_one_time, opk_id = _X3DH.unpack(data)
        if has_one_time not in (0, 1) or (has_one_time == 0 and opk_id != 0):
            raise MalformedMessage()
        if spk_id > PREKEY_ID_MAX or opk_id > PREKEY_ID_MAX:
            raise MalformedMessage()
        return cls(PublicIdentity(signing, exchange), ephemeral, spk_id, opk_id if has_one_time else None)


@dataclass(frozen=True, slots=True)
class Body:
    """A parsed body: optional X3DH data, the header, the ciphertext, and the authenticated prefix."""

    x3dh: X3dhData | None
    header: RatchetHeader
    ciphertext: bytes
    prefix: bytes

    @property
    def is_prekey_message(self) -> bool:
        return self.x3dh is not None

    def __repr__(self) -> str:
        kind = "prekey" if self.x3dh is not None else "ratchet"
        return f"Body({kind}, n={self.header.message_number}, ciphertext={len(self.ciphertext)} bytes)"


def encode_prefix(x3dh: X3dhData | None, header: RatchetHeader) -> bytes:
    """Version, type, X3DH data when present, and header: the bytes before the ciphertext."""
    if x3dh is None:
        return bytes([FORMAT_VERSION, TYPE_RATCHET]) + header.encode()
    return bytes([FORMAT_VERSION, TYPE_PREKEY]) + x3dh.encode() + header.encode()


def parse_body(body: bytes) -> Body:
    """Split a body into its parts, checking every length and encoding.

    Raises :class:`~lien.crypto.errors.UnsupportedFormat` for another format's
    first byte (0x01 is the legacy format) and
    :class:`~lien.crypto.errors.MalformedMessage` for anything else wrong.
    """
    if not isinstance(body, bytes):
        raise TypeError("a body is bytes")
    if not body:
        raise MalformedMessage()
    if body[0] != FORMAT_VERSION:
        raise UnsupportedFormat()
    if len(body) > MAX_BODY_BYTES or len(body) < 2:
        raise MalformedMessage()
    if body[1] == TYPE_RATCHET:
        x3dh_size = 0
    elif body[1] == TYPE_PREKEY:
        x3dh_size = X3DH_DATA_SIZE
    else:
        raise MalformedMessage()
    header_start = 2 + x3dh_size
    ciphertext_start = header_start + HEADER_SIZE
    if len(body) < ciphertext_start + AEAD_TAG_SIZE:
        raise MalformedMessage()
    try:
        x3dh = X3dhData.decode(body[2:header_start]) if x3dh_size else None
        header = RatchetHeader.decode(body[header_start:ciphertext_start])
    except InvalidKey:
        raise MalformedMessage() from None
    return Body(x3dh, header, body[ciphertext_start:], body[:ciphertext_start])
