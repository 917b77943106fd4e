"""Every size and count a client controls, with its default (docs/protocol.md §9).

The server enforces these; the SDK checks them before sending so that a
well-behaved client never trips them.
"""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 1
"""Wire protocol version, announced in the `auth` frame and echoed in `ready`."""

# --- transport ---------------------------------------------------------
MAX_FRAME_BYTES: Final = 1_048_576
"""Largest WebSocket text frame the server decodes; larger ones get `frame-too-large`."""
TRANSPORT_MAX_FRAME_BYTES: Final = 4 * MAX_FRAME_BYTES
"""Above this the WebSocket layer itself closes the connection (close code 1009)."""
MAX_HTTP_BODY_BYTES: Final = 262_144
AUTH_TIMEOUT_SECONDS: Final = 10.0
"""A socket that has not sent a valid `auth` frame by then is closed (4408)."""

# --- envelopes ---------------------------------------------------------
MAX_CLIENT_MESSAGE_ID_CHARS: Final = 64
MAX_COPY_BYTES: Final = 65_536
"""Largest ciphertext for one device."""
MAX_ENVELOPE_BYTES: Final = 786_432
"""Sum of all copies in one envelope."""
MAX_COPIES_PER_ENVELOPE: Final = 32
"""Recipient devices plus the sender's own other devices."""
MAX_DEVICES_PER_USER: Final = 10
MAX_SENDS_IN_FLIGHT: Final = 64
"""`send` frames one connection may have awaiting `accepted` at once."""
MAX_RECEIPTS_QUEUED: Final = 1024
"""`receipt` frames one connection may have waiting to be recorded; more get `too-many-in-flight`."""

# --- groups ------------------------------------------------------------
MAX_GROUP_MEMBERS: Final = 50
"""Default members per group, the creator included (server setting ``--max-group-members``)."""
MAX_GROUP_MEMBERS_CEILING: Final = 500
"""No setting may raise the member limit above this."""
MAX_GROUP_NAME_CHARS: Final = 128
MAX_GROUP_KEY_COPIES: Final = 1024
"""Sender-key distribution copies attached to one group message (members' devices)."""
MAX_GROUPS_PER_USER: Final = 1000

# --- delivery ----------------------------------------------------------
DELIVERY_WINDOW: Final = 256
"""Inbox entries pushed to a device and not yet acked."""
OUTBOUND_QUEUE_FRAMES: Final = 1024
"""Frames queued for one socket; a client that lets it fill is closed (4008)."""
INBOX_BATCH: Final = 128
"""Inbox entries read from storage per query when catching up."""

# --- keys --------------------------------------------------------------
MAX_PREKEYS_PER_UPLOAD: Final = 100
MAX_PREKEYS_STORED: Final = 500
PREKEY_REPLENISH_BELOW: Final = 20
"""The server asks a device to upload more one-time prekeys below this count."""

# --- accounts ----------------------------------------------------------
MIN_PASSWORD_CHARS: Final = 10
MAX_PASSWORD_CHARS: Final = 1024
MIN_USERNAME_CHARS: Final = 3
MAX_USERNAME_CHARS: Final = 32
MAX_PROFILE_FIELD_CHARS: Final = 128
MAX_DEVICE_NAME_CHARS: Final = 64
SESSION_TTL_SECONDS: Final = 30 * 24 * 3600
PASSWORD_ATTEMPTS_BURST: Final = 10
"""Password attempts on one account (sign-in, device removal) that may come at once."""
PASSWORD_ATTEMPT_REFILL_SECONDS: Final = 60.0
"""Past the burst, one more attempt per this many seconds: ``rate-limited`` (429) before."""

# --- ephemeral ---------------------------------------------------------
MAX_WATCHED_USERS: Final = 512
"""Users one connection may watch for presence."""
