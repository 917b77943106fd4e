"""Messages, receipts, acks and typing notices: the rules of delivery (docs/protocol.md §6).

Store first, notify second: an envelope is written to every addressed
device's inbox and committed (group commit) before ``accepted`` is answered;
only then is a notice published for the nodes holding those devices' sockets.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from lien.protocol import errors, frames, limits
from lien.protocol.codec import encode
from server.broker import BrokerUnavailable
from server.handlers.accounts import resolve_user
from server.services import Caller, Services
from server.storage import accounts, devices, messages
from server.storage.schema import INBOX_MESSAGE, INBOX_STATUS
from server.ws import notices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """What a write job committed: the answer to give and the inbox entries to announce."""

    message_id: str
    at: int
    duplicate: bool
    recipient_id: int
    entries: list[messages.InboxEntry]


def new_message_id(now: int) -> str:
    """Sortable by acceptance time, unguessable: 12 hex digits of ms + 64 random bits."""
    return f"{now:012x}{secrets.token_hex(8)}"


async def accept_envelope(services: Services, caller: Caller, send: frames.Send) -> frames.Accepted:
    """Store one envelope for every addressed device; idempotent on (device, client message id)."""
    device_ids = [copy.device for copy in send.copies]
    if len(set(device_ids)) != len(device_ids):
        raise errors.MalformedFrame("Each device may appear only once in `copies`.")
    if sum(len(copy.body) for copy in send.copies) > limits.MAX_ENVELOPE_BYTES:
        raise errors.EnvelopeTooLarge()

    async def store(connection: AsyncConnection) -> Stored:
        recipient_id = await resolve_user(services, connection, send.to)
        existing = await messages.message_by_client_id(connection, caller.device_id, send.id)
        if existing is not None:
            if existing.recipient_user_id != recipient_id:
                raise errors.IdempotencyConflict()
            return Stored(existing.id, existing.created_at, duplicate=True, recipient_id=recipient_id, entries=[])
        addressed = await devices.device_ids_of(connection, list({recipient_id, caller.user_id}))
        expected = set(addressed) - {caller.device_id}
        given = set(device_ids)
        if given != expected:
            raise errors.DevicesMismatch(
                details={"missing": sorted(expected - given), "extra": sorted(given - expected)}
            )
        now = services.clock()
        message_id = new_message_id(now)
        await messages.insert_message(
            connection,
            messages.StoredMessage(
                id=message_id,
                sender_user_id=caller.user_id,
                sender_device_id=caller.device_id,
                recipient_user_id=recipient_id,
                client_id=send.id,
                created_at=now,
            ),
        )
        first_seqs = await messages.allocate_seqs(connection, {device_id: 1 for device_id in device_ids})
        entries = [
            messages.InboxEntry(
                device_id=copy.device,
                seq=first_seqs[copy.device],
                kind=INBOX_MESSAGE,
                message_id=message_id,
                frame=encode(
                    frames.Deliver(
                        seq=first_seqs[copy.device],
                        message=message_id,
                        sender=caller.username,
                        sender_device=caller.device_id,
                        to=send.to,
                        body=copy.body,
                        at=now,
                    )
                ),
            )
            for copy in send.copies
            if copy.device in first_seqs
        ]
        await messages.append_inbox_entries(connection, entries, now)
        if recipient_id != caller.user_id:
            pairs = [(caller.user_id, recipient_id), (recipient_id, caller.user_id)]
            fresh = [pair for pair in pairs if pair not in services.known_contacts]
            if fresh:
                await messages.add_contacts(connection, fresh, now)
        return Stored(message_id, now, duplicate=False, recipient_id=recipient_id, entries=entries)

    stored = await services.committer.run(store)
    if stored.duplicate:
        services.metrics.messages_duplicate.inc()
    else:
        services.metrics.messages_accepted.inc()
        if stored.recipient_id != caller.user_id:
            services.known_contacts.update(
                {(caller.user_id, stored.recipient_id), (stored.recipient_id, caller.user_id)}
            )
        await announce(services, stored.entries, stored.at)
    return frames.Accepted(id=send.id, message=stored.message_id, at=stored.at, duplicate=stored.duplicate)


async def announce(services: Services, entries: list[messages.InboxEntry], accepted_at: int) -> None:
    """Wake whichever nodes hold the addressed devices; a failure only delays delivery."""
    if not entries:
        return
    try:
        await services.broker.publish_many(
            [
                (notices.device_channel(entry.device_id), notices.inbox_entry(entry.seq, accepted_at, entry.frame))
                for entry in entries
            ]
        )
    except BrokerUnavailable:
        services.metrics.broker_failures.inc()
        logger.warning("broker unavailable: %d notices not published; inboxes keep them", len(entries))


async def record_receipt(services: Services, caller: Caller, receipt: frames.Receipt) -> list[messages.InboxEntry]:
    """Record a receipt from a recipient device and queue it for the sender's devices.

    Read receipts also go to the reader's other devices, so they mark the
    conversation read too. A repeated receipt is recorded once and forwarded once.
    """

    async def store(connection: AsyncConnection) -> tuple[int, list[messages.InboxEntry]]:
        message = await messages.get_message(connection, receipt.message)
        if message is None:
            raise errors.UnknownMessage()
        if message.recipient_user_id != caller.user_id or message.sender_user_id == caller.user_id:
            raise errors.NotARecipient()
        audience = [message.sender_user_id] + ([caller.user_id] if receipt.kind == "read" else [])
        targets = [d for d in await devices.device_ids_of(connection, audience) if d != caller.device_id]
        now = services.clock()
        inserted = await messages.insert_receipt(
            connection,
            messages.ReceiptRow(
                message_id=message.id, device_id=caller.device_id, user_id=caller.user_id, kind=receipt.kind, at=now
            ),
        )
        if not inserted:
            return now, []
        first_seqs = await messages.allocate_seqs(connection, {device_id: 1 for device_id in targets})
        entries = [
            messages.InboxEntry(
                device_id=device_id,
                seq=seq,
                kind=INBOX_STATUS,
                message_id=message.id,
                frame=encode(
                    frames.Status(
                        seq=seq,
                        message=message.id,
                        kind=receipt.kind,
                        by=caller.username,
                        by_device=caller.device_id,
                        at=now,
                    )
                ),
            )
            for device_id, seq in first_seqs.items()
        ]
        await messages.append_inbox_entries(connection, entries, now)
        return now, entries

    at, entries = await services.committer.run(store)
    if entries:
        services.metrics.receipts.labels(receipt.kind).inc()
        await announce(services, entries, at)
    return entries


async def ack(services: Services, caller: Caller, up_to: int) -> None:
    async def store(connection: AsyncConnection) -> None:
        await messages.ack_up_to(connection, caller.device_id, up_to)

    await services.committer.run(store)


async def relay_typing(services: Services, caller: Caller, typing: frames.Typing) -> None:
    """Ephemeral: published to the recipient's devices, never stored."""
    async with services.database.read() as connection:
        recipient_id = await resolve_user(services, connection, typing.to)
    event = frames.TypingEvent(sender=caller.username, sender_device=caller.device_id, active=typing.active)
    try:
        await services.broker.publish(notices.user_channel(recipient_id), notices.ephemeral(encode(event)))
    except BrokerUnavailable:
        services.metrics.broker_failures.inc()


async def watchable(services: Services, caller: Caller, usernames: list[str]) -> dict[str, int]:
    """username -> id for the users the caller may watch: contacts only, else NotAContact."""
    async with services.database.read() as connection:
        found = await accounts.user_ids_by_username(connection, list(set(usernames)))
        unknown = sorted(set(usernames) - set(found))
        if unknown:
            raise errors.UnknownUser(details={"users": unknown})
        allowed = await messages.contacts_among(connection, caller.user_id, list(found.values()))
    refused = sorted(name for name, user_id in found.items() if user_id not in allowed and user_id != caller.user_id)
    if refused:
        raise errors.NotAContact(details={"users": refused})
    return found


async def message_receipts(services: Services, caller: Caller, message_id: str) -> list[messages.ReceiptRow]:
    """Receipts of a message, for its sender only."""
    async with services.database.read() as connection:
        message = await messages.get_message(connection, message_id)
        if message is None or message.sender_user_id != caller.user_id:
            raise errors.UnknownMessage()
        return await messages.receipts_for(connection, message_id)
