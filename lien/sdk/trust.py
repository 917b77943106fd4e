"""Which device identities of a correspondent the user has accepted (docs/protocol.md §7.4).

Trust on first use: the first device list seen for a user is accepted. When a
later list differs (a device added or removed, or, which the server must never
do, a device's keys replaced), the SDK reports an
:class:`~lien.sdk.events.IdentityChanged` event. Under the ``"block"`` policy
it then refuses to send to that user until the application calls
``Client.accept_identity``; under ``"warn"`` (the default) it reports and
carries on.

The accepted set is stored in the keystore as ``device id (u64) || Ed25519
key || X25519 key`` per device, sorted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from lien.crypto.errors import CryptoError
from lien.crypto.keys import PublicIdentity

IdentityPolicy = Literal["warn", "block"]
_ENTRY_SIZE: Final = 8 + 32 + 32

DeviceIdentities = dict[int, PublicIdentity]


class IdentityNotAccepted(CryptoError):
    """Sending is refused: the recipient's devices changed and the user has not accepted the change."""

    code = "identity-not-accepted"
    public_message = (
        "This correspondent's devices changed; compare safety numbers and accept the change first."
    )


def encode_identities(identities: DeviceIdentities) -> bytes:
    return b"".join(
        device.to_bytes(8, "big") + identity.signing_key + identity.exchange_key
        for device, identity in sorted(identities.items())
    )


def decode_identities(data: bytes) -> DeviceIdentities:
    if len(data) % _ENTRY_SIZE:
        raise ValueError("not an encoded identity set")
    found: DeviceIdentities = {}
    for start in range(0, len(data), _ENTRY_SIZE):
        entry = data[start : start + _ENTRY_SIZE]
        found[int.from_bytes(entry[:8], "big")] = PublicIdentity(entry[8:40], entry[40:72])
    return found


@dataclass(frozen=True)
class Change:
    """How a device list differs from the accepted one."""

    added: list[int]
    removed: list[int]
    replaced: list[int]
    """Device ids whose keys changed: the server must never do that."""

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.replaced)


def compare(accepted: DeviceIdentities, current: DeviceIdentities) -> Change:
    return Change(
        added=sorted(set(current) - set(accepted)),
        removed=sorted(set(accepted) - set(current)),
        replaced=sorted(d for d in set(current) & set(accepted) if current[d] != accepted[d]),
    )
