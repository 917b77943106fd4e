"""The signed payload inside every format-2 message (docs/protocol-crypto.md §3.8).

What a device encrypts is never bare text: it is a canonical binary
encoding of who sends what to whom and when, signed with the sender device's
Ed25519 identity key. The recipient keeps ``(payload bytes, signature)``;
with the sender's Ed25519 key, :func:`verify_payload` convinces anyone,
offline, that this device sent exactly this (non-repudiation).

Encoding (all integers big-endian; ``str8`` is a uint8 byte length then UTF-8,
``str32`` a uint32 byte length then UTF-8)::

    payload = uint8 version (2)
           || str8 sender_user   || uint64 sender_device
           || str8 recipient_user || uint64 recipient_device
           || uint8 conversation_kind (1 user, 2 group) || str8 conversation_id
           || str8 client_message_id || uint64 sent_at_ms
           || str8 content_type || str32 text
    signed  = b"lien-payload-v2\\x00" || payload
    plaintext = uint32 len(payload) || payload || signature (64) || 0x00 padding to a multiple of 256

A group message (docs/protocol-group.md §3.17.6) carries a :class:`GroupPayload`
instead: the same fields without a recipient, version byte 3, its own
signature domain, the same framing::

    group_payload = uint8 version (3)
           || str8 sender_user || uint64 sender_device
           || uint8 conversation_kind (2) || str8 group_id
           || str8 client_message_id || uint64 sent_at_ms
           || str8 content_type || str32 text
    signed  = b"lien-group-payload-v1\\x00" || group_payload
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import nacl.exceptions
import nacl.signing

from lien.crypto.errors import (
    BadSignature,
    ConversationMismatch,
    MalformedPayload,
    SenderMismatch,
    WrongRecipient,
)
from lien.crypto.keys import SIGNATURE_SIZE, SIGNING_KEY_SIZE, IdentityKeyPair
from lien.protocol import limits

PAYLOAD_VERSION: Final = 2
SIGNATURE_DOMAIN: Final = b"lien-payload-v2\x00"
GROUP_PAYLOAD_VERSION: Final = 3
"""First byte of a group payload (§3.17.6); a pairwise payload starts with 2."""
GROUP_SIGNATURE_DOMAIN: Final = b"lien-group-payload-v1\x00"
"""Prefix of what an identity key signs for a group payload (§3.17.6)."""
PADDING_BLOCK: Final = 256
MAX_TEXT_BYTES: Final = 60_000
MAX_CONTENT_TYPE_BYTES: Final = 64
MAX_CONVERSATION_ID_BYTES: Final = 64
MAX_DEVICE_ID: Final = 2**62
MAX_SENT_AT_MS: Final = 2**63 - 1
DEFAULT_CONTENT_TYPE: Final = "text/plain"

_USERNAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")
"""Same rule as ``lien.protocol.frames.Username``."""
_TOKEN: Final = re.compile(r"[A-Za-z0-9_.:-]+")
"""Client message ids and group ids (``lien.protocol.frames.ClientMessageId``)."""
_CONTENT_TYPE: Final = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*")
_U8: Final = struct.Struct(">B")
_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")


class ConversationKind(IntEnum):
    USER = 1
    """A one-to-one conversation, named by the username the envelope is addressed to (``Send.to``)."""
    GROUP = 2
    """A care-team group, named by its group id (docs/protocol-group.md §3.17)."""


def _check_username(name: str) -> str:
    if (
        not isinstance(name, str)
        or not limits.MIN_USERNAME_CHARS <= len(name) <= limits.MAX_USERNAME_CHARS
        or not _USERNAME.fullmatch(name)
    ):
        raise ValueError("not a valid username")
    return name


def _check_token(value: str, max_chars: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_chars or not _TOKEN.fullmatch(value):
        raise ValueError("not a valid identifier")
    return value


def _check_int(value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"an integer from {low} to {high} was expected")
    return value


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    """A user's device: ``user`` is a username, ``device`` the server's device id (1 to 2**62)."""

    user: str
    device: int

    def __post_init__(self) -> None:
        _check_username(self.user)
        _check_int(self.device, 1, MAX_DEVICE_ID)


@dataclass(frozen=True, slots=True)
class Conversation:
    """Which conversation a message belongs to: a username (1:1) or a group id."""

    kind: ConversationKind
    id: str

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ConversationKind):
            raise ValueError("kind must be a ConversationKind")
        if self.kind is ConversationKind.USER:
            _check_username(self.id)
        else:
            _check_token(self.id, MAX_CONVERSATION_ID_BYTES)

    @classmethod
    def user(cls, username: str) -> Conversation:
        return cls(ConversationKind.USER, username)

    @classmethod
    def group(cls, group_id: str) -> Conversation:
        return cls(ConversationKind.GROUP, group_id)


def _check_message_fields(client_message_id: str, sent_at_ms: int, content_type: str, text: str) -> None:
    """The rules of §3.8.1 shared by pairwise and group payloads."""
    _check_token(client_message_id, limits.MAX_CLIENT_MESSAGE_ID_CHARS)
    _check_int(sent_at_ms, 0, MAX_SENT_AT_MS)
    if (
        not isinstance(content_type, str)
        or len(content_type) > MAX_CONTENT_TYPE_BYTES
        or not _CONTENT_TYPE.fullmatch(content_type)
    ):
        raise ValueError("not a valid content type")
    if not isinstance(text, str):
        raise TypeError("text is a str")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("text is not encodable as UTF-8") from None
    if size > MAX_TEXT_BYTES:
        raise ValueError(f"text is at most {MAX_TEXT_BYTES} bytes of UTF-8")


def _str8(value: str) -> bytes:
    data = value.encode("utf-8")
    return _U8.pack(len(data)) + data


@dataclass(frozen=True, slots=True, repr=False)
class Payload:
    """The fields of one message to one device (§3.8.1); the constructor validates every one.

    ``repr`` leaves out the text: message content never goes to a log.
    """

    sender: DeviceAddress
    recipient: DeviceAddress
    conversation: Conversation
    client_message_id: str
    sent_at_ms: int
    text: str
    content_type: str = DEFAULT_CONTENT_TYPE

    def __post_init__(self) -> None:
        if not isinstance(self.sender, DeviceAddress) or not isinstance(self.recipient, DeviceAddress):
            raise TypeError("sender and recipient are DeviceAddress")
        if not isinstance(self.conversation, Conversation):
            raise TypeError("conversation is a Conversation")
        _check_message_fields(self.client_message_id, self.sent_at_ms, self.content_type, self.text)

    def __repr__(self) -> str:
        return (
            f"Payload(sender={self.sender!r}, recipient={self.recipient!r}, "
            f"conversation={self.conversation!r}, client_message_id={self.client_message_id!r}, "
            f"content_type={self.content_type!r}, "
            f"text={len(self.text)} chars)"
        )

    def encode(self) -> bytes:
        """The canonical bytes of §3.8.1."""
        text = self.text.encode("utf-8")
        return b"".join(
            (
                _U8.pack(PAYLOAD_VERSION),
                _str8(self.sender.user),
                _U64.pack(self.sender.device),
                _str8(self.recipient.user),
                _U64.pack(self.recipient.device),
                _U8.pack(self.conversation.kind),
                _str8(self.conversation.id),
                _str8(self.client_message_id),
                _U64.pack(self.sent_at_ms),
                _str8(self.content_type),
                _U32.pack(len(text)),
                text,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> Payload:
        """Parse canonical bytes; raises :class:`~lien.crypto.errors.MalformedPayload` for anything else."""
        try:
            reader = _Reader(data)
            if reader.u8() != PAYLOAD_VERSION:
                raise MalformedPayload()
            sender = DeviceAddress(reader.str8(), reader.u64())
            recipient = DeviceAddress(reader.str8(), reader.u64())
            conversation = Conversation(ConversationKind(reader.u8()), reader.str8())
            client_message_id = reader.str8()
            sent_at_ms = reader.u64()
            content_type = reader.str8()
            text = reader.str32()
            reader.finish()
            payload = cls(sender, recipient, conversation, client_message_id, sent_at_ms, text, content_type)
        except (ValueError, TypeError, struct.error):
            raise MalformedPayload() from None
        if payload.encode() != data:
            raise MalformedPayload()
        return payload


@dataclass(frozen=True, slots=True, repr=False)
class GroupPayload:
    """The fields of one message to a care-team group (docs/protocol-group.md §3.17.6).

    Like :class:`Payload` without a recipient: a group message is encrypted
    once for every member device. ``conversation`` must be of kind
    :attr:`ConversationKind.GROUP`. ``repr`` leaves out the text.
    """

    sender: DeviceAddress
    conversation: Conversation
    client_message_id: str
    sent_at_ms: int
    text: str
    content_type: str = DEFAULT_CONTENT_TYPE

    def __post_init__(self) -> None:
        if not isinstance(self.sender, DeviceAddress):
            raise TypeError("sender is a DeviceAddress")
        if not isinstance(self.conversation, Conversation):
            raise TypeError("conversation is a Conversation")
        if self.conversation.kind is not ConversationKind.GROUP:
            raise ValueError("a group payload belongs to a group conversation")
        _check_message_fields(self.client_message_id, self.sent_at_ms, self.content_type, self.text)

    @property
    def group_id(self) -> str:
        return self.conversation.id

    def __repr__(self) -> str:
        return (
            f"GroupPayload(sender={self.sender!r}, group_id={self.conversation.id!r}, "
            f"client_message_id={self.client_message_id!r}, content_type={self.content_type!r}, "
            f"text={len(self.text)} chars)"
        )

    def encode(self) -> bytes:
        """The canonical bytes of §3.17.6."""
        text = self.text.encode("utf-8")
        return b"".join(
            (
                _U8.pack(GROUP_PAYLOAD_VERSION),
                _str8(self.sender.user),
                _U64.pack(self.sender.device),
                _U8.pack(self.conversation.kind),
                _str8(self.conversation.id),
                _str8(self.client_message_id),
                _U64.pack(self.sent_at_ms),
                _str8(self.content_type),
                _U32.pack(len(text)),
                text,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> GroupPayload:
        """Parse canonical bytes; raises :class:`~lien.crypto.errors.MalformedPayload` for anything else."""
        try:
            reader = _Reader(data)
            if reader.u8() != GROUP_PAYLOAD_VERSION:
                raise MalformedPayload()
            sender = DeviceAddress(reader.str8(), reader.u64())
            conversation = Conversation(ConversationKind(reader.u8()), reader.str8())
            client_message_id = reader.str8()
            sent_at_ms = reader.u64()
            content_type = reader.str8()
            text = reader.str32()
            reader.finish()
            payload = cls(sender, conversation, client_message_id, sent_at_ms, text, content_type)
        except (ValueError, TypeError, struct.error):
            raise MalformedPayload() from None
        if payload.encode() != data:
            raise MalformedPayload()
        return payload


class _Reader:
    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def take(self, size: int) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise ValueError("truncated")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def u8(self) -> int:
        return int(_U8.unpack(self.take(1))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def str8(self) -> str:
        return self.take(self.u8()).decode("utf-8")

    def str32(self) -> str:
        return self.take(int(_U32.unpack(self.take(4))[0])).decode("utf-8")

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise ValueError("trailing bytes")


# --- signatures (§3.8.2, §3.17.6) --------------------------------------------


def signing_input(payload_bytes: bytes) -> bytes:
    """``b"lien-payload-v2\\x00" || payload``: what the Ed25519 signature covers."""
    return SIGNATURE_DOMAIN + payload_bytes


def group_signing_input(payload_bytes: bytes) -> bytes:
    """``b"lien-group-payload-v1\\x00" || group_payload``: what a group payload's signature covers."""
    return GROUP_SIGNATURE_DOMAIN + payload_bytes


