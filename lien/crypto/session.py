"""End-to-end sessions between two devices: the API the SDK calls (docs/protocol-crypto.md §3.5 to §3.8).

A :class:`Session` joins X3DH (§3.5), the Double Ratchet (§3.6), the body
format (§3.7) and the signed payload (§3.8):

* :func:`initiate_session` opens a session with a peer device from its key
  bundle. Until the peer answers, every body it encrypts is a *prekey
  message* carrying the X3DH data (§3.7.3).
* :func:`accept_prekey_message` opens the peer's side from the first prekey
  message it receives, and says which one-time prekey it used: the caller
  deletes that private key once the new session is stored (§3.5.5).
* :meth:`Session.encrypt` signs a :class:`~lien.crypto.payload.Payload` with
  the device's identity key and encrypts it; :meth:`Session.decrypt`
  decrypts, verifies the signature and the addressing, and returns the
  :class:`~lien.crypto.payload.SignedPayload` to keep as proof.

Every operation is all-or-nothing: a body that fails any check leaves the
session exactly as it was. Nothing here does I/O; the caller stores
:meth:`Session.to_bytes` in its encrypted keystore after every change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nacl.utils

from lien.crypto import primitives, x3dh
from lien.crypto.errors import (
    IdentityMismatch,
    InvalidKey,
    MalformedMessage,
    MessageTooLarge,
    NoSession,
    SenderMismatch,
    SessionMismatch,
    UnknownPrekey,
)
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair
from lien.crypto.payload import (
    Conversation,
    DeviceAddress,
    Payload,
    SignedPayload,
    check_delivery,
    decode_plaintext,
    encode_plaintext,
    sign_payload,
    verify_pairwise_payload,
)
from lien.crypto.ratchet import DEFAULT_LIMITS, RandomSource, RatchetLimits, RatchetState
from lien.crypto.session_state import (
    Role,
    SessionCore,
    decode_state,
    encode_state,
    state_from_dict,
    state_to_dict,
)
from lien.crypto.wire import MAX_BODY_BYTES, X3dhData, encode_prefix, parse_body

SignedPrekeyLookup = Callable[[int], SignedPrekeyPair | None]
"""Returns this device's signed prekey with that id (current or recently rotated), or None."""
OneTimePrekeyLookup = Callable[[int], OneTimePrekeyPair | None]
"""Returns this device's unused one-time prekey with that id, or None."""


def _os_random(size: int) -> bytes:
    return nacl.utils.random(size)


