"""Receipts: who may send one, its signature, and where it goes (docs/protocol.md §6.4, §10.4).

A receipt comes from a device the message was addressed to (or, for
``decrypt-failed``, from another device of the sender), is signed by that
device over the hash of the ciphertext stored for it, is recorded once per
(message, device, kind) with the ledger, and is queued for the sender's
devices (``read`` also for the reader's other devices).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from lien import ledger as chain
from lien.protocol import errors, frames
from lien.protocol.codec import encode
from server.handlers.notify import announce
from server.services import Caller, Services
from server.storage import devices, messages
from server.storage import groups as group_store
from server.storage.committer import InboxWrites
from server.storage.schema import INBOX_STATUS


@dataclass(frozen=True)
class ReceiptOutcome:
    """What became of one receipt of a batch: the entries it queued, or the error to report."""

    receipt: frames.Receipt
    entries: list[messages.QueuedEntry]
    error: errors.LienError | None = None


async def record_receipts(
    services: Services, caller: Caller, batch: list[frames.Receipt]
) -> list[ReceiptOutcome]:
    """Record receipts from a recipient device, in order, in one transaction; queue them for the sender.

    Read receipts also go to the reader's other devices, so they mark the
    conversation read too. A repeated receipt is recorded once and forwarded once.
    A refused receipt (unknown message, not a recipient) does not stop the others.
    """

    async def store(connection: AsyncConnection, writes: InboxWrites) -> list[ReceiptOutcome]:
        now = services.clock()
        outcomes = []
        for receipt in batch:
            try:
                entries = await _store_receipt(connection, writes, caller, receipt, now)
            except errors.LienError as refusal:
                outcomes.append(ReceiptOutcome(receipt, [], refusal))
            else:
                outcomes.append(ReceiptOutcome(receipt, entries))
        return outcomes

    outcomes = await services.committer.run(store)
    for outcome in outcomes:
        if outcome.entries:
            services.metrics.receipts.labels(outcome.receipt.kind).inc()
    await announce(services, [entry for outcome in outcomes for entry in outcome.entries])
    return outcomes


async def _store_receipt(
    connection: AsyncConnection, writes: InboxWrites, caller: Caller, receipt: frames.Receipt, now: int
) -> list[messages.QueuedEntry]:
    """Check one receipt (raising before any write) and store it with its status entries."""
    message = await messages.get_message(connection, receipt.message)
    if message is None:
        raise errors.UnknownMessage()
    if message.group_id is not None:
        # Only a device that was there when the message was sent received it (a later member did not).
        joined_at = await group_store.joined_at(connection, message.group_id, caller.user_id)
        device = await devices.get_device(connection, caller.device_id)
        was_there = (
            joined_at is not None
            and joined_at <= message.created_at
            and device is not None
            and device.created_at <= message.created_at
        )
        is_recipient = was_there and message.sender_user_id != caller.user_id
    else:
        is_recipient = (
            message.recipient_user_id == caller.user_id and message.sender_user_id != caller.user_id
        )
    # A sender's other device may also fail to open its copy, and ask the sending device to repair.
    is_own_copy = message.sender_user_id == caller.user_id and message.sender_device_id != caller.device_id
    if not (is_recipient or (receipt.kind == "decrypt-failed" and is_own_copy)):
        raise errors.NotARecipient()
    await _check_receipt_signature(connection, caller, receipt)
    audience = [message.sender_user_id] + ([caller.user_id] if receipt.kind == "read" else [])
    targets = sorted(d for d in await devices.device_ids_of(connection, audience) if d != caller.device_id)
    row = messages.ReceiptRow(
        message_id=message.id,
        device_id=caller.device_id,
        user_id=caller.user_id,
        kind=receipt.kind,
        at=now,
        sha256=receipt.hash,
        device_time=receipt.at,
        signature=receipt.signature,
    )
    if not await messages.insert_receipt(connection, row):
        return []
    writes.record(
        chain.ReceiptRecorded(
            message=message.id,
            kind=receipt.kind,
            by=caller.username,
            by_device=caller.device_id,
            sha256=receipt.hash.hex(),
            device_time=receipt.at,
            signature=receipt.signature,
            at=now,
        ),
        message.id,
    )

    def build(seq: int) -> bytes:
        status = frames.Status(
            seq=seq,
            message=message.id,
            kind=receipt.kind,
            by=caller.username,
            by_device=caller.device_id,
            at=now,
            hash=receipt.hash,
            device_time=receipt.at,
            signature=receipt.signature,
        )
        return encode(status)

    return [writes.add(device_id, INBOX_STATUS, message.id, now, build) for device_id in targets]


async def _check_receipt_signature(
    connection: AsyncConnection, caller: Caller, receipt: frames.Receipt
) -> None:
    """The caller's device signed this receipt, over the hash of a ciphertext stored for it (§10.4)."""
    device = await devices.get_device(connection, caller.device_id)
    if device is None:
        raise errors.AuthenticationFailed()
    signed = chain.receipt_signing_input(
        message=receipt.message,
        kind=receipt.kind,
        ciphertext_sha256=receipt.hash,
        device_time=receipt.at,
        by=caller.username,
        by_device=caller.device_id,
    )
    if not chain.verify_signature(device.identity_signing_key, signed, receipt.signature):
        raise errors.InvalidReceipt(
            "The receipt's signature does not verify with this device's identity key."
        )
    if receipt.hash not in await messages.copy_hashes(connection, receipt.message, caller.device_id):
        raise errors.InvalidReceipt("The receipt names a ciphertext that was never stored for this device.")


async def message_receipts(services: Services, caller: Caller, message_id: str) -> list[messages.ReceiptRow]:
    """Receipts of a message, for its sender only."""
    async with services.database.read() as connection:
        message = await messages.get_message(connection, message_id)
        if message is None or message.sender_user_id != caller.user_id:
            raise errors.UnknownMessage()
        return await messages.receipts_for(connection, message_id)
