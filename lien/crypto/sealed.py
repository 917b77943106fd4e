"""Message format 1: a signed payload sealed to one device (docs/protocol.md §3.15).

The first end-to-end format, used until the ratcheting sessions of format 2.
For each recipient device the sender builds the signed payload (§3.15.1),
then seals it with ``crypto_box`` under a fresh ephemeral X25519 key::

    body = 0x01 || ephemeral public key (32) || nonce (24) || crypto_box(payload)

``crypto_box`` is X25519 + XSalsa20-Poly1305 (authenticated encryption); the
Ed25519 signature inside the payload is what authenticates the sender, since
anyone can encrypt to a public key. Forward secrecy is limited to the sender's
side (the ephemeral key is discarded); format 2 fixes that.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

import msgspec
import nacl.bindings
import nacl.exceptions

from lien.crypto.errors import (
    BadSignature,
    DecryptionFailed,
    InvalidKey,
    MalformedPayload,
    MessageTooLarge,
    SenderMismatch,
    UnsupportedFormat,
    WrongRecipient,
)
from lien.crypto.keys import EXCHANGE_KEY_SIZE, IdentityKeyPair, PublicIdentity, is_canonical_exchange_key
from lien.protocol import limits

FORMAT_SEALED: Final = 1
_NONCE_SIZE: Final = nacl.bindings.crypto_box_NONCEBYTES
_OVERHEAD: Final = (
    1 + EXCHANGE_KEY_SIZE + _NONCE_SIZE + nacl.bindings.crypto_secretbox_MACBYTES
)  # crypto_box seals with XSalsa20-Poly1305
SIGNED_PAYLOAD_DOMAIN: Final = b"lien-message-v1\x00"


class SignedFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the sender signs (§3.15.1); field order is the canonical encoding order."""

    sender: str
    sender_device: int
    recipient: str
    recipient_device: int
    client_id: str
    sent_at: int
    text: str


class _Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    fields: SignedFields
    signature: bytes


_encoder = msgspec.json.Encoder()
_payload_decoder = msgspec.json.Decoder(_Payload)


def signed_message(fields: SignedFields) -> bytes:
    """The exact bytes the sender's identity key signs: domain || canonical JSON of the fields."""
    return SIGNED_PAYLOAD_DOMAIN + _encoder.encode(fields)


@dataclass(frozen=True)
class Opened:
    fields: SignedFields
    signature: bytes


def seal(identity: IdentityKeyPair, recipient_key: PublicIdentity, fields: SignedFields) -> bytes:
    """Sign ``fields`` with ``identity`` and seal them to ``recipient_key``'s X25519 key."""
    payload = _encoder.encode(_Payload(fields=fields, signature=identity.sign(signed_message(fields))))
    if len(payload) + _OVERHEAD > limits.MAX_COPY_BYTES:
        raise MessageTooLarge()
    ephemeral_public, ephemeral_secret = nacl.bindings.crypto_box_keypair()
    nonce = secrets.token_bytes(_NONCE_SIZE)
    boxed = nacl.bindings.crypto_box(payload, nonce, recipient_key.exchange_key, ephemeral_secret)
    return bytes([FORMAT_SEALED]) + ephemeral_public + nonce + boxed


def open_sealed(
    identity: IdentityKeyPair,
    body: bytes,
    *,
    sender_key: PublicIdentity,
    sender: str,
    sender_device: int,
    recipient: str,
    recipient_device: int,
) -> Opened:
    """Open a format-1 body and check it: signature, sender and recipient as the server reported them."""
    if not body:
        raise DecryptionFailed("The message is empty.")
    if body[0] != FORMAT_SEALED:
        raise UnsupportedFormat()
    if len(body) <= _OVERHEAD or len(body) > limits.MAX_COPY_BYTES:
        raise DecryptionFailed()
    ephemeral_public = body[1 : 1 + EXCHANGE_KEY_SIZE]
    nonce = body[1 + EXCHANGE_KEY_SIZE : 1 + EXCHANGE_KEY_SIZE + _NONCE_SIZE]
    if not is_canonical_exchange_key(ephemeral_public):
        raise DecryptionFailed()
    try:
        payload = nacl.bindings.crypto_box_open(
            body[1 + EXCHANGE_KEY_SIZE + _NONCE_SIZE :], nonce, ephemeral_public, identity.secret_bytes()[1]
        )
    except (nacl.exceptions.CryptoError, InvalidKey):
        raise DecryptionFailed() from None
    try:
        opened = _payload_decoder.decode(payload)
    except msgspec.MsgspecError:
        raise MalformedPayload() from None
    fields = opened.fields
    if not sender_key.verify(signed_message(fields), opened.signature):
        raise BadSignature()
    if (fields.sender, fields.sender_device) != (sender, sender_device):
        raise SenderMismatch()
    if (fields.recipient, fields.recipient_device) != (recipient, recipient_device):
        raise WrongRecipient()
    return Opened(fields=fields, signature=opened.signature)
