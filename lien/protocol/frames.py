"""Every WebSocket frame, defined once (docs/protocol.md §5 and §6).

Frames are JSON text frames whose ``type`` field names the frame. Bytes
fields (ciphertexts) travel as standard base64. The protocol version is
announced by the client in ``auth`` and echoed by the server in ``ready``; it
is implied for every later frame on the connection.

Field names, once published, are never reused for a new meaning.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from lien.protocol import limits

MAX_SAFE_INTEGER = 2**53 - 1
"""Integers on the wire stay below this, so JavaScript's JSON.parse keeps them exact."""

ClientMessageId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=limits.MAX_CLIENT_MESSAGE_ID_CHARS,
        pattern=r"^[A-Za-z0-9_.:-]+$",
    ),
]
"""Chosen by the sending device; makes a resend idempotent."""

Username = Annotated[
    str,
    msgspec.Meta(
        min_length=limits.MIN_USERNAME_CHARS,
        max_length=limits.MAX_USERNAME_CHARS,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
    ),
]
GroupId = Annotated[str, msgspec.Meta(min_length=2, max_length=32, pattern=r"^G[A-Z2-7]+$")]
"""``G`` and base32: never a username (usernames are lowercase)."""


def is_group_id(value: str) -> bool:
    """Group ids start with ``G`` (uppercase); usernames never do."""
    return value.startswith("G")


DeviceId = Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INTEGER)]
InboxSeq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
ServerMessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Ciphertext = Annotated[bytes, msgspec.Meta(min_length=1, max_length=limits.MAX_COPY_BYTES)]
ReceiptKind = Literal["delivered", "decrypted", "read", "decrypt-failed"]
"""``decrypted`` implies ``delivered``; ``decrypt-failed`` asks the sending device to repair and resend."""
Millis = int
"""Server time in milliseconds since the Unix epoch."""


class Frame(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=True):
    """Base of all frames."""


# --- client to server ------------------------------------------------------


class Auth(Frame, frozen=True, tag="auth"):
    """First frame on a socket: the session token (never in the URL)."""

    v: int
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Copy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ciphertext for one device."""

    device: DeviceId
    body: Ciphertext


class Send(Frame, frozen=True, tag="send"):
    """One message to one user: a copy per recipient device and per other own device."""

    id: ClientMessageId
    to: Username
    copies: Annotated[list[Copy], msgspec.Meta(min_length=1)]
    """At most ``limits.MAX_COPIES_PER_ENVELOPE``, else ``too-many-recipients``."""


class Resend(Frame, frozen=True, tag="resend"):
    """New copies of a message already accepted, for some devices only (docs/protocol.md §6.6).

    Sent by the device that sent ``message`` after a ``decrypt-failed``
    receipt, once it has repaired its session with those devices. The copies
    keep the original server message id; ``id`` is a fresh client id.
    """

    id: ClientMessageId
    message: ServerMessageId
    copies: Annotated[list[Copy], msgspec.Meta(min_length=1)]
    """At most ``limits.MAX_COPIES_PER_ENVELOPE``, else ``too-many-recipients``."""


class GroupSend(Frame, frozen=True, tag="group_send"):
    """One message to a group: a single ciphertext for every member device (docs/protocol.md §6.7).

    ``epoch`` is the group's membership epoch the sender encrypted for; an
    older one is refused with ``stale-membership``. ``keys`` carries this
    sender's key distribution, pairwise encrypted, for the devices that need it.
    """

    id: ClientMessageId
    group: GroupId
    epoch: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INTEGER)]
    body: Ciphertext
    keys: list[Copy] = []
    """At most ``limits.MAX_GROUP_KEY_COPIES``, else ``too-many-recipients``."""


class Ack(Frame, frozen=True, tag="ack"):
    """Everything in this device's inbox up to and including ``up_to`` was received."""

    up_to: InboxSeq


Sha256 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


class Receipt(Frame, frozen=True, tag="receipt", kw_only=True):
    """The recipient device reports what happened to a message it received, and signs it (§10.4).

    ``hash`` is the SHA-256 of the ciphertext the device received; ``at`` the
    device's clock; ``signature`` its identity key's Ed25519 signature over
    ``lien.ledger.receipt_signing_input``.
    """

    message: ServerMessageId
    kind: ReceiptKind
    hash: Sha256
    at: Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
    signature: Signature


