"""What nodes tell each other through the broker (docs/architecture.md, "Fan-out").

A notice wakes the node holding a device's socket. It may carry the inbox
frame itself (ciphertext and routing metadata only) so that node need not
read it back from the database; the inbox stays the truth, so a notice lost
by the broker only delays delivery until the next wake-up.

Layout (binary, first byte is the kind):

* ``E`` + seq (8 bytes, big-endian) + accepted-at ms (8 bytes) + frame: a new inbox entry;
* ``F`` + frame: an ephemeral frame to push as is (typing, presence, prekeys_low);
* ``K`` + connection id: a newer connection of the device exists; older ones close;
* ``R`` + session id (8 bytes): that session was revoked (logout, device removed); its sockets close.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_SEQ_AT = struct.Struct(">QQ")


def device_channel(device_id: int) -> str:
    return f"lien:d:{device_id}"


def user_channel(user_id: int) -> str:
    return f"lien:u:{user_id}"


def presence_channel(user_id: int) -> str:
    return f"lien:p:{user_id}"


@dataclass(frozen=True)
class InboxNotice:
    seq: int
    accepted_at: int
    frame: bytes


@dataclass(frozen=True)
class EphemeralNotice:
    frame: bytes


@dataclass(frozen=True)
class KickNotice:
    connection_id: str


@dataclass(frozen=True)
class RevokedNotice:
    session_id: int | None
    """None: every session of the device (the device was removed)."""


Notice = InboxNotice | EphemeralNotice | KickNotice | RevokedNotice


def inbox_entry(seq: int, accepted_at: int, frame: bytes) -> bytes:
    return b"E" + _SEQ_AT.pack(seq, accepted_at) + frame


def ephemeral(frame: bytes) -> bytes:
    return b"F" + frame


def kick(connection_id: str) -> bytes:
    return b"K" + connection_id.encode()


def revoked(session_id: int | None) -> bytes:
    return b"R" + (session_id or 0).to_bytes(8, "big")


def decode(payload: bytes) -> Notice | None:
    """None for a payload this node does not understand (a newer node's notice)."""
    kind, body = payload[:1], payload[1:]
    if kind == b"E" and len(body) > _SEQ_AT.size:
        seq, accepted_at = _SEQ_AT.unpack_from(body)
        return InboxNotice(seq=seq, accepted_at=accepted_at, frame=body[_SEQ_AT.size :])
    if kind == b"F":
        return EphemeralNotice(frame=body)
    if kind == b"R" and len(body) == 8:
        session_id = int.from_bytes(body, "big")
        return RevokedNotice(session_id=session_id or None)
    if kind == b"K":
        return KickNotice(connection_id=body.decode(errors="replace"))
    return None
