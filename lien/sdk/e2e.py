"""The SDK's end-to-end layer: which keys to use for a copy, and what a copy means once opened.

Kept apart from the client so that the client only moves frames, and this
module only turns text into per-device bodies and back (docs/protocol.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lien.crypto import sealed
from lien.crypto.errors import CryptoError
from lien.crypto.keys import PublicIdentity
from lien.crypto.keys import device_registration as registration_body
from lien.keystore import Keystore
from lien.protocol.api import DeviceRegistration, OneTimePrekey

INITIAL_ONE_TIME_PREKEYS: Final = 100


class UnknownSenderDevice(CryptoError):
    """The server names a sender device whose identity key the directory does not list."""

    code = "unknown-sender-device"
    public_message = "The message comes from a device the directory does not know."


@dataclass(frozen=True)
class OpenedText:
    text: str
    sent_at: int
    client_id: str
    signature: bytes


def device_registration(store: Keystore, name: str) -> DeviceRegistration:
    """Public keys for a new device: identity, a signed prekey, a first batch of one-time prekeys."""
    signed_prekey = store.new_signed_prekey()
    one_time = store.new_one_time_prekeys(INITIAL_ONE_TIME_PREKEYS)
    store.save()
    return registration_body(store.identity, signed_prekey, one_time, name=name)


def new_prekeys(store: Keystore, count: int) -> list[OneTimePrekey]:
    """More one-time prekeys; their private halves stay in the keystore (save it before uploading)."""
    return [prekey.to_body() for prekey in store.new_one_time_prekeys(count)]


def encrypt(
    store: Keystore,
    *,
    sender: str,
    sender_device: int,
    recipient: str,
    recipient_device: int,
    recipient_key: PublicIdentity,
    client_id: str,
    sent_at: int,
    text: str,
) -> bytes:
    fields = sealed.SignedFields(
        sender=sender,
        sender_device=sender_device,
        recipient=recipient,
        recipient_device=recipient_device,
        client_id=client_id,
        sent_at=sent_at,
        text=text,
    )
    return sealed.seal(store.identity, recipient_key, fields)


def decrypt(
    store: Keystore,
    body: bytes,
    *,
    sender_key: PublicIdentity,
    sender: str,
    sender_device: int,
    recipient: str,
    recipient_device: int,
) -> OpenedText:
    opened = sealed.open_sealed(
        store.identity,
        body,
        sender_key=sender_key,
        sender=sender,
        sender_device=sender_device,
        recipient=recipient,
        recipient_device=recipient_device,
    )
    fields = opened.fields
    return OpenedText(
        text=fields.text, sent_at=fields.sent_at, client_id=fields.client_id, signature=opened.signature
    )