class Typing(Frame, frozen=True, tag="typing", kw_only=True):
    """Ephemeral: the user is (or stopped) typing to a contact ``to`` or in a ``group``. Never stored."""

    to: Username | None = None
    group: GroupId | None = None
    active: bool


class Watch(Frame, frozen=True, tag="watch"):
    """Replace the set of contacts whose presence this connection follows."""

    users: list[Username]
    """At most ``limits.MAX_WATCHED_USERS``, else ``too-many-watched``."""


class Ping(Frame, frozen=True, tag="ping"):
    """Application-level keepalive for clients that cannot send WebSocket pings."""

    id: Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]


ClientFrame = Auth | Send | GroupSend | Resend | Ack | Receipt | Typing | Watch | Ping


# --- server to client ------------------------------------------------------


class Ready(Frame, frozen=True, tag="ready"):
    """Authentication succeeded; the backlog follows in inbox order."""

    v: int
    user: str
    device: int
    server_time: Millis
    prekeys: int
    replenish: bool


class Accepted(Frame, frozen=True, tag="accepted"):
    """The message is durably stored for every addressed device."""

    id: str
    message: str
    at: Millis
    duplicate: bool = False


class Deliver(Frame, frozen=True, tag="message", kw_only=True):
    """A message from the device's inbox; ack ``seq`` once it is safely handled.

    One to one: ``to`` is the recipient's username. In a group: ``group`` is
    the group id, ``body`` the single group ciphertext (or, after a repair, a
    pairwise body for this device) and ``key`` this device's copy of the
    sender's key distribution when it needs one.
    """

    seq: int
    message: str
    sender: str
    sender_device: int
    to: str | None = None
    group: str | None = None
    body: bytes
    key: bytes | None = None
    at: Millis


class Status(Frame, frozen=True, tag="status", kw_only=True):
    """A receipt about a message this user sent, from the inbox; ack ``seq`` too.

    ``at`` is when the server recorded it; ``hash``, ``device_time`` and
    ``signature`` are the receiving device's signed receipt, to verify and keep.
    """

    seq: int
    message: str
    kind: ReceiptKind
    by: str
    by_device: int
    at: Millis
    hash: bytes
    device_time: int
    signature: bytes


GroupEventKind = Literal[
    "created", "member-added", "member-removed", "member-left", "renamed", "role-changed", "devices-changed"
]


class GroupEvent(Frame, frozen=True, tag="group_event", kw_only=True):
    """A change of a group, from the inbox in epoch order; ack ``seq`` too (docs/protocol.md §6.8)."""

    seq: int
    group: str
    epoch: int
    event: GroupEventKind
    actor: str
    subject: str | None = None
    """The member added, removed, who left, whose role or devices changed."""
    name: str | None = None
    """The group's name, for ``created`` and ``renamed``."""
    role: str | None = None
    """The subject's role, for ``member-added`` and ``role-changed``."""
    at: Millis


class TypingEvent(Frame, frozen=True, tag="typing", kw_only=True):
    sender: str
    sender_device: int
    group: str | None = None
    """Set when the sender types in that group; else it types to you."""
    active: bool


class Presence(Frame, frozen=True, tag="presence"):
    user: str
    online: bool


class DevicesChanged(Frame, frozen=True, tag="devices_changed"):
    """A contact (or this user) added or removed a device: refresh its device list. Never stored."""

    user: str


class PrekeysLow(Frame, frozen=True, tag="prekeys_low"):
    """The device's one-time prekeys run low: upload more."""

    remaining: int


class Pong(Frame, frozen=True, tag="pong"):
    id: int


class Error(Frame, frozen=True, tag="error"):
    """A structured error; ``ref`` is the client message id of the frame it answers."""

    code: str
    message: str
    ref: str | None = None
    retry_after: float | None = None
    details: dict[str, object] | None = None


ServerFrame = (
    Ready
    | Accepted
    | Deliver
    | Status
    | GroupEvent
    | TypingEvent
    | Presence
    | DevicesChanged
    | PrekeysLow
    | Pong
    | Error
)
InboxFrame = Deliver | Status | GroupEvent
"""Frames that come out of a device's inbox and carry a ``seq`` to ack."""
