"""Proof bundles for a message, built from the ledger (docs/protocol.md §10.5).

A bundle holds the message's entries (acceptance, resends, receipts) and the
device entries of the sender device and of every device that signed a
receipt, each in a segment of the chain that ends at a head the server signed.
Only the sender and the recipients of a message may ask for its bundle.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from lien import ledger as chain
from lien.protocol import errors
from lien.protocol.api import LedgerKey, LedgerKeys
from server.services import Caller, Services
from server.storage import groups as group_store
from server.storage import ledger, messages


async def proof_for(services: Services, caller: Caller, message_id: str) -> chain.Proof:
    async with services.database.read() as connection:
        message = await messages.get_message(connection, message_id)
        if message is None or not await _may_see(connection, caller, message):
            raise errors.UnknownMessage()
        about = await ledger.entries_about(connection, [message_id])
    devices = set()
    for stored in about:
        entry = stored.entry
        if isinstance(entry, chain.MessageAccepted | chain.MessageResent):
            devices.add(entry.sender_device)
        elif isinstance(entry, chain.ReceiptRecorded):
            devices.add(entry.by_device)
    async with services.database.read() as connection:
        device_entries = await ledger.entries_about(connection, [f"d{device}" for device in sorted(devices)])
    wanted = sorted(
        [*about, *(e for e in device_entries if isinstance(e.entry, chain.DeviceRegistered))],
        key=lambda e: e.seq,
    )
    if not wanted:
        raise errors.UnknownMessage()
    if await services.signer.sign_now() is None:
        raise errors.ServiceUnavailable("The ledger is empty.")
    return chain.Proof(message=message_id, segments=await _segments(services, wanted))


async def _segments(services: Services, wanted: list[ledger.StoredEntry]) -> list[chain.Segment]:
    """Cut the wanted entries into stretches, each ending at the first signed head after its entries."""
    segments = []
    index = 0
    async with services.database.read() as connection:
        while index < len(wanted):
            first = wanted[index].seq
            head = await ledger.signed_head_at_or_after(connection, first)
            if head is None:
                raise errors.ServiceUnavailable("No signed ledger head covers this message yet.")
            inside = []
            while index < len(wanted) and wanted[index].seq <= head.seq:
                inside.append(wanted[index])
                index += 1
            start, digests = await ledger.stretch(connection, first, head.seq)
            full = {entry.seq for entry in inside}
            segments.append(
                chain.Segment(
                    start_hash=start,
                    entries=[chain.ProvenEntry(seq=entry.seq, entry=entry.entry) for entry in inside],
                    chain=[
                        chain.ChainLink(seq=seq, digest=d)
                        for seq, d in sorted(digests.items())
                        if seq not in full
                    ],
                    head=head,
                )
            )
    return segments


async def _may_see(connection: AsyncConnection, caller: Caller, message: messages.StoredMessage) -> bool:
    if message.sender_user_id == caller.user_id or message.recipient_user_id == caller.user_id:
        return True
    if message.group_id is not None:
        return await group_store.member_role(connection, message.group_id, caller.user_id) is not None
    return False


async def ledger_keys(services: Services) -> LedgerKeys:
    """Every key that signed a head, and this node's own."""
    async with services.database.read() as connection:
        used = await ledger.signing_keys(connection)
    own = LedgerKey(key_id=services.signer.key_id, public_key=services.signer.public_key, first_used_at=None)
    if own.key_id not in {key.key_id for key in used}:
        used.append(own)
    return LedgerKeys(keys=used)
