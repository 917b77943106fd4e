"""What the SDK hands the application."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lien.crypto.errors import CryptoError
from lien.crypto.payload import verify_payload


def from_millis(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Message:
    """A decrypted message whose signature verified against the sender device's identity key.

    ``payload``, ``signature`` and ``signer_key`` are the proof of what was
    received: :meth:`verify` (or ``lien.crypto.payload.verify_payload``)
    checks them with nothing else, offline (docs/protocol-crypto.md §3.8.5).
    """

    id: str
    """The server's message id (receipts and read marks refer to it)."""
    sender: str
    sender_device: int
    recipient: str
    """The user it was sent to (for a copy of your own message from another of your devices, the peer),
    or the group id for a group message."""
    text: str
    sent_at: datetime
    """The sender device's clock, signed by the sender."""
    accepted_at: datetime
    """When the server accepted it."""
    client_id: str
    signature: bytes
    """Ed25519 signature by the sender device's identity key over ``payload`` (§3.8.2)."""
    payload: bytes
    """The canonical signed payload (§3.8.1): sender, recipient, conversation, ids, time and text."""
    signer_key: bytes
    """The sender device's Ed25519 identity key."""
    ciphertext_sha256: bytes = b""
    """SHA-256 of the ciphertext this device received; its signed receipts name it."""
    group: str | None = None
    """The care-team group it was sent to; None for a one to one message."""

    @property
    def peer(self) -> str:
        """The conversation: the group id, or the other party whichever side sent it."""
        if self.group is not None:
            return self.group
        return self.recipient if self.outgoing else self.sender

    outgoing: bool = False
    """True for a copy of a message one of your own other devices sent."""

    def verify(self) -> bool:
        """Whether the kept proof still verifies (signature and canonical encoding)."""
        try:
            verify_payload(self.payload, self.signature, self.signer_key)
        except CryptoError:
            return False
        return True


@dataclass(frozen=True)
class Receipt:
    """A status of a message you sent (or, for ``read``, one you read on another device).

    ``verified`` says that ``signature`` is the receiving device's signature
    over the message id, the kind, the hash of the ciphertext it received and
    its clock (``device_time``): the sender keeps it as proof (docs/protocol.md §10.4).
    """

    message_id: str
    kind: str
    by: str
    by_device: int
    at: datetime
    """When the server recorded it."""
    verified: bool = False
    ciphertext_sha256: bytes = b""
    device_time: datetime | None = None
    signature: bytes = b""


@dataclass(frozen=True)
class Typing:
    sender: str
    sender_device: int
    active: bool
    group: str | None = None
    """Set when the sender types in that group."""


@dataclass(frozen=True)
class PresenceChange:
    user: str
    online: bool


@dataclass(frozen=True)
class Undecryptable:
    """A message arrived that could not be decrypted or verified; it is never shown as text.

    When ``repairing`` is true the sender was told (a ``decrypt-failed``
    receipt, without content): its device repairs the session and sends the
    message again, which then arrives as an ordinary :class:`Message`.
    """

    message_id: str
    sender: str
    sender_device: int
    reason: str
    repairing: bool = False


@dataclass(frozen=True)
class IdentityChanged:
    """A correspondent's (or your own account's) devices differ from those accepted so far.

    Compare safety numbers (``Client.safety_number``) out of band, then call
    ``Client.accept_identity``. ``replaced`` lists device ids whose keys
    changed, which the server must never do: sending stays refused until accepted.
    """

    user: str
    added: list[int]
    removed: list[int]
    replaced: list[int]


@dataclass(frozen=True)
class GroupChanged:
    """A change of a group you belong to (or were removed from), in the order the server recorded them."""

    group: str
    epoch: int
    event: str
    """``created``, ``member-added``, ``member-removed``, ``member-left``, ``renamed``, ``role-changed``,
    ``devices-changed``."""
    actor: str
    subject: str | None
    name: str | None
    role: str | None
    at: datetime


Event = Receipt | Typing | PresenceChange | Undecryptable | IdentityChanged | GroupChanged
