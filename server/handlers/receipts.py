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
from server.storage import devices, messages, receipt_facts
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
    outcomes: list[ReceiptOutcome] = await services.committer.run_bulk(
        _store_receipt_batches, _ReceiptBatch(services, caller, batch)
    )
    for outcome in outcomes:
        if outcome.entries:
            services.metrics.receipts.labels(outcome.receipt.kind).inc()
    await announce(services, [entry for outcome in outcomes for entry in outcome.entries])
    return outcomes


@dataclass(frozen=True)
class _ReceiptBatch:
    """One connection's receipts, recorded in their order within a shared transaction."""

    services: Services
    caller: Caller
    receipts: list[frames.Receipt]


@dataclass(frozen=True)
class _Facts:
    """What every receipt of a transaction is checked against, read once for all of them."""

    read: receipt_facts.ReceiptFacts
    joined_at: dict[tuple[str, int], int]
    """(group id, user id) -> when that member joined, for the group messages receipted."""


async def _store_receipt_batches(
    connection: AsyncConnection, writes: InboxWrites, batches: list[_ReceiptBatch]
) -> list[list[ReceiptOutcome]]:
    """Check and record the receipts of every connection in this transaction; one outcome list per batch.

    Whatever their number, the receipts of a transaction cost a handful of
    statements together rather than seven each: everything they are checked
    against and the devices to tell in one (``receipt_facts``), group
    memberships when group messages are receipted, one insert. Status
    entries and ledger records are then queued in each connection's order.
    """
    now = batches[0].services.clock()
    facts = await _read_facts(connection, batches)
    checked: list[list[tuple[frames.Receipt, messages.MessageOrigin | errors.LienError]]] = [
        [(receipt, _check(facts, batch.caller, receipt)) for receipt in batch.receipts] for batch in batches
    ]
    devices_of = devices.by_owner(facts.read.audience)
    rows = [
        _row(batch.caller, receipt, origin, now)
        for batch, found in zip(batches, checked, strict=True)
        for receipt, origin in found
        if isinstance(origin, messages.MessageOrigin)
    ]
    recorded_now = await messages.insert_receipts(connection, rows)
    results: list[list[ReceiptOutcome]] = []
    for batch, found in zip(batches, checked, strict=True):
        outcomes = []
        for receipt, origin in found:
            if isinstance(origin, errors.LienError):
                outcomes.append(ReceiptOutcome(receipt, [], origin))
                continue
            key = (origin.id, batch.caller.device_id, receipt.kind)
            if key not in recorded_now:
                outcomes.append(ReceiptOutcome(receipt, []))  # reported before: recorded and sent once
                continue
            recorded_now.discard(key)  # the same receipt twice in this transaction: the second is a repeat
            targets = sorted(
                {
                    device_id
                    for user_id in _audience(batch.caller, receipt, origin)
                    for device_id in devices_of.get(user_id, [])
                    if device_id != batch.caller.device_id
                }
            )
            outcomes.append(
                ReceiptOutcome(receipt, _queue(writes, batch.caller, receipt, origin, targets, now))
            )
        results.append(outcomes)
    return results


async def _read_facts(connection: AsyncConnection, batches: list[_ReceiptBatch]) -> _Facts:
    read = await receipt_facts.read(
        connection,
        message_ids=sorted({receipt.message for batch in batches for receipt in batch.receipts}),
        device_ids=sorted({batch.caller.device_id for batch in batches}),
        hash_keys=sorted(
            {(receipt.message, batch.caller.device_id) for batch in batches for receipt in batch.receipts}
        ),
        # A read receipt also goes to the reader's other devices (the senders' are read anyway).
        users=sorted({batch.caller.user_id for batch in batches}),
    )
    memberships = sorted(
        {
            (origin.group_id, batch.caller.user_id)
            for batch in batches
            for receipt in batch.receipts
            if (origin := read.origins.get(receipt.message)) is not None and origin.group_id is not None
        }
    )
    return _Facts(read=read, joined_at=await group_store.joined_at(connection, memberships))