class Session:
    """One device's end of an encrypted session with one peer device.

    Not built directly: use :func:`initiate_session`,
    :func:`accept_prekey_message` or :meth:`from_bytes`. ``repr`` names the
    two devices and never shows a key.
    """

    __slots__ = ("_core", "_limits", "_random")

    def __init__(self, core: SessionCore, limits: RatchetLimits, random_source: RandomSource) -> None:
        self._core = core
        self._limits = limits
        self._random = random_source

    # --- who ---------------------------------------------------------------

    @property
    def own(self) -> DeviceAddress:
        return self._core.own

    @property
    def peer(self) -> DeviceAddress:
        return self._core.peer

    @property
    def peer_identity(self) -> PublicIdentity:
        return self._core.peer_identity

    @property
    def is_initiator(self) -> bool:
        return self._core.role is Role.INITIATOR

    @property
    def awaiting_reply(self) -> bool:
        """True while this initiator has decrypted nothing from the peer (so it sends prekey messages)."""
        return not self._core.confirmed

    @property
    def associated_data(self) -> bytes:
        """X3DH's ``AD`` (§3.5.4): public, 128 bytes."""
        core = self._core
        if core.role is Role.INITIATOR:
            return x3dh.associated_data(core.own_identity, core.peer_identity)
        return x3dh.associated_data(core.peer_identity, core.own_identity)

    # --- sending -------------------------------------------------------------

    def encrypt(self, payload: Payload, signer: IdentityKeyPair) -> bytes:
        """Sign ``payload`` with ``signer`` (this device's identity) and encrypt it into a body (§3.7).

        ``payload.sender`` must be this session's own device and
        ``payload.recipient`` its peer device (a ``ValueError`` otherwise: it
        is a programming error). Raises
        :class:`~lien.crypto.errors.MessageTooLarge` when the body would
        exceed ``limits.MAX_COPY_BYTES``; the session is then unchanged.
        """
        core = self._core
        if payload.sender != core.own or payload.recipient != core.peer:
            raise ValueError("the payload must go from this session's device to its peer device")
        if signer.public != core.own_identity:
            raise ValueError("the payload must be signed by this device's identity key")
        plaintext = encode_plaintext(sign_payload(signer, payload))
        working = core.ratchet.copy()
        header, message_key = working.next_sending_key()
        prefix = encode_prefix(None if core.confirmed else core.x3dh, header)
        if len(prefix) + len(plaintext) + primitives.AEAD_TAG_SIZE > MAX_BODY_BYTES:
            raise MessageTooLarge()
        body = prefix + primitives.aead_encrypt(message_key, plaintext, self.associated_data + prefix)
        core.ratchet = working
        return body

    # --- receiving -----------------------------------------------------------

    def decrypt(
        self, body: bytes, *, delivered_by: DeviceAddress, conversation: Conversation
    ) -> SignedPayload:
        """Decrypt a body from the peer and verify what it says (§3.6.5, §3.8.4).

        ``delivered_by`` is the sender and sender device the server reported;
        ``conversation`` the conversation the envelope came in (for a 1:1
        message, ``Conversation.user(deliver.to)``). Raises a
        :class:`~lien.crypto.errors.CryptoError`, leaving the session
        unchanged, when anything is wrong: see §3.9 for which.
        """
        core = self._core
        if delivered_by != core.peer:
            raise SenderMismatch()
        parsed = parse_body(body)
        if parsed.x3dh is not None and (core.role is Role.INITIATOR or parsed.x3dh != core.x3dh):
            raise SessionMismatch()
        working = core.ratchet.copy()
        try:
            message_key = working.message_key_for(parsed.header, self._random, self._limits)
        except InvalidKey:
            raise MalformedMessage() from None
        plaintext = primitives.aead_decrypt(
            message_key, parsed.ciphertext, self.associated_data + parsed.prefix
        )
        signed = _open_plaintext(plaintext, core, conversation)
        core.ratchet = working
        core.confirmed = True
        return signed

    def matches(self, body: bytes) -> bool:
        """Whether ``body`` is a prekey message of the set-up that opened this (responder) session.

        The SDK calls this when a prekey message arrives from a device it has
        a session with: ``False`` means the peer started a new session, to be
        opened with :func:`accept_prekey_message` (§3.7.6). Raises like
        :func:`~lien.crypto.wire.parse_body` for a body that does not parse.
        """
        parsed = parse_body(body)
        return (
            parsed.x3dh is not None and self._core.role is Role.RESPONDER and parsed.x3dh == self._core.x3dh
        )

    # --- persistence (§3.6.7) ----------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state, private keys included: store it only in the encrypted keystore."""
        return encode_state(self._core)

    def to_dict(self) -> dict[str, Any]:
        """The same as :meth:`to_bytes`, as JSON-compatible builtins (bytes in base64)."""
        return state_to_dict(self._core)

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: RatchetLimits = DEFAULT_LIMITS) -> Session:
        """Restore a session; raises :class:`~lien.crypto.errors.SessionStateCorrupt` if invalid."""
        return cls(decode_state(data, limits), limits, _os_random)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, limits: RatchetLimits = DEFAULT_LIMITS) -> Session:
        return cls(state_from_dict(data, limits), limits, _os_random)

    def __repr__(self) -> str:
        role = self._core.role.value
        return f"Session({role}, own={self._core.own!r}, peer={self._core.peer!r})"


def _open_plaintext(plaintext: bytes, core: SessionCore, conversation: Conversation) -> SignedPayload:
    payload_bytes, signature = decode_plaintext(plaintext)
    signer = core.peer_identity.signing_key
    payload = verify_pairwise_payload(payload_bytes, signature, signer)
    check_delivery(payload, delivered_by=core.peer, own=core.own, conversation=conversation)
    return SignedPayload(payload, payload_bytes, signature, signer)


# --- set-up (§3.5) -------------------------------------------------------------


def initiate_session(
    own_identity: IdentityKeyPair,
    own: DeviceAddress,
    peer: DeviceAddress,
    bundle: x3dh.PrekeyBundle,
    *,
    limits: RatchetLimits = DEFAULT_LIMITS,
) -> Session:
    """Open a session with ``peer`` from its key bundle (signature already checked by the bundle).

    The first bodies it encrypts are prekey messages; the peer needs one of
    them to open its side.
    """
    return _initiate(own_identity, own, peer, bundle, limits, _os_random)


