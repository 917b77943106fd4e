"""Lien: the Python library of the Lien secure messenger.

``lien.Client`` is the asyncio SDK (README, "Using the SDK"); ``lien.protocol``
is the I/O-free wire core that the server, the SDK and the load tests share;
``lien.crypto`` holds the end-to-end cryptography.
"""

from __future__ import annotations

from lien.protocol.errors import LienError
from lien.sdk.client import Client
from lien.sdk.events import (
    Event,
    GroupChanged,
    IdentityChanged,
    Message,
    PresenceChange,
    Receipt,
    Typing,
    Undecryptable,
)
from lien.sdk.trust import IdentityNotAccepted

__all__ = [
    "Client",
    "Event",
    "GroupChanged",
    "IdentityChanged",
    "IdentityNotAccepted",
    "LienError",
    "Message",
    "PresenceChange",
    "Receipt",
    "Typing",
    "Undecryptable",
]
