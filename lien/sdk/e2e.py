"""The SDK's end-to-end layer: sessions per peer device, kept in the keystore (docs/protocol.md §3, §7).

The client moves frames; this module turns a payload into a body for one
device and a body back into a verified payload, choosing, opening and storing
the sessions (docs/protocol-crypto.md §3.7.6 for how a body is routed). It
does no I/O: the client fetches key bundles and device lists and hands them in.
"""

from __future__ import annotations

from typing import Final

from lien.crypto import keys, wire
from lien.crypto import session as sessions
from lien.crypto.errors import CryptoError, NoSession, SessionStateCorrupt
from lien.crypto.keys import PublicIdentity
from lien.crypto.payload import Conversation, DeviceAddress, Payload, SignedPayload
from lien.crypto.x3dh import PrekeyBundle
from lien.keystore import Keystore
from lien.protocol.api import DeviceRegistration, KeyBundle, OneTimePrekey

INITIAL_ONE_TIME_PREKEYS: Final = 100


class UnknownSenderDevice(CryptoError):
    """The server names a sender device whose identity key the directory does not list."""

    code = "unknown-sender-device"
    public_message = "The message comes from a device the directory does not know."


def device_registration(store: Keystore, name: str) -> DeviceRegistration:
    """Public keys for a new device: identity, a signed prekey, a first batch of one-time prekeys."""
    signed_prekey = store.new_signed_prekey()
    one_time = store.new_one_time_prekeys(INITIAL_ONE_TIME_PREKEYS)
    store.save()
    return keys.device_registration(store.identity, signed_prekey, one_time, name=name)


def new_prekeys(store: Keystore, count: int) -> list[OneTimePrekey]:
    """More one-time prekeys; their private halves stay in the keystore (save it before uploading)."""
    return [prekey.to_body() for prekey in store.new_one_time_prekeys(count)]


def _name(peer: DeviceAddress) -> str:
    return f"{peer.user}/{peer.device}"


def load_session(store: Keystore, peer: DeviceAddress) -> sessions.Session | None:
    state = store.session(_name(peer))
    if state is None:
        return None
    try:
        return sessions.Session.from_bytes(state)
    except SessionStateCorrupt:
        store.set_session(_name(peer), None)
        return None


def drop_session(store: Keystore, peer: DeviceAddress) -> None:
    """Forget the session with ``peer``: the next message to it opens a new one (repair)."""
    store.set_session(_name(peer), None)


def has_session(store: Keystore, peer: DeviceAddress) -> bool:
    return store.session(_name(peer)) is not None


def start_session(store: Keystore, own: DeviceAddress, peer: DeviceAddress, bundle: KeyBundle) -> None:
    """Open a session with ``peer`` from the bundle the server handed out (its signature is checked)."""
    session = sessions.initiate_session(store.identity, own, peer, PrekeyBundle.from_api(bundle))
    store.set_session(_name(peer), session.to_bytes())


def encrypt(store: Keystore, payload: Payload) -> bytes:
    """The body for ``payload.recipient``; a session with it must exist (see :func:`start_session`)."""
    session = load_session(store, payload.recipient)
    if session is None:
        raise NoSession()
    body = session.encrypt(payload, store.identity)
    store.set_session(_name(payload.recipient), session.to_bytes())
    return body


def decrypt(
    store: Keystore,
    own: DeviceAddress,
    body: bytes,
    *,
    delivered_by: DeviceAddress,
    sender_identity: PublicIdentity,
    conversation: Conversation,
) -> SignedPayload:
    """Open a body from ``delivered_by``, opening or replacing its session as §3.7.6 says.

    Raises a :class:`~lien.crypto.errors.CryptoError` and changes nothing
    when the body cannot be opened or does not verify.
    """
    parsed = wire.parse_body(body)
    existing = load_session(store, delivered_by)
    if existing is not None and (not parsed.is_prekey_message or existing.matches(body)):
        if existing.peer_identity != sender_identity:
            raise UnknownSenderDevice("The sender device's identity changed since the session began.")
        message = existing.decrypt(body, delivered_by=delivered_by, conversation=conversation)
        store.set_session(_name(delivered_by), existing.to_bytes())
        return message
    if not parsed.is_prekey_message:
        raise NoSession()
    accepted = sessions.accept_prekey_message(
        store.identity,
        own,
        body,
        delivered_by=delivered_by,
        sender_identity=sender_identity,
        conversation=conversation,
        signed_prekeys=store.signed_prekey,
        one_time_prekeys=store.one_time_prekey,
    )
    store.set_session(_name(delivered_by), accepted.session.to_bytes())
    if accepted.used_one_time_prekey_id is not None:
        store.consume_one_time_prekey(accepted.used_one_time_prekey_id)
    return accepted.message
