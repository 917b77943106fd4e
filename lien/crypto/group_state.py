"""Sender-key states as bytes, for the keystore (docs/protocol-group.md §3.17.8).

Two kinds of state, each a msgspec struct encoded with MessagePack: a
device's own sender key for a group (:class:`SenderKeyCore`), and what it
holds of another device's sender keys in that group (:class:`ReceiverCore`).
Decoding checks types and sizes (msgspec), then every invariant the code
relies on; anything wrong raises :class:`~lien.crypto.errors.GroupStateCorrupt`.

The encodings hold secrets (chain keys, message keys, a signing seed): they
are only ever written inside the encrypted keystore. No ``repr`` here shows one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

import msgspec

from lien.crypto import primitives
from lien.crypto.errors import CryptoError, GroupStateCorrupt
from lien.crypto.group_chain import (
    END_OF_CHAIN,
    LIMITS_CEILING,
    MAX_RECEIVED_KEYS,
    ReceiverChain,
    SenderKeyLimits,
    SenderSigningKey,
)
from lien.crypto.group_wire import MAX_KEY_ID, check_group_id
from lien.crypto.keys import PublicIdentity
from lien.crypto.payload import DeviceAddress

STATE_FORMAT: Final = 1
"""Version of these encodings; bumped, with a migration, whenever a field changes."""

_Key = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_KeyId = Annotated[int, msgspec.Meta(ge=0, le=MAX_KEY_ID)]
_Iteration = Annotated[int, msgspec.Meta(ge=0, le=END_OF_CHAIN)]


# --- what the API objects hold -------------------------------------------------


@dataclass(slots=True, eq=False)
class SenderKeyCore:
    """This device's sender key in one group; mutable only by :class:`~lien.crypto.group.SenderKey`.

    Holds secrets, so it does not compare (``eq=False``): compare ``to_bytes()`` with
    :func:`hmac.compare_digest` where needed."""

    group_id: str
    own: DeviceAddress
    own_identity: PublicIdentity
    key_id: int
    iteration: int
    """The iteration of the next message; ``END_OF_CHAIN`` once the last one was sent."""
    chain_key: bytes
    """The chain key of ``iteration``."""
    signing_key: SenderSigningKey

    def __repr__(self) -> str:
        return f"SenderKeyCore(group_id={self.group_id!r}, key_id={self.key_id}, iteration={self.iteration})"


@dataclass(slots=True, eq=False)
class ReceiverCore:
    """Another device's sender keys in one group, as this device holds them (oldest first, at most 2)."""

    group_id: str
    sender: DeviceAddress
    sender_identity: PublicIdentity
    chains: list[ReceiverChain]

    def __repr__(self) -> str:
        return f"ReceiverCore(group_id={self.group_id!r}, sender={self.sender!r}, chains={self.chains!r})"


# --- records -------------------------------------------------------------------


class _SenderRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="sender-key"):
    format: Literal[1]
    group_id: str
    own_user: str
    own_device: int
    own_signing_key: _Key
    own_exchange_key: _Key
    key_id: _KeyId
    iteration: _Iteration
    chain_key: _Key
    signing_seed: _Key

    def __repr__(self) -> str:
        return "_SenderRecord(<secret>)"


class _SkippedRecord(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    iteration: Annotated[int, msgspec.Meta(ge=0, le=END_OF_CHAIN - 1)]
    message_key: _Key

    def __repr__(self) -> str:
        return "_SkippedRecord(<secret>)"


class _ChainRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key_id: _KeyId
    signing_key: _Key
    iteration: _Iteration
    chain_key: _Key
    skipped: Annotated[list[_SkippedRecord], msgspec.Meta(max_length=LIMITS_CEILING)]

    def __repr__(self) -> str:
        return "_ChainRecord(<secret>)"


class _ReceiverRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="sender-key-receiver"):
    format: Literal[1]
    group_id: str
    sender_user: str
    sender_device: int
    sender_signing_key: _Key
    sender_exchange_key: _Key
    chains: Annotated[list[_ChainRecord], msgspec.Meta(max_length=MAX_RECEIVED_KEYS)]

    def __repr__(self) -> str:
        return "_ReceiverRecord(<secret>)"


