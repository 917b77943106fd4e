"""The bytes of group messages and sender-key distributions, the one place that encodes and parses them.

docs/protocol-group.md §3.17.4 and §3.17.5. All integers are big-endian;
``str8`` is a uint8 byte length then the (ASCII) group id::

    distribution = uint8 version (0x01) || str8 group_id || uint32 key_id || uint32 iteration
                   || chain_key (32) || signing_key (32, Ed25519 public)
    header       = 0x03 || uint32 key_id || uint32 iteration                         (9 bytes)
    body         = header || ciphertext (>= 16) || signature (64)
    AEAD ad      = b"lien-group-message-v1\\x00" || str8 group_id || header
    signed       = b"lien-group-body-v1\\x00" || str8 group_id || header || ciphertext

A body is what the server stores once and fans out to every member device;
at most ``limits.MAX_COPY_BYTES``. The Ed25519 signature is by the signing key
of the sender key (not the identity key), so every member can check that the
body comes from the holder of that sender key and that no byte changed.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final

from lien.crypto import primitives
from lien.crypto.errors import InvalidDistribution, MalformedMessage, UnsupportedFormat
from lien.protocol import limits

GROUP_FORMAT_VERSION: Final = 0x03
"""First byte of a group body; 0x02 is a pairwise body, 0x01 the legacy format (§3.7.1)."""
DISTRIBUTION_VERSION: Final = 0x01
"""First byte of a sender-key distribution (§3.17.4)."""
GROUP_AD_DOMAIN: Final = b"lien-group-message-v1\x00"
"""Prefix of a group body's AEAD associated data (§3.17.5)."""
GROUP_BODY_SIGNATURE_DOMAIN: Final = b"lien-group-body-v1\x00"
"""Prefix of what a sender key's signing key signs (§3.17.5)."""
DISTRIBUTION_CONTENT_TYPE: Final = "application/vnd.lien.sender-key"
"""Content type of the pairwise payload carrying a distribution, in standard base64 (§3.17.4.3)."""
GROUP_HEADER_SIZE: Final = 9
SIGNATURE_SIZE: Final = primitives.ED25519_SIGNATURE_SIZE
MIN_GROUP_BODY_BYTES: Final = GROUP_HEADER_SIZE + primitives.AEAD_TAG_SIZE + SIGNATURE_SIZE
MAX_GROUP_BODY_BYTES: Final = limits.MAX_COPY_BYTES
MAX_KEY_ID: Final = 2**32 - 1
MAX_ITERATION: Final = 2**32 - 1
"""Largest iteration a body can carry (uint32); a sender key that used it must be replaced."""

