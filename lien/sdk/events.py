"""What the SDK hands the application."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def from_millis(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Message:
    """A decrypted message whose signature verified against the sender device's identity key."""

    id: str
    """The server's message id (receipts and read marks refer to it)."""
    sender: str
    sender_device: int
    recipient: str
    """The user it was sent to; for a copy of your own message from another of your devices, the peer."""
    text: str
    sent_at: datetime
    """The sender device's clock, signed by the sender."""
    accepted_at: datetime
    """When the server accepted it."""
    client_id: str
    signature: bytes
    """Ed25519 signature by the sender's identity key over the canonical payload (docs/protocol.md §3)."""

    @property
    def peer(self) -> str:
        """The other party of the conversation, whichever side sent it."""
        return self.recipient if self.outgoing else self.sender

    outgoing: bool = False
    """True for a copy of a message one of your own other devices sent."""


@dataclass(frozen=True)
class Receipt:
    """A status of a message you sent (or, for ``read``, one you read on another device)."""

    message_id: str
    kind: str
    by: str
    by_device: int
    at: datetime


@dataclass(frozen=True)
class Typing:
    sender: str
    sender_device: int
    active: bool


@dataclass(frozen=True)
class PresenceChange:
    user: str
    online: bool


@dataclass(frozen=True)
class Undecryptable:
    """A message arrived that could not be decrypted or verified; it is never shown as text."""

    message_id: str
    sender: str
    sender_device: int
    reason: str


Event = Receipt | Typing | PresenceChange | Undecryptable
