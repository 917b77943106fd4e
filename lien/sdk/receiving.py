"""What a device does with what arrives: open, verify, show once, receipt, or ask for a repair (§7.5).

* A message is opened with the session of its sender device (one to one), or
  with the sender key of that device in the group (after installing the key
  copy that came with it), or, after a repair, with the pairwise session.
* A message that cannot be opened is never shown: the application hears of it
  (:class:`~lien.sdk.events.Undecryptable`) and the sender gets a signed
  ``decrypt-failed`` receipt, so its device repairs and sends it again.
* A message is shown once: by server id, and by (sender device, client id).
* A receipt about a message this device sent is verified against the
  receiving device's identity key and kept as proof.

Every entry is handed back to the link (``handled``) once safe; the keystore
is saved before the ack leaves.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from lien import ledger
from lien.crypto import wire
from lien.crypto.errors import CryptoError, InvalidDistribution, MalformedMessage, UnknownSenderKey
from lien.crypto.group import is_distribution
from lien.crypto.keys import PublicIdentity
from lien.crypto.payload import Conversation, DeviceAddress, SignedGroupPayload, SignedPayload
from lien.keystore import Keystore
from lien.protocol import codec, frames
from lien.sdk import e2e
from lien.sdk.directory import Directory
from lien.sdk.events import Event, GroupChanged, Message, Receipt, Undecryptable, from_millis
from lien.sdk.groups import GroupBook
from lien.sdk.link import Link

logger = logging.getLogger(__name__)

Repair = Callable[[str, DeviceAddress], None]
"""Starts the repair of a message this device sent, for one peer device."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Inbound:
    def __init__(
        self,
        *,
        keystore: Keystore,
        own: DeviceAddress,
        directory: Directory,
        groups: GroupBook,
        link: Link,
        deliver_message: Callable[[Message], None],
        report: Callable[[Event], None],
        repair: Repair,
    ) -> None:
        self._keystore = keystore
        self._own = own
        self._directory = directory
        self._groups = groups
        self._link = link
        self._deliver_message = deliver_message
        self._report = report
        self._repair = repair

    async def on_inbox(self, frame: frames.Deliver | frames.Status | frames.GroupEvent) -> None:
        match frame:
            case frames.Deliver():
                await self._on_message(frame)
            case frames.Status():
                await self._on_status(frame)
            case frames.GroupEvent():
                self._on_group_event(frame)

    # --- messages ------------------------------------------------------------------

    async def _on_message(self, deliver: frames.Deliver) -> None:
        if self._keystore.was_seen(deliver.message):
            self._link.handled(deliver.seq)  # a redelivery of something already shown
            return
        sender = DeviceAddress(deliver.sender, deliver.sender_device)
        try:
            identity = await self._directory.identity_of(deliver.sender, deliver.sender_device)
            if identity is None:
                raise e2e.UnknownSenderDevice()
            if deliver.group is not None:
                signed = await self._open_group_message(deliver, deliver.group, sender, identity)
                recipient = deliver.group
            elif deliver.to is not None:
                signed = e2e.decrypt(
                    self._keystore,
                    self._own,
                    deliver.body,
                    delivered_by=sender,
                    sender_identity=identity,
                    conversation=Conversation.user(deliver.to),
                )
                recipient = deliver.to
            else:
                raise MalformedMessage()
        except CryptoError as failure:
            await self._report_unreadable(deliver, failure)
            return
        if signed is not None:
            await self._accept(deliver, signed, recipient)
        self._link.handled(deliver.seq)

    async def _report_unreadable(self, deliver: frames.Deliver, failure: CryptoError) -> None:
        """Never shown as text: the application hears of it, the sender is asked to repair (§6.6)."""
        logger.warning("message %s could not be opened: %s", deliver.message, failure.code)
        self._report(
            Undecryptable(
                deliver.message, deliver.sender, deliver.sender_device, failure.code, repairing=True
            )
        )
        receipt = self.receipt(deliver.message, "decrypt-failed", hashlib.sha256(deliver.body).digest())
        await self._link.send_or_queue(receipt)
        self._link.handled(deliver.seq)

    async def _accept(
        self, deliver: frames.Deliver, signed: SignedPayload | SignedGroupPayload, recipient: str
    ) -> None:
        """A verified message: shown once (by server id, and by sender device + client id), then receipted."""
        payload = signed.payload
        self._keystore.remember_seen(deliver.message)
        replay_key = f"{deliver.sender}/{deliver.sender_device}/{payload.client_message_id}"
        if not self._keystore.remember_seen(replay_key):
            logger.warning("message %s repeats a message already shown; not shown again", deliver.message)
            return
        outgoing = deliver.sender == self._own.user
        message = Message(
            id=deliver.message,
            sender=deliver.sender,
            sender_device=deliver.sender_device,
            recipient=recipient,
            text=payload.text,
            sent_at=from_millis(payload.sent_at_ms),
            accepted_at=from_millis(deliver.at),
            client_id=payload.client_message_id,
            signature=signed.signature,
            payload=signed.encoded,
            signer_key=signed.signer,
            ciphertext_sha256=hashlib.sha256(deliver.body).digest(),
            group=deliver.group,
            outgoing=outgoing,
        )
        self._deliver_message(message)
        if not outgoing:
            await self._link.send_or_queue(
                self.receipt(deliver.message, "decrypted", message.ciphertext_sha256)
            )

    async def _open_group_message(
        self, deliver: frames.Deliver, group_id: str, sender: DeviceAddress, identity: PublicIdentity
    ) -> SignedPayload | SignedGroupPayload | None:
        """Install the sender key copy if any, then open the body (group body, or repaired pairwise copy)."""
        conversation = Conversation.group(group_id)
        if deliver.key is not None:
            distribution = e2e.decrypt(
                self._keystore,
                self._own,
                deliver.key,
                delivered_by=sender,
                sender_identity=identity,
                conversation=conversation,
            )
            if not is_distribution(distribution.payload):
                raise InvalidDistribution()
            self._groups.install(group_id, sender, distribution, identity)
        if deliver.body[:1] == bytes([wire.FORMAT_VERSION]):
            repaired = e2e.decrypt(
                self._keystore,
                self._own,
                deliver.body,
                delivered_by=sender,
                sender_identity=identity,
                conversation=conversation,
            )
            return None if is_distribution(repaired.payload) else repaired
        receiver = self._groups.receiver(group_id, sender)
        if receiver is None:
            raise UnknownSenderKey()
        opened = receiver.decrypt(deliver.body, delivered_by=sender, conversation=conversation)
        self._groups.store_receiver(group_id, sender, receiver)
        return opened

    # --- group events -------------------------------------------------------------

    def _on_group_event(self, event: frames.GroupEvent) -> None:
        self._groups.apply_event(event)
        if event.event == "devices-changed" and event.subject is not None:
            self._link.spawn(self._directory.devices(event.subject, refresh=True))
        self._report(
            GroupChanged(
                group=event.group,
                epoch=event.epoch,
                event=event.event,
                actor=event.actor,
                subject=event.subject,
                name=event.name,
                role=event.role,
                at=from_millis(event.at),
            )
        )
        self._link.handled(event.seq)

    # --- receipts -----------------------------------------------------------------

    async def _on_status(self, status: frames.Status) -> None:
        """Verify the receiving device's signature, keep the receipt with the sent message, report it."""
        identity = await self._directory.identity_of(status.by, status.by_device)
        signed = ledger.receipt_signing_input(
            message=status.message,
            kind=status.kind,
            ciphertext_sha256=status.hash if len(status.hash) == 32 else bytes(32),
            device_time=status.device_time,
            by=status.by,
            by_device=status.by_device,
        )
        verified = identity is not None and identity.verify(signed, status.signature)
        if not verified:
            logger.warning("a %s receipt for %s carries no valid signature", status.kind, status.message)
        else:
            self._keystore.remember_receipt(status.message, status)
        if status.kind == "decrypt-failed" and verified:
            self._repair(status.message, DeviceAddress(status.by, status.by_device))
        self._report(
            Receipt(
                status.message,
                status.kind,
                status.by,
                status.by_device,
                from_millis(status.at),
                verified=verified,
                ciphertext_sha256=status.hash,
                device_time=from_millis(status.device_time),
                signature=status.signature,
            )
        )
        self._link.handled(status.seq)

    def receipt(self, message_id: str, kind: frames.ReceiptKind, ciphertext_sha256: bytes) -> bytes:
        """A receipt frame signed by this device's identity key (docs/protocol.md §10.4)."""
        at = now_ms()
        signed = ledger.receipt_signing_input(
            message=message_id,
            kind=kind,
            ciphertext_sha256=ciphertext_sha256,
            device_time=at,
            by=self._own.user,
            by_device=self._own.device,
        )
        frame = frames.Receipt(
            message=message_id,
            kind=kind,
            hash=ciphertext_sha256,
            at=at,
            signature=self._keystore.identity.sign(signed),
        )
        return codec.encode(frame)
