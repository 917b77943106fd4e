"""Two devices wired by an in-memory link, for the crypto tests (docs/protocol-crypto.md §3.5 to §3.8)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from lien.crypto import primitives
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair
from lien.crypto.payload import Conversation, DeviceAddress, Payload, SignedPayload
from lien.crypto.ratchet import DEFAULT_LIMITS, RatchetLimits
from lien.crypto.session import AcceptedSession, Session, accept_prekey_message, initiate_session
from lien.crypto.wire import encode_prefix
from lien.crypto.x3dh import OneTimePrekeyPublic, PrekeyBundle

_counter = itertools.count()


@dataclass
class Device:
    address: DeviceAddress
    identity: IdentityKeyPair = field(default_factory=IdentityKeyPair.generate)
    signed_prekey: SignedPrekeyPair | None = None
    one_time_prekeys: dict[int, OneTimePrekeyPair] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.signed_prekey is None:
            self.signed_prekey = SignedPrekeyPair.generate(1, self.identity)
        if not self.one_time_prekeys:
            self.one_time_prekeys = {
                prekey.prekey_id: prekey for prekey in OneTimePrekeyPair.generate_batch(100, 3)
            }

    def bundle(self, *, with_one_time: bool = True) -> PrekeyBundle:
        assert self.signed_prekey is not None
        one_time = None
        if with_one_time and self.one_time_prekeys:
            prekey = next(iter(self.one_time_prekeys.values()))
            one_time = OneTimePrekeyPublic(prekey.prekey_id, prekey.public_key)
        return PrekeyBundle(
            self.identity.public,
            self.signed_prekey.prekey_id,
            self.signed_prekey.public_key,
            self.signed_prekey.signature,
            one_time,
        )

    def accept(
        self,
        body: bytes,
        sender: Device,
        *,
        limits: RatchetLimits = DEFAULT_LIMITS,
        conversation: str | None = None,
    ) -> AcceptedSession:
        signed_prekey = self.signed_prekey
        accepted = accept_prekey_message(
            self.identity,
            self.address,
            body,
            delivered_by=sender.address,
            sender_identity=sender.identity.public,
            conversation=Conversation.user(conversation or self.address.user),
            signed_prekeys=lambda key_id: (
                signed_prekey if signed_prekey and key_id == signed_prekey.prekey_id else None
            ),
            one_time_prekeys=self.one_time_prekeys.get,
            limits=limits,
        )
        if accepted.used_one_time_prekey_id is not None:
            del self.one_time_prekeys[accepted.used_one_time_prekey_id]
        return accepted


def device(user: str, device_id: int) -> Device:
    return Device(DeviceAddress(user, device_id))


def payload(
    sender: Device, recipient: Device, text: str = "bonjour", *, conversation: str | None = None
) -> Payload:
    number = next(_counter)
    return Payload(
        sender.address,
        recipient.address,
        Conversation.user(conversation or recipient.address.user),
        f"m-{number}",
        1_700_000_000_000 + number,
        text,
    )


def send(session: Session, sender: Device, recipient: Device, text: str = "bonjour") -> tuple[bytes, Payload]:
    message = payload(sender, recipient, text)
    return session.encrypt(message, sender.identity), message


def receive(session: Session, body: bytes, sender: Device, recipient: Device) -> SignedPayload:
    return session.decrypt(
        body, delivered_by=sender.address, conversation=Conversation.user(recipient.address.user)
    )


def open_pair(
    *, limits: RatchetLimits = DEFAULT_LIMITS, with_one_time: bool = True
) -> tuple[Device, Device, Session, Session]:
    """Alice opens a session with Bob; Bob accepts her first message and replies; Alice reads the reply."""
    alice, bob = device("alice", 1), device("bob", 2)
    alice_session = initiate_session(
        alice.identity, alice.address, bob.address, bob.bundle(with_one_time=with_one_time), limits=limits
    )
    first, _ = send(alice_session, alice, bob, "first")
    bob_session = bob.accept(first, alice, limits=limits).session
    reply, _ = send(bob_session, bob, alice, "reply")
    receive(alice_session, reply, bob, alice)
    return alice, bob, alice_session, bob_session


def encrypt_raw(session: Session, plaintext: bytes) -> bytes:
    """Encrypt arbitrary plaintext in ``session`` as a well-formed body: lets tests forge payloads."""
    core = session._core
    header, message_key = core.ratchet.next_sending_key()
    prefix = encode_prefix(None if core.confirmed else core.x3dh, header)
    return prefix + primitives.aead_encrypt(message_key, plaintext, session.associated_data + prefix)


def state_secrets(session: Session) -> list[bytes]:
    """Every 32-byte secret a session state holds, and the next 50 keys of each chain."""
    ratchet = session._core.ratchet
    secrets = [ratchet.root_key, ratchet.sending_private]
    secrets += [key.message_key for key in ratchet.skipped.values()]
    for chain_key in (ratchet.sending_chain_key, ratchet.receiving_chain_key):
        if chain_key is None:
            continue
        secrets.append(chain_key)
        for _ in range(50):
            chain_key, message_key = primitives.kdf_ck(chain_key)
            secrets += [chain_key, message_key]
    return secrets