@dataclass(frozen=True, slots=True)
class SignedPayload:
    """A payload, its canonical bytes, and the Ed25519 ``signature`` by ``signer`` over them.

    Keep ``encoded``, ``signature`` and ``signer`` to prove later what was
    received: :func:`verify_payload` needs nothing else.
    """

    payload: Payload
    encoded: bytes
    signature: bytes
    signer: bytes

    def __repr__(self) -> str:
        return (
            f"SignedPayload(sender={self.payload.sender!r}, recipient={self.payload.recipient!r}, "
            f"client_message_id={self.payload.client_message_id!r}, text={len(self.payload.text)} chars)"
        )


@dataclass(frozen=True, slots=True)
class SignedGroupPayload:
    """A group payload, its canonical bytes, and the sender device's identity signature over them.

    The proof of a group message (§3.17.6): :func:`verify_payload` checks
    ``(encoded, signature, signer)`` offline, like a pairwise one.
    """

    payload: GroupPayload
    encoded: bytes
    signature: bytes
    signer: bytes

    def __repr__(self) -> str:
        return (
            f"SignedGroupPayload(sender={self.payload.sender!r}, group_id={self.payload.group_id!r}, "
            f"client_message_id={self.payload.client_message_id!r}, text={len(self.payload.text)} chars)"
        )


