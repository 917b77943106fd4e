"""A session's state as bytes or a dict, for the keystore (docs/protocol-crypto.md §3.6.7).

The state is a msgspec struct encoded with MessagePack (bytes) or turned into
JSON-compatible builtins (a dict, bytes as base64). Decoding checks types and
sizes (msgspec), then every invariant a working session relies on; anything
wrong raises :class:`~lien.crypto.errors.SessionStateCorrupt`.

The encoding holds private keys: it is only ever written inside the
encrypted keystore. Nothing here has a ``repr`` that shows a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Final, Literal

import msgspec

from lien.crypto.errors import CryptoError, SessionStateCorrupt
from lien.crypto.keys import PREKEY_ID_MAX, PublicIdentity, is_canonical_exchange_key
from lien.crypto.payload import DeviceAddress
from lien.crypto.ratchet import LIMITS_CEILING, RatchetLimits, RatchetState, SkippedKey
from lien.crypto.wire import MAX_COUNTER, X3dhData

STATE_FORMAT: Final = 1
"""Version of this encoding; bumped, with a migration, whenever a field changes."""

_Key = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_Counter = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER + 1)]
_PrekeyId = Annotated[int, msgspec.Meta(ge=0, le=PREKEY_ID_MAX)]
_Steps = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class Role(Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class _SkippedRecord(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    ratchet_key: _Key
    message_number: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER)]
    message_key: _Key
    stored_at_step: _Steps

    def __repr__(self) -> str:
        return "_SkippedRecord(<secret>)"


class _StateRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: Literal[1]
    role: Literal["initiator", "responder"]
    own_user: str
    own_device: int
    own_signing_key: _Key
    own_exchange_key: _Key
    peer_user: str
    peer_device: int
    peer_signing_key: _Key
    peer_exchange_key: _Key
    ephemeral_key: _Key
    signed_prekey_id: _PrekeyId
    one_time_prekey_id: _PrekeyId | None
    confirmed: bool
    root_key: _Key
    sending_private: _Key
    receiving_key: _Key | None
    sending_chain_key: _Key
    receiving_chain_key: _Key | None
    sending_length: _Counter
    receiving_length: _Counter
    previous_sending_length: _Counter
    receive_steps: _Steps
    previous_receiving_keys: Annotated[list[_Key], msgspec.Meta(max_length=LIMITS_CEILING)]
    skipped: Annotated[list[_SkippedRecord], msgspec.Meta(max_length=LIMITS_CEILING)]

    def __repr__(self) -> str:
        return "_StateRecord(<secret>)"


@dataclass(slots=True)
class SessionCore:
    """Everything a :class:`~lien.crypto.session.Session` persists; mutable only by the session."""

    role: Role
    own: DeviceAddress
    own_identity: PublicIdentity
    peer: DeviceAddress
    peer_identity: PublicIdentity
    x3dh: X3dhData
    """The X3DH data of the prekey messages that opened the session (the initiator's identity inside)."""
    confirmed: bool
    """Initiator only: a message from the responder decrypted, so prekey messages are no longer sent."""
    ratchet: RatchetState

    def __repr__(self) -> str:
        return f"SessionCore(role={self.role.value}, own={self.own!r}, peer={self.peer!r})"


def _record(core: SessionCore) -> _StateRecord:
    ratchet = core.ratchet
    if ratchet.sending_chain_key is None:
        raise RuntimeError("a session always has a sending chain")
    return _StateRecord(
        format=STATE_FORMAT,
        role=core.role.value,
        own_user=core.own.user,
        own_device=core.own.device,
        own_signing_key=core.own_identity.signing_key,
        own_exchange_key=core.own_identity.exchange_key,
        peer_user=core.peer.user,
        peer_device=core.peer.device,
        peer_signing_key=core.peer_identity.signing_key,
        peer_exchange_key=core.peer_identity.exchange_key,
        ephemeral_key=core.x3dh.ephemeral_key,
        signed_prekey_id=core.x3dh.signed_prekey_id,
        one_time_prekey_id=core.x3dh.one_time_prekey_id,
        confirmed=core.confirmed,
        root_key=ratchet.root_key,
        sending_private=ratchet.sending_private,
        receiving_key=ratchet.receiving_key,
        sending_chain_key=ratchet.sending_chain_key,
        receiving_chain_key=ratchet.receiving_chain_key,
        sending_length=ratchet.sending_length,
        receiving_length=ratchet.receiving_length,
        previous_sending_length=ratchet.previous_sending_length,
        receive_steps=ratchet.receive_steps,
        previous_receiving_keys=list(ratchet.previous_receiving_keys),
        skipped=[
            _SkippedRecord(ratchet_key, number, key.message_key, key.stored_at_step)
            for (ratchet_key, number), key in ratchet.skipped.items()
        ],
    )


def encode_state(core: SessionCore) -> bytes:
    return msgspec.msgpack.encode(_record(core))


def state_to_dict(core: SessionCore) -> dict[str, Any]:
    builtins: dict[str, Any] = msgspec.to_builtins(_record(core))
    return builtins


def decode_state(data: bytes, limits: RatchetLimits) -> SessionCore:
    try:
        record = msgspec.msgpack.decode(data, type=_StateRecord)
    except (msgspec.DecodeError, TypeError, ValueError):  # ValueError covers invalid UTF-8
        raise SessionStateCorrupt() from None
    return _core(record, limits)


def state_from_dict(data: dict[str, Any], limits: RatchetLimits) -> SessionCore:
    try:
        record = msgspec.convert(data, _StateRecord)
    except (msgspec.ValidationError, TypeError):
        raise SessionStateCorrupt() from None
    return _core(record, limits)


def _core(record: _StateRecord, limits: RatchetLimits) -> SessionCore:
    try:
        core = _build(record, limits)
    except (CryptoError, ValueError, TypeError):
        raise SessionStateCorrupt() from None
    return core


def _build(record: _StateRecord, limits: RatchetLimits) -> SessionCore:
    role = Role(record.role)
    own_identity = PublicIdentity(record.own_signing_key, record.own_exchange_key)
    peer_identity = PublicIdentity(record.peer_signing_key, record.peer_exchange_key)
    initiator = own_identity if role is Role.INITIATOR else peer_identity
    x3dh = X3dhData(initiator, record.ephemeral_key, record.signed_prekey_id, record.one_time_prekey_id)
    receiving_keys = [record.receiving_key, *record.previous_receiving_keys]
    if not all(key is None or is_canonical_exchange_key(key) for key in receiving_keys):
        raise ValueError("non-canonical ratchet key")
    if record.receiving_key is None:
        raise ValueError("a session always knows the peer's ratchet key")
    if role is Role.RESPONDER and not record.confirmed:
        raise ValueError("a responder session is confirmed from the start")
    if record.confirmed != (record.receiving_chain_key is not None):
        raise ValueError("a receiving chain exists exactly when a message was received")
    if record.sending_length > MAX_COUNTER + 1 or record.receiving_length > MAX_COUNTER + 1:
        raise ValueError("counter out of range")
    skipped: dict[tuple[bytes, int], SkippedKey] = {}
    for item in record.skipped:
        if item.stored_at_step > record.receive_steps or (item.ratchet_key, item.message_number) in skipped:
            raise ValueError("inconsistent skipped key")
        if record.receive_steps - item.stored_at_step > limits.skipped_key_max_steps:
            continue  # expired under the current limits
        skipped[(item.ratchet_key, item.message_number)] = SkippedKey(item.message_key, item.stored_at_step)
    while len(skipped) > limits.max_skipped_keys:
        del skipped[next(iter(skipped))]
    ratchet = RatchetState(
        root_key=record.root_key,
        sending_private=record.sending_private,
        receiving_key=record.receiving_key,
        sending_chain_key=record.sending_chain_key,
        receiving_chain_key=record.receiving_chain_key,
        sending_length=record.sending_length,
        receiving_length=record.receiving_length,
        previous_sending_length=record.previous_sending_length,
        receive_steps=record.receive_steps,
        previous_receiving_keys=list(record.previous_receiving_keys[-limits.skipped_key_max_steps :])
        if limits.skipped_key_max_steps
        else [],
        skipped=skipped,
    )
    return SessionCore(
        role=role,
        own=DeviceAddress(record.own_user, record.own_device),
        own_identity=own_identity,
        peer=DeviceAddress(record.peer_user, record.peer_device),
        peer_identity=peer_identity,
        x3dh=x3dh,
        confirmed=record.confirmed,
        ratchet=ratchet,
    )