def _check(
    facts: _Facts, caller: Caller, receipt: frames.Receipt
) -> messages.MessageOrigin | errors.LienError:
    """The message a receipt stands for, or why the receipt is refused."""
    origin = facts.read.origins.get(receipt.message)
    if origin is None:
        return errors.UnknownMessage()
    device = facts.read.devices.get(caller.device_id)
    if origin.group_id is not None:
        # Only a device that was there when the message was sent received it (a later member did not).
        joined_at = facts.joined_at.get((origin.group_id, caller.user_id))
        was_there = (
            joined_at is not None
            and joined_at <= origin.created_at
            and device is not None
            and device.created_at <= origin.created_at
        )
        is_recipient = was_there and origin.sender_user_id != caller.user_id
    else:
        is_recipient = origin.recipient_user_id == caller.user_id and origin.sender_user_id != caller.user_id
    # A sender's other device may also fail to open its copy, and ask the sending device to repair.
    is_own_copy = origin.sender_user_id == caller.user_id and origin.sender_device_id != caller.device_id
    if not (is_recipient or (receipt.kind == "decrypt-failed" and is_own_copy)):
        return errors.NotARecipient()
    if device is None:
        return errors.AuthenticationFailed()
    return _check_signature(facts, device, caller, receipt, origin)


def _check_signature(
    facts: _Facts,
    device: receipt_facts.ReceivingDevice,
    caller: Caller,
    receipt: frames.Receipt,
    origin: messages.MessageOrigin,
) -> messages.MessageOrigin | errors.LienError:
    """The caller's device signed this receipt, over the hash of a ciphertext stored for it (§10.4)."""
    signed = chain.receipt_signing_input(
        message=receipt.message,
        kind=receipt.kind,
        ciphertext_sha256=receipt.hash,
        device_time=receipt.at,
        by=caller.username,
        by_device=caller.device_id,
    )
    if not chain.verify_signature(device.identity_signing_key, signed, receipt.signature):
        return errors.InvalidReceipt(
            "The receipt's signature does not verify with this device's identity key."
        )
    stored = facts.read.copy_hashes.get((receipt.message, caller.device_id), set())
    if receipt.hash not in stored and receipt.hash != origin.body_sha256:
        return errors.InvalidReceipt("The receipt names a ciphertext that was never stored for this device.")
    return origin


def _audience(caller: Caller, receipt: frames.Receipt, origin: messages.MessageOrigin) -> list[int]:
    """Whose devices hear of a receipt: the sender's; for ``read``, also the reader's other devices."""
    return [origin.sender_user_id] + ([caller.user_id] if receipt.kind == "read" else [])


def _row(
    caller: Caller, receipt: frames.Receipt, origin: messages.MessageOrigin, now: int
) -> messages.ReceiptRow:
    return messages.ReceiptRow(
        message_id=origin.id,
        device_id=caller.device_id,
        user_id=caller.user_id,
        kind=receipt.kind,
        at=now,
        sha256=receipt.hash,
        device_time=receipt.at,
        signature=receipt.signature,
    )


def _queue(
    writes: InboxWrites,
    caller: Caller,
    receipt: frames.Receipt,
    origin: messages.MessageOrigin,
    targets: list[int],
    now: int,
) -> list[messages.QueuedEntry]:
    """Queue a receipt just recorded: its ledger record, and a status entry for each device told."""
    writes.record(
        chain.ReceiptRecorded(
            message=origin.id,
            kind=receipt.kind,
            by=caller.username,
            by_device=caller.device_id,
            sha256=receipt.hash.hex(),
            device_time=receipt.at,
            signature=receipt.signature,
            at=now,
        ),
        origin.id,
    )

    def build(seq: int) -> bytes:
        status = frames.Status(
            seq=seq,
            message=origin.id,
            kind=receipt.kind,
            by=caller.username,
            by_device=caller.device_id,
            at=now,
            hash=receipt.hash,
            device_time=receipt.at,
            signature=receipt.signature,
        )
        return encode(status)

    return [writes.add(device_id, INBOX_STATUS, origin.id, now, build) for device_id in targets]


async def message_receipts(services: Services, caller: Caller, message_id: str) -> list[messages.ReceiptRow]:
    """Receipts of a message, for its sender only."""
    async with services.database.read() as connection:
        message = await messages.get_message(connection, message_id)
        if message is None or message.sender_user_id != caller.user_id:
            raise errors.UnknownMessage()
        return await messages.receipts_for(connection, message_id)
