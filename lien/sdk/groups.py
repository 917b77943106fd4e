"""What a device knows and holds for its care-team groups (docs/protocol.md §7.7).

No I/O: the client fetches group information and device lists, and hands in
the events it receives. This module keeps, in the keystore:

* the group record (name, epoch, members, whether the sender key must rotate,
  which member devices already hold this device's current sender key);
* this device's :class:`~lien.crypto.group.SenderKey` per group;
* a :class:`~lien.crypto.group.SenderKeyReceiver` per (group, member device).

Rotation rule: whenever a member joins, leaves or is removed, or a member's
devices change, the sender key is replaced before the next message and
distributed to the current member devices only, so that nothing a departed
member (or a removed device) holds opens a later message, and a newcomer gets
no key that opened an earlier one (docs/protocol-group.md §3.17.9).
"""

from __future__ import annotations

from lien.crypto.errors import SessionStateCorrupt
from lien.crypto.group import SenderKey, SenderKeyReceiver, accept_distribution
from lien.crypto.keys import PublicIdentity
from lien.crypto.payload import DeviceAddress, SignedPayload
from lien.keystore import GroupRecord, Keystore
from lien.protocol import frames
from lien.protocol.api import GroupInfo

LEAVING_EVENTS = frozenset({"member-removed", "member-left"})


def device_name(peer: DeviceAddress) -> str:
    return f"{peer.user}/{peer.device}"


class GroupBook:
    def __init__(self, keystore: Keystore, own: DeviceAddress, own_identity: PublicIdentity) -> None:
        self._keystore = keystore
        self._own = own
        self._own_identity = own_identity

    def record(self, group_id: str) -> GroupRecord | None:
        return self._keystore.group(group_id)

    def learn(self, info: GroupInfo) -> GroupRecord:
        """Take the server's view of a group; a member gone since last time means a rotation."""
        members = sorted(member.user for member in info.members)
        record = self._keystore.group(info.id)
        if record is None:
            record = GroupRecord(name=info.name, epoch=info.epoch, members=members)
        else:
            if set(record.members) != set(members):
                record.rotate = True  # someone left or joined: §3.17.9
            for departed in set(record.members) - set(members):
                self._forget_receivers(info.id, departed)
            record.name, record.epoch, record.members = info.name, info.epoch, members
        record.active = self._own.user in members
        record.synced = True
        self._keystore.set_group(info.id, record)
        return record

    def apply_event(self, event: frames.GroupEvent) -> GroupRecord | None:
        """Follow a membership event from the inbox; None for a group this device never heard of."""
        record = self._keystore.group(event.group)
        if record is None:
            record = GroupRecord(name=event.name or "", epoch=0, members=[])
        if event.epoch <= record.epoch and event.event != "created":
            return record  # already seen (a fresher group info came first)
        record.epoch = max(record.epoch, event.epoch)
        subject = event.subject
        if event.event in ("created", "renamed") and event.name is not None:
            record.name = event.name
        if event.event == "member-added" and subject is not None and subject not in record.members:
            record.members = sorted([*record.members, subject])
            record.rotate = True
        if event.event in LEAVING_EVENTS and subject is not None:
            record.members = [member for member in record.members if member != subject]
            record.rotate = True
            self._forget_receivers(event.group, subject)
            if subject == self._own.user:
                record.active = False
        if event.event == "devices-changed":
            record.rotate = True
        self._keystore.set_group(event.group, record)
        return record

    # --- this device's sender key ----------------------------------------------

    def sender_key(self, group_id: str) -> SenderKey:
        """The key to encrypt with now: created on first use, rotated when the record asks for it."""
        record = self._keystore.group(group_id)
        stored = self._keystore.sender_key(group_id)
        key = None
        if stored is not None:
            try:
                key = SenderKey.from_bytes(stored)
            except SessionStateCorrupt:
                key = None
        if key is None:
            key = SenderKey.create(group_id, self._own, self._own_identity)
            self._reset_distribution(group_id)
        elif record is not None and record.rotate:
            key = key.rotate()
            self._reset_distribution(group_id)
        self._keystore.set_sender_key(group_id, key.to_bytes())
        return key

    def store_sender_key(self, key: SenderKey) -> None:
        self._keystore.set_sender_key(key.group_id, key.to_bytes())

    def _reset_distribution(self, group_id: str) -> None:
        record = self._keystore.group(group_id)
        if record is not None:
            record.rotate = False
            record.distributed = []
            self._keystore.set_group(group_id, record)

    def lacking_key(self, group_id: str, targets: list[DeviceAddress]) -> list[DeviceAddress]:
        record = self._keystore.group(group_id)
        holding = set() if record is None else set(record.distributed)
        return [peer for peer in targets if device_name(peer) not in holding]

    def mark_distributed(self, group_id: str, peers: list[DeviceAddress]) -> None:
        record = self._keystore.group(group_id)
        if record is not None:
            record.distributed = sorted(set(record.distributed) | {device_name(peer) for peer in peers})
            self._keystore.set_group(group_id, record)

    def forget_distribution_to(self, group_id: str, peer: DeviceAddress) -> None:
        """``peer`` could not read with our key: give it the key again with the next message."""
        record = self._keystore.group(group_id)
        if record is not None:
            record.distributed = [name for name in record.distributed if name != device_name(peer)]
            self._keystore.set_group(group_id, record)

    # --- member devices' sender keys ---------------------------------------------

    def _forget_receivers(self, group_id: str, user: str) -> None:
        """A member left: the sender keys this device held for its devices serve no more."""
        prefix = f"{group_id}/{user}/"
        for name in self._keystore.sender_key_receiver_names():
            if name.startswith(prefix):
                self._keystore.set_sender_key_receiver(name, None)

    def _receiver_name(self, group_id: str, sender: DeviceAddress) -> str:
        return f"{group_id}/{device_name(sender)}"

    def receiver(self, group_id: str, sender: DeviceAddress) -> SenderKeyReceiver | None:
        stored = self._keystore.sender_key_receiver(self._receiver_name(group_id, sender))
        if stored is None:
            return None
        try:
            return SenderKeyReceiver.from_bytes(stored)
        except SessionStateCorrupt:
            return None

    def store_receiver(self, group_id: str, sender: DeviceAddress, receiver: SenderKeyReceiver) -> None:
        self._keystore.set_sender_key_receiver(self._receiver_name(group_id, sender), receiver.to_bytes())

    def install(
        self, group_id: str, sender: DeviceAddress, received: SignedPayload, sender_identity: PublicIdentity
    ) -> None:
        """Install a distribution that arrived over the pairwise session with ``sender``."""
        current = self.receiver(group_id, sender)
        updated = accept_distribution(received, sender_identity=sender_identity, receiver=current)
        self.store_receiver(group_id, sender, updated)
