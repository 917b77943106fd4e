"""Care-team groups wired in memory, for the sender-key tests (docs/protocol-group.md §3.17)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from lien.crypto import primitives
from lien.crypto.errors import DecryptionFailed
from lien.crypto.group import SenderKey, SenderKeyReceiver
from lien.crypto.group_chain import (
    DEFAULT_SENDER_KEY_LIMITS,
    ReceiverChain,
    SenderKeyLimits,
    SenderSigningKey,
)
from lien.crypto.group_wire import encode_group_header, group_associated_data, group_body_signing_input
from lien.crypto.keys import IdentityKeyPair
from lien.crypto.payload import Conversation, DeviceAddress, GroupPayload, SignedGroupPayload

GROUP = "care-team:42"
_counter = itertools.count()


@dataclass
class Member:
    """One member device: its identity, its sender key, and a receiver per other member device."""

    address: DeviceAddress
    identity: IdentityKeyPair = field(default_factory=IdentityKeyPair.generate)
    sender_key: SenderKey | None = None
    receivers: dict[DeviceAddress, SenderKeyReceiver] = field(default_factory=dict)

    def start(self, group_id: str = GROUP) -> SenderKey:
        self.sender_key = SenderKey.create(group_id, self.address, self.identity.public)
        return self.sender_key

    def payload(self, text: str = "bonjour", group_id: str = GROUP) -> GroupPayload:
        number = next(_counter)
        return GroupPayload(
            self.address, Conversation.group(group_id), f"g-{number}", 1_700_000_000_000 + number, text
        )

    def send(self, text: str = "bonjour") -> tuple[bytes, GroupPayload]:
        assert self.sender_key is not None
        message = self.payload(text, self.sender_key.group_id)
        return self.sender_key.encrypt(message, self.identity), message

    def give_key_to(self, other: Member, *, limits: SenderKeyLimits = DEFAULT_SENDER_KEY_LIMITS) -> None:
        """What the pairwise session would carry: the current distribution, installed by ``other``."""
        assert self.sender_key is not None
        receiver = other.receivers.get(self.address)
        if receiver is None:
            receiver = SenderKeyReceiver.create(
                self.sender_key.group_id, self.address, self.identity.public, limits=limits
            )
            other.receivers[self.address] = receiver
        receiver.install(self.sender_key.distribution().encode())

    def receive(self, body: bytes, sender: Member, group_id: str = GROUP) -> SignedGroupPayload:
        return self.receivers[sender.address].decrypt(
            body, delivered_by=sender.address, conversation=Conversation.group(group_id)
        )


def member(user: str, device: int) -> Member:
    return Member(DeviceAddress(user, device))


def team(count: int = 3) -> list[Member]:
    """``count`` member devices (two users have two devices), each with a sender key known to all others."""
    names = [("alice", 1), ("alice", 2), ("bob", 3), ("carol", 4), ("dan", 5), ("erin", 6)]
    members = [member(*names[index]) for index in range(count)]
    for one in members:
        one.start()
    for one in members:
        for other in members:
            if other is not one:
                one.give_key_to(other)
    return members


def encrypt_raw(
    sender_key: SenderKey,
    plaintext: bytes,
    *,
    signing_key: SenderSigningKey | None = None,
    group_id: str | None = None,
) -> bytes:
    """A well-formed body around arbitrary plaintext, optionally signed with another key: lets tests forge."""
    core = sender_key._core
    group = group_id or core.group_id
    header = encode_group_header(core.key_id, core.iteration)
    core.chain_key, message_key = primitives.kdf_ck(core.chain_key)
    core.iteration += 1
    ciphertext = primitives.aead_encrypt(
        message_key, plaintext, group_associated_data(group, header), info=primitives.GROUP_MESSAGE_KEY_INFO
    )
    signer = signing_key or core.signing_key
    return header + ciphertext + signer.sign(group_body_signing_input(group, header + ciphertext))


def derivable_message_keys(chains: list[ReceiverChain], depth: int) -> list[bytes]:
    """Every message key these chains hold or can derive within ``depth`` steps, and the chain keys."""
    keys: list[bytes] = []
    for chain in chains:
        keys += list(chain.skipped.values())
        chain_key = chain.chain_key
        keys.append(chain_key)
        for _ in range(depth):
            chain_key, message_key = primitives.kdf_ck(chain_key)
            keys += [chain_key, message_key]
    return keys


def opens(keys: list[bytes], body: bytes, group_id: str = GROUP) -> bool:
    """Whether any of ``keys``, used as a message key, authenticates and decrypts ``body``."""
    header, ciphertext = body[:9], body[9:-64]
    associated = group_associated_data(group_id, header)
    for key in keys:
        try:
            primitives.aead_decrypt(key, ciphertext, associated, info=primitives.GROUP_MESSAGE_KEY_INFO)
        except DecryptionFailed:
            continue
        return True
    return False