def _initiate(
    own_identity: IdentityKeyPair,
    own: DeviceAddress,
    peer: DeviceAddress,
    bundle: x3dh.PrekeyBundle,
    limits: RatchetLimits,
    random_source: RandomSource,
) -> Session:
    if own == peer:
        raise ValueError("a device does not open a session with itself")
    ephemeral_private = random_source(primitives.KEY_SIZE)
    secret = x3dh.initiate(own_identity, bundle, ephemeral_private)
    one_time_id = None if bundle.one_time_prekey is None else bundle.one_time_prekey.prekey_id
    x3dh_data = X3dhData(
        own_identity.public, primitives.x25519_public(ephemeral_private), bundle.signed_prekey_id, one_time_id
    )
    ratchet = RatchetState.for_initiator(
        secret.shared_secret, bundle.signed_prekey, random_source(primitives.KEY_SIZE)
    )
    core = SessionCore(
        role=Role.INITIATOR,
        own=own,
        own_identity=own_identity.public,
        peer=peer,
        peer_identity=bundle.identity,
        x3dh=x3dh_data,
        confirmed=False,
        ratchet=ratchet,
    )
    return Session(core, limits, random_source)


@dataclass(frozen=True, slots=True)
class AcceptedSession:
    """What :func:`accept_prekey_message` returns.

    Store ``session``, then delete the private one-time prekey
    ``used_one_time_prekey_id`` (when not None) from the keystore: it must
    never serve again.
    """

    session: Session
    message: SignedPayload
    used_one_time_prekey_id: int | None


def accept_prekey_message(
    own_identity: IdentityKeyPair,
    own: DeviceAddress,
    body: bytes,
    *,
    delivered_by: DeviceAddress,
    sender_identity: PublicIdentity,
    conversation: Conversation,
    signed_prekeys: SignedPrekeyLookup,
    one_time_prekeys: OneTimePrekeyLookup,
    limits: RatchetLimits = DEFAULT_LIMITS,
) -> AcceptedSession:
    """Open the responder's side from a prekey message and decrypt it (§3.5.5).

    ``sender_identity`` is the identity the server lists for
    ``delivered_by`` (the sending device); a prekey message claiming other
    keys raises :class:`~lien.crypto.errors.IdentityMismatch`. A normal
    ratchet message raises :class:`~lien.crypto.errors.NoSession`; a
    prekey id this device does not have raises
    :class:`~lien.crypto.errors.UnknownPrekey`.
    """
    return _accept(
        own_identity,
        own,
        body,
        delivered_by=delivered_by,
        sender_identity=sender_identity,
        conversation=conversation,
        signed_prekeys=signed_prekeys,
        one_time_prekeys=one_time_prekeys,
        limits=limits,
        random_source=_os_random,
    )


def _accept(
    own_identity: IdentityKeyPair,
    own: DeviceAddress,
    body: bytes,
    *,
    delivered_by: DeviceAddress,
    sender_identity: PublicIdentity,
    conversation: Conversation,
    signed_prekeys: SignedPrekeyLookup,
    one_time_prekeys: OneTimePrekeyLookup,
    limits: RatchetLimits,
    random_source: RandomSource,
) -> AcceptedSession:
    if own == delivered_by:
        raise SenderMismatch()
    parsed = parse_body(body)
    data = parsed.x3dh
    if data is None:
        raise NoSession()
    if data.sender != sender_identity:
        raise IdentityMismatch()
    signed_prekey = signed_prekeys(data.signed_prekey_id)
    if signed_prekey is None or signed_prekey.prekey_id != data.signed_prekey_id:
        raise UnknownPrekey()
    one_time_prekey = None
    if data.one_time_prekey_id is not None:
        one_time_prekey = one_time_prekeys(data.one_time_prekey_id)
        if one_time_prekey is None or one_time_prekey.prekey_id != data.one_time_prekey_id:
            raise UnknownPrekey()
    try:
        secret = x3dh.respond(own_identity, signed_prekey, one_time_prekey, data.sender, data.ephemeral_key)
    except InvalidKey:
        raise MalformedMessage() from None
    core = SessionCore(
        role=Role.RESPONDER,
        own=own,
        own_identity=own_identity.public,
        peer=delivered_by,
        peer_identity=data.sender,
        x3dh=data,
        confirmed=True,
        ratchet=RatchetState.for_responder(secret.shared_secret, signed_prekey.private_bytes()),
    )
    session = Session(core, limits, random_source)
    working = core.ratchet.copy()
    try:
        message_key = working.message_key_for(parsed.header, random_source, limits)
    except InvalidKey:
        raise MalformedMessage() from None
    plaintext = primitives.aead_decrypt(
        message_key, parsed.ciphertext, secret.associated_data + parsed.prefix
    )
    signed = _open_plaintext(plaintext, core, conversation)
    core.ratchet = working
    return AcceptedSession(session, signed, data.one_time_prekey_id)
