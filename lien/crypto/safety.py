"""Safety numbers: what two users compare to know they see each other's real devices (§3.10).

Modelled on Signal's numeric fingerprint, with one change: a Lien user has
several devices, so each side's fingerprint covers the *set* of that user's
device identities, Ed25519 and X25519 keys both (the X25519 identity key is
not certified by the Ed25519 key in §3.1, so both must be compared).

For one user (``u16``/``u8`` big-endian lengths)::

    keys    = sorted(IKs || IKx for each device)           # 64 bytes each, distinct, sorted bytewise
    digest  = SHA-512(uint16 version (1) || uint8 len(username) || username
                      || uint16 len(keys) || keys...)
    repeat 5200 times: digest = SHA-512(digest || keys...)
    digits  = for each of the first six 5-byte chunks of digest:
                  uint40_be(chunk) mod 100000, written as 5 digits          -> 30 digits

The safety number is the two users' 30-digit strings, the smaller one first
(so both users see the same 60 digits), shown as 12 groups of 5. It changes
whenever either user adds, removes or replaces a device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from lien.crypto.keys import PublicIdentity
from lien.protocol import limits

SAFETY_NUMBER_VERSION: Final = 1
ITERATIONS: Final = 5200
DIGITS_PER_USER: Final = 30
_CHUNKS: Final = 6
_CHUNK_BYTES: Final = 5


def _key_material(devices: Iterable[PublicIdentity]) -> list[bytes]:
    keys = sorted({device.signing_key + device.exchange_key for device in devices})
    if not keys:
        raise ValueError("a user has at least one device")
    if len(keys) > limits.MAX_DEVICES_PER_USER:
        raise ValueError(f"a user has at most {limits.MAX_DEVICES_PER_USER} devices")
    return keys


def user_fingerprint(username: str, devices: Iterable[PublicIdentity]) -> str:
    """The 30 digits of one user: their username and the identity keys of all their devices."""
    name = username.encode("utf-8")
    if not 0 < len(name) < 256:
        raise ValueError("username must be 1 to 255 bytes of UTF-8")
    keys = _key_material(devices)
    joined = b"".join(keys)
    digest = hashlib.sha512(
        SAFETY_NUMBER_VERSION.to_bytes(2, "big")
        + len(name).to_bytes(1, "big")
        + name
        + len(keys).to_bytes(2, "big")
        + joined
    ).digest()
    for _ in range(ITERATIONS):
        digest = hashlib.sha512(digest + joined).digest()
    return "".join(
        f"{int.from_bytes(digest[index * _CHUNK_BYTES : (index + 1) * _CHUNK_BYTES], 'big') % 100_000:05d}"
        for index in range(_CHUNKS)
    )


@dataclass(frozen=True, slots=True)
class SafetyNumber:
    """60 digits, the same for both users of a pair."""

    digits: str

    def groups(self) -> list[str]:
        """Twelve groups of five digits, for display."""
        return [self.digits[start : start + 5] for start in range(0, len(self.digits), 5)]

    def __str__(self) -> str:
        return " ".join(self.groups())


def safety_number(
    user_a: str, devices_a: Iterable[PublicIdentity], user_b: str, devices_b: Iterable[PublicIdentity]
) -> SafetyNumber:
    """The safety number of two users; swapping ``a`` and ``b`` gives the same number."""
    if user_a == user_b:
        raise ValueError("a safety number is between two different users")
    first, second = sorted((user_fingerprint(user_a, devices_a), user_fingerprint(user_b, devices_b)))
    return SafetyNumber(first + second)