# --- own sender key --------------------------------------------------------------


def encode_sender_key(core: SenderKeyCore) -> bytes:
    return msgspec.msgpack.encode(
        _SenderRecord(
            format=STATE_FORMAT,
            group_id=core.group_id,
            own_user=core.own.user,
            own_device=core.own.device,
            own_signing_key=core.own_identity.signing_key,
            own_exchange_key=core.own_identity.exchange_key,
            key_id=core.key_id,
            iteration=core.iteration,
            chain_key=core.chain_key,
            signing_seed=core.signing_key.seed_bytes(),
        )
    )


def decode_sender_key(data: bytes) -> SenderKeyCore:
    try:
        record = msgspec.msgpack.decode(data, type=_SenderRecord)
        return SenderKeyCore(
            group_id=check_group_id(record.group_id),
            own=DeviceAddress(record.own_user, record.own_device),
            own_identity=PublicIdentity(record.own_signing_key, record.own_exchange_key),
            key_id=record.key_id,
            iteration=record.iteration,
            chain_key=record.chain_key,
            signing_key=SenderSigningKey.from_seed(record.signing_seed),
        )
    except (msgspec.DecodeError, CryptoError, TypeError, ValueError):  # ValueError covers invalid UTF-8
        raise GroupStateCorrupt() from None


# --- receiver --------------------------------------------------------------------


def encode_receiver(core: ReceiverCore) -> bytes:
    return msgspec.msgpack.encode(
        _ReceiverRecord(
            format=STATE_FORMAT,
            group_id=core.group_id,
            sender_user=core.sender.user,
            sender_device=core.sender.device,
            sender_signing_key=core.sender_identity.signing_key,
            sender_exchange_key=core.sender_identity.exchange_key,
            chains=[
                _ChainRecord(
                    key_id=chain.key_id,
                    signing_key=chain.signing_key,
                    iteration=chain.iteration,
                    chain_key=chain.chain_key,
                    skipped=[_SkippedRecord(number, key) for number, key in chain.skipped.items()],
                )
                for chain in core.chains
            ],
        )
    )


def decode_receiver(data: bytes, limits: SenderKeyLimits) -> ReceiverCore:
    try:
        record = msgspec.msgpack.decode(data, type=_ReceiverRecord)
        return ReceiverCore(
            group_id=check_group_id(record.group_id),
            sender=DeviceAddress(record.sender_user, record.sender_device),
            sender_identity=PublicIdentity(record.sender_signing_key, record.sender_exchange_key),
            chains=_chains(record.chains, limits),
        )
    except (msgspec.DecodeError, CryptoError, TypeError, ValueError):
        raise GroupStateCorrupt() from None


def _chains(records: list[_ChainRecord], limits: SenderKeyLimits) -> list[ReceiverChain]:
    if len({record.key_id for record in records}) != len(records):
        raise ValueError("two sender keys with one key_id")
    chains = []
    for record in records:
        if not primitives.is_valid_ed25519_public(record.signing_key):
            raise ValueError("not a valid Ed25519 public key")
        iterations = [item.iteration for item in record.skipped]
        if iterations != sorted(set(iterations)) or (iterations and iterations[-1] >= record.iteration):
            raise ValueError("skipped keys out of order, repeated or not behind the chain")
        kept = (
            record.skipped[len(record.skipped) - limits.max_skipped_keys :] if limits.max_skipped_keys else []
        )
        chains.append(
            ReceiverChain(
                key_id=record.key_id,
                signing_key=record.signing_key,
                iteration=record.iteration,
                chain_key=record.chain_key,
                skipped={item.iteration: item.message_key for item in kept},
            )
        )
    return chains