def sign_payload(identity: IdentityKeyPair, payload: Payload) -> SignedPayload:
    encoded = payload.encode()
    return SignedPayload(payload, encoded, identity.sign(signing_input(encoded)), identity.public.signing_key)


def sign_group_payload(identity: IdentityKeyPair, payload: GroupPayload) -> SignedGroupPayload:
    """Sign a group payload with the sender device's Ed25519 identity key (§3.17.6)."""
    encoded = payload.encode()
    signature = identity.sign(group_signing_input(encoded))
    return SignedGroupPayload(payload, encoded, signature, identity.public.signing_key)


def _verify_signature(domain: bytes, payload_bytes: bytes, signature: bytes, signer: bytes) -> None:
    if not isinstance(signer, bytes) or len(signer) != SIGNING_KEY_SIZE:
        raise BadSignature()
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise BadSignature()
    if not isinstance(payload_bytes, bytes):
        raise MalformedPayload()
    signed_input = domain + payload_bytes
    try:
        nacl.signing.VerifyKey(signer).verify(signed_input, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        raise BadSignature() from None


def verify_payload(payload_bytes: bytes, signature: bytes, signer: bytes) -> Payload | GroupPayload:
    """Check a kept payload offline: the signature by the Ed25519 key ``signer``, then the encoding.

    Handles both kinds, told apart by the first byte: 2 is a pairwise
    :class:`Payload` (§3.8), 3 a :class:`GroupPayload` (§3.17.6), each
    under its own signature domain. Raises
    :class:`~lien.crypto.errors.BadSignature` when the signature does not
    verify and :class:`~lien.crypto.errors.MalformedPayload` when the bytes
    are not a canonical payload.
    """
    if isinstance(payload_bytes, bytes) and payload_bytes[:1] == bytes([GROUP_PAYLOAD_VERSION]):
        return verify_group_payload(payload_bytes, signature, signer)
    return verify_pairwise_payload(payload_bytes, signature, signer)


def verify_pairwise_payload(payload_bytes: bytes, signature: bytes, signer: bytes) -> Payload:
    """:func:`verify_payload` for a pairwise payload only; a group payload is ``MalformedPayload``."""
    _verify_signature(SIGNATURE_DOMAIN, payload_bytes, signature, signer)
    return Payload.decode(payload_bytes)


def verify_group_payload(payload_bytes: bytes, signature: bytes, signer: bytes) -> GroupPayload:
    """:func:`verify_payload` for a group payload only; a pairwise payload is ``BadSignature``.

    (A pairwise payload's signature is over another domain, so it does not
    verify here, whatever the bytes.)
    """
    _verify_signature(GROUP_SIGNATURE_DOMAIN, payload_bytes, signature, signer)
    return GroupPayload.decode(payload_bytes)


# --- plaintext framing (§3.8.3) ---------------------------------------------


def encode_plaintext(signed: SignedPayload | SignedGroupPayload) -> bytes:
    """``uint32 len || payload || signature || zero padding`` to a multiple of 256 bytes (§3.8.3, §3.17.6)."""
    body = _U32.pack(len(signed.encoded)) + signed.encoded + signed.signature
    return body + bytes(-len(body) % PADDING_BLOCK)


def decode_plaintext(plaintext: bytes) -> tuple[bytes, bytes]:
    """``(payload_bytes, signature)``; the padding must be zeros and the length a multiple of 256."""
    if len(plaintext) < _U32.size or len(plaintext) % PADDING_BLOCK:
        raise MalformedPayload()
    (size,) = _U32.unpack(plaintext[: _U32.size])
    end = _U32.size + size + SIGNATURE_SIZE
    if end > len(plaintext) or any(plaintext[end:]) or -end % PADDING_BLOCK != len(plaintext) - end:
        raise MalformedPayload()
    return plaintext[_U32.size : _U32.size + size], plaintext[_U32.size + size : end]


# --- transport checks (§3.8.4) ----------------------------------------------


def check_delivery(
    payload: Payload, *, delivered_by: DeviceAddress, own: DeviceAddress, conversation: Conversation
) -> None:
    """Compare what was signed with what the server says; raise the first mismatch found."""
    if payload.sender != delivered_by:
        raise SenderMismatch()
    if payload.recipient != own:
        raise WrongRecipient()
    if payload.conversation != conversation:
        raise ConversationMismatch()


def check_group_delivery(
    payload: GroupPayload, *, delivered_by: DeviceAddress, conversation: Conversation
) -> None:
    """The checks of §3.17.7 on a verified group payload: sender device, then group."""
    if payload.sender != delivered_by:
        raise SenderMismatch()
    if payload.conversation != conversation:
        raise ConversationMismatch()