_GROUP_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""Same rule as a group conversation id (§3.8.1)."""
_HEADER: Final = struct.Struct(">BII")
_COUNTERS: Final = struct.Struct(">II")
_DISTRIBUTION_TAIL: Final = _COUNTERS.size + primitives.KEY_SIZE + primitives.ED25519_PUBLIC_SIZE


def check_group_id(group_id: str) -> str:
    """A group id: 1 to 64 characters ``[A-Za-z0-9_.:-]``; ``ValueError`` otherwise."""
    if not isinstance(group_id, str) or not _GROUP_ID.fullmatch(group_id):
        raise ValueError("not a valid group id")
    return group_id


def _str8(group_id: str) -> bytes:
    data = check_group_id(group_id).encode("ascii")
    return bytes([len(data)]) + data


def _check_u32(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KEY_ID:
        raise ValueError(f"{name} is an integer from 0 to 2**32 - 1")


# --- distribution (§3.17.4) -------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class SenderKeyDistribution:
    """What a sender device gives each member device so it can read its group messages (§3.17.4).

    ``chain_key`` is the chain key *at* ``iteration``: the receiver can derive
    the message keys of ``iteration`` and later, never earlier ones. It is a
    secret: ``repr`` leaves it out and instances do not compare (use
    :func:`hmac.compare_digest` on :meth:`encode` where needed).
    """

    group_id: str
    key_id: int
    iteration: int
    chain_key: bytes
    signing_key: bytes
    """The Ed25519 public key of this sender key; verifies every body made with it."""

    def __post_init__(self) -> None:
        check_group_id(self.group_id)
        _check_u32("key_id", self.key_id)
        _check_u32("iteration", self.iteration)
        if not isinstance(self.chain_key, bytes) or len(self.chain_key) != primitives.KEY_SIZE:
            raise ValueError("a chain key is 32 bytes")
        if not primitives.is_valid_ed25519_public(self.signing_key):
            raise ValueError("not a valid Ed25519 public key")

    def encode(self) -> bytes:
        return b"".join(
            (
                bytes([DISTRIBUTION_VERSION]),
                _str8(self.group_id),
                _COUNTERS.pack(self.key_id, self.iteration),
                self.chain_key,
                self.signing_key,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> SenderKeyDistribution:
        """Parse a distribution; :class:`~lien.crypto.errors.InvalidDistribution` if anything is wrong."""
        if not isinstance(data, bytes):
            raise TypeError("a distribution is bytes")
        if len(data) < 2 or data[0] != DISTRIBUTION_VERSION:
            raise InvalidDistribution()
        end_of_id = 2 + data[1]
        if len(data) != end_of_id + _DISTRIBUTION_TAIL:
            raise InvalidDistribution()
        key_id, iteration = _COUNTERS.unpack(data[end_of_id : end_of_id + _COUNTERS.size])
        chain_start = end_of_id + _COUNTERS.size
        signing_start = chain_start + primitives.KEY_SIZE
        try:
            return cls(
                data[2:end_of_id].decode("ascii"),
                key_id,
                iteration,
                data[chain_start:signing_start],
                data[signing_start:],
            )
        except ValueError:  # UnicodeDecodeError is a ValueError
            raise InvalidDistribution() from None

    def __repr__(self) -> str:
        return (
            f"SenderKeyDistribution(group_id={self.group_id!r}, key_id={self.key_id}, "
            f"iteration={self.iteration}, signing_key={self.signing_key[:8].hex()}…)"
        )


# --- group body (§3.17.5) ---------------------------------------------------


def encode_group_header(key_id: int, iteration: int) -> bytes:
    """``0x03 || uint32 key_id || uint32 iteration``."""
    _check_u32("key_id", key_id)
    _check_u32("iteration", iteration)
    return _HEADER.pack(GROUP_FORMAT_VERSION, key_id, iteration)


def group_associated_data(group_id: str, header: bytes) -> bytes:
    """The AEAD associated data: ``b"lien-group-message-v1\\x00" || str8 group_id || header``."""
    return GROUP_AD_DOMAIN + _str8(group_id) + header


def group_body_signing_input(group_id: str, signed_part: bytes) -> bytes:
    """What the sender key signs: ``b"lien-group-body-v1\\x00" || str8 group_id || header || ciphertext``."""
    return GROUP_BODY_SIGNATURE_DOMAIN + _str8(group_id) + signed_part


@dataclass(frozen=True, slots=True)
class GroupBody:
    """A parsed group body (§3.17.5)."""

    key_id: int
    iteration: int
    header: bytes
    ciphertext: bytes
    signature: bytes

    @property
    def signed_part(self) -> bytes:
        """``header || ciphertext``: everything before the signature."""
        return self.header + self.ciphertext

    def __repr__(self) -> str:
        return (
            f"GroupBody(key_id={self.key_id}, iteration={self.iteration}, "
            f"ciphertext={len(self.ciphertext)} bytes)"
        )


def parse_group_body(body: bytes) -> GroupBody:
    """Split a group body into its parts, checking the version and every length.

    Raises :class:`~lien.crypto.errors.UnsupportedFormat` when byte 0 is not
    0x03 (0x02 is a pairwise body: see :func:`lien.crypto.wire.parse_body`) and
    :class:`~lien.crypto.errors.MalformedMessage` for an empty, short or
    oversized body. Nothing is verified here.
    """
    if not isinstance(body, bytes):
        raise TypeError("a body is bytes")
    if not body:
        raise MalformedMessage()
    if body[0] != GROUP_FORMAT_VERSION:
        raise UnsupportedFormat()
    if not MIN_GROUP_BODY_BYTES <= len(body) <= MAX_GROUP_BODY_BYTES:
        raise MalformedMessage()
    _, key_id, iteration = _HEADER.unpack(body[:GROUP_HEADER_SIZE])
    return GroupBody(
        key_id=key_id,
        iteration=iteration,
        header=body[:GROUP_HEADER_SIZE],
        ciphertext=body[GROUP_HEADER_SIZE:-SIGNATURE_SIZE],
        signature=body[-SIGNATURE_SIZE:],
    )


def group_body_key_id(body: bytes) -> int:
    """The ``key_id`` a group body names, e.g. to ask its sender for that key after ``unknown-sender-key``."""
    return parse_group_body(body).key_id
