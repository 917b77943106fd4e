"""Accepting envelopes: one to one, group, and repaired copies (docs/protocol.md §6.1, §6.6, §6.7).

Store first, notify second: an envelope is written to every addressed
device's inbox and committed (group commit) before ``accepted`` is answered;
only then is a notice published for the nodes holding those devices' sockets.
Every acceptance is appended to the ledger with the hash of each copy.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from lien import ledger as chain
from lien.protocol import errors, frames, limits
from lien.protocol.codec import encode
from server.handlers.notify import announce
from server.handlers.users import resolve_user
from server.services import Caller, Services
from server.storage import accounts, devices, messages
from server.storage import groups as group_store
from server.storage.committer import InboxWrites
from server.storage.schema import INBOX_GROUP_MESSAGE, INBOX_MESSAGE


@dataclass(frozen=True)
class Stored:
    """What a write job committed: the answer to give and the inbox entries to announce."""

    message_id: str
    at: int
    duplicate: bool
    recipient_id: int
    entries: list[messages.QueuedEntry]
    resent: bool = False


def new_message_id(now: int) -> str:
    """Sortable by acceptance time, unguessable: 12 hex digits of ms + 64 random bits."""
    return f"{now:012x}{secrets.token_hex(8)}"


Envelope = frames.Send | frames.GroupSend | frames.Resend
"""What a device's send queue holds: stored in arrival order (see server/ws/connection.py)."""


def check_envelope(send: Envelope) -> None:
    """What can be refused before touching storage."""
    if isinstance(send, frames.GroupSend):
        if len(send.keys) > limits.MAX_GROUP_KEY_COPIES:
            raise errors.TooManyRecipients(
                f"A group message carries at most {limits.MAX_GROUP_KEY_COPIES} keys."
            )
        return
    if len(send.copies) > limits.MAX_COPIES_PER_ENVELOPE:
        raise errors.TooManyRecipients(
            f"A message has at most {limits.MAX_COPIES_PER_ENVELOPE} device copies."
        )
    device_ids = [copy.device for copy in send.copies]
    if len(set(device_ids)) != len(device_ids):
        raise errors.MalformedFrame("Each device may appear only once in `copies`.")
    if sum(len(copy.body) for copy in send.copies) > limits.MAX_ENVELOPE_BYTES:
        raise errors.EnvelopeTooLarge()


async def accept_envelopes(
    services: Services, caller: Caller, sends: list[Envelope]
) -> list[frames.Accepted | errors.LienError]:
    """Store envelopes from one device, in the order given, in one transaction.

    Each is stored for every addressed device and is idempotent on (device,
    client message id). The answer list matches ``sends``: ``accepted`` or the
    error that refused that envelope (the others are unaffected).
    """
    answers: list[frames.Accepted | errors.LienError | None] = []
    checked: list[Envelope] = []
    for send in sends:
        try:
            check_envelope(send)
        except errors.LienError as refusal:
            answers.append(refusal)
        else:
            answers.append(None)
            checked.append(send)

    async def store(connection: AsyncConnection, writes: InboxWrites) -> list[Stored | errors.LienError]:
        outcomes: list[Stored | errors.LienError] = []
        for send in checked:
            try:
                if isinstance(send, frames.Resend):
                    outcomes.append(await _store_resend(services, connection, writes, caller, send))
                elif isinstance(send, frames.GroupSend):
                    outcomes.append(await _store_group_send(services, connection, writes, caller, send))
                else:
                    outcomes.append(await _store_envelope(services, connection, writes, caller, send))
            except errors.LienError as refusal:
                outcomes.append(refusal)
        return outcomes

    outcomes = iter(await services.committer.run(store) if checked else [])
    announced: list[messages.QueuedEntry] = []
    results: list[frames.Accepted | errors.LienError] = []
    for send, answer in zip(sends, answers, strict=True):
        if answer is not None:
            results.append(answer)
            continue
        outcome = next(outcomes)
        if isinstance(outcome, errors.LienError):
            results.append(outcome)
            continue
        if outcome.duplicate:
            services.metrics.messages_duplicate.inc()
        elif outcome.resent:
            services.metrics.messages_resent.inc(len(outcome.entries))
            announced.extend(outcome.entries)
        else:
            services.metrics.messages_accepted.inc()
            if outcome.recipient_id != caller.user_id:
                services.known_contacts.update(
                    {(caller.user_id, outcome.recipient_id), (outcome.recipient_id, caller.user_id)}
                )
            announced.extend(outcome.entries)
        results.append(
            frames.Accepted(
                id=send.id, message=outcome.message_id, at=outcome.at, duplicate=outcome.duplicate
            )
        )
    await announce(services, announced)
    return results


async def _store_envelope(
    services: Services, connection: AsyncConnection, writes: InboxWrites, caller: Caller, send: frames.Send
) -> Stored:
    """Check one envelope (raising before any write), then store it and queue its inbox entries."""
    recipient_id = await resolve_user(services, connection, send.to)
    existing = await messages.message_by_client_id(connection, caller.device_id, send.id)
    if existing is not None:
        if existing.recipient_user_id != recipient_id:
            raise errors.IdempotencyConflict()
        return Stored(existing.id, existing.created_at, duplicate=True, recipient_id=recipient_id, entries=[])
    addressed = await devices.device_ids_of(connection, list({recipient_id, caller.user_id}))
    expected = set(addressed) - {caller.device_id}
    given = {copy.device for copy in send.copies}
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
    hashes = [(copy.device, hashlib.sha256(copy.body).digest()) for copy in send.copies]
    await messages.insert_copy_hashes(connection, [(message_id, device, sha256) for device, sha256 in hashes])
    writes.record(
        chain.MessageAccepted(
            message=message_id,
            client_id=send.id,
            sender=caller.username,
            sender_device=caller.device_id,
            recipient=send.to,
            copies=[
                chain.CopyHash(
                    user=caller.username if addressed[device] == caller.user_id else send.to,
                    device=device,
                    sha256=sha256.hex(),
                )
                for device, sha256 in hashes
            ],
            at=now,
        ),
        message_id,
    )
    deliver_frame = _deliver_builder(message_id, caller, now, to=send.to)
    entries = [
        writes.add(copy.device, INBOX_MESSAGE, message_id, now, deliver_frame(copy.body))
        for copy in send.copies
    ]
    if recipient_id != caller.user_id:
        pairs = [(caller.user_id, recipient_id), (recipient_id, caller.user_id)]
        fresh = [pair for pair in pairs if pair not in services.known_contacts]
        if fresh:
            await messages.add_contacts(connection, fresh, now)
    return Stored(message_id, now, duplicate=False, recipient_id=recipient_id, entries=entries)


async def _store_resend(
    services: Services,
    connection: AsyncConnection,
    writes: InboxWrites,
    caller: Caller,
    resend: frames.Resend,
) -> Stored:
    """Queue new copies of a message this user sent, for devices of its conversation (§6.6)."""
    message = await messages.get_message(connection, resend.message)
    if message is None or message.sender_user_id != caller.user_id:
        raise errors.UnknownMessage()
    if message.group_id is not None:
        member_ids = [member.user_id for member in await group_store.members(connection, message.group_id)]
        addressed = await devices.device_ids_of(connection, member_ids)
    else:
        assert message.recipient_user_id is not None
        addressed = await devices.device_ids_of(connection, list({message.recipient_user_id, caller.user_id}))
    extra = sorted({copy.device for copy in resend.copies} - (set(addressed) - {caller.device_id}))
    if extra:
        raise errors.DevicesMismatch(details={"missing": [], "extra": extra})
    now = services.clock()
    if message.group_id is not None:
        build = _deliver_builder(message.id, caller, message.created_at, group=message.group_id)
    else:
        assert message.recipient_user_id is not None
        usernames = await accounts.usernames_by_id(connection, [message.recipient_user_id])
        build = _deliver_builder(
            message.id, caller, message.created_at, to=usernames[message.recipient_user_id]
        )
    hashes = [(copy.device, hashlib.sha256(copy.body).digest()) for copy in resend.copies]
    await messages.insert_copy_hashes(connection, [(message.id, device, sha256) for device, sha256 in hashes])
    owners = await accounts.usernames_by_id(connection, sorted({addressed[device] for device, _ in hashes}))
    writes.record(
        chain.MessageResent(
            message=message.id,
            sender=caller.username,
            sender_device=caller.device_id,
            copies=[
                chain.CopyHash(user=owners[addressed[device]], device=device, sha256=sha256.hex())
                for device, sha256 in hashes
            ],
            at=now,
        ),
        message.id,
    )
    entries = [
        writes.add(copy.device, INBOX_MESSAGE, message.id, now, build(copy.body)) for copy in resend.copies
    ]
    return Stored(message.id, now, duplicate=False, recipient_id=caller.user_id, entries=entries, resent=True)


async def _store_group_send(
    services: Services,
    connection: AsyncConnection,
    writes: InboxWrites,
    caller: Caller,
    send: frames.GroupSend,
) -> Stored:
    """Store a group message once and queue an entry for every member device but the sender's (§6.7).

    The group row is held (``FOR SHARE``) until commit, so a membership change
    cannot slip between the epoch check and the entries: a member removed
    before this commits never gets the message, one removed after was a member
    when it was sent.
    """
    group = await group_store.get_group(connection, send.group, lock=True)
    if group is None:
        raise errors.UnknownGroup()
    if await group_store.member_role(connection, send.group, caller.user_id) is None:
        raise errors.NotAMember()
    existing = await messages.message_by_client_id(connection, caller.device_id, send.id)
    if existing is not None:
        if existing.group_id != send.group:
            raise errors.IdempotencyConflict()
        return Stored(
            existing.id, existing.created_at, duplicate=True, recipient_id=caller.user_id, entries=[]
        )
    if send.epoch != group.epoch:
        raise errors.StaleMembership(details={"epoch": group.epoch})
    members = {
        member.user_id: member.username for member in await group_store.members(connection, send.group)
    }
    device_owners = await devices.device_ids_of(connection, list(members))
    targets = sorted(set(device_owners) - {caller.device_id})
    keys = {copy.device: copy.body for copy in send.keys}
    if len(keys) != len(send.keys):
        raise errors.MalformedFrame("Each device may appear only once in `keys`.")
    extra = sorted(set(keys) - set(targets))
    if extra:
        raise errors.DevicesMismatch(details={"missing": [], "extra": extra})
    now = services.clock()
    message_id = new_message_id(now)
    await messages.insert_message(
        connection,
        messages.StoredMessage(
            id=message_id,
            sender_user_id=caller.user_id,
            sender_device_id=caller.device_id,
            recipient_user_id=None,
            client_id=send.id,
            created_at=now,
            group_id=send.group,
            body=send.body,
        ),
    )
    body_sha256 = hashlib.sha256(send.body).hexdigest()
    writes.record(
        chain.MessageAccepted(
            message=message_id,
            client_id=send.id,
            sender=caller.username,
            sender_device=caller.device_id,
            group=send.group,
            copies=[
                chain.CopyHash(user=members[device_owners[device]], device=device, sha256=body_sha256)
                for device in targets
            ],
            at=now,
        ),
        message_id,
    )
    build = _group_deliver_builder(message_id, caller, send.group, send.body, now)
    entries = [
        writes.add(
            device_id,
            INBOX_GROUP_MESSAGE,
            message_id,
            now,
            build(keys.get(device_id)),
            key=keys.get(device_id),
            store_frame=False,
        )
        for device_id in targets
    ]
    return Stored(message_id, now, duplicate=False, recipient_id=caller.user_id, entries=entries)


def _deliver_builder(
    message_id: str, caller: Caller, accepted_at: int, *, to: str | None = None, group: str | None = None
) -> Callable[[bytes], Callable[[int], bytes]]:
    """For one message: body -> (seq -> the stored ``message`` frame)."""

    def for_body(body: bytes) -> Callable[[int], bytes]:
        def build(seq: int) -> bytes:
            return encode(
                frames.Deliver(
                    seq=seq,
                    message=message_id,
                    sender=caller.username,
                    sender_device=caller.device_id,
                    to=to,
                    group=group,
                    body=body,
                    at=accepted_at,
                )
            )

        return build

    return for_body


def _group_deliver_builder(
    message_id: str, caller: Caller, group_id: str, body: bytes, accepted_at: int
) -> Callable[[bytes | None], Callable[[int], bytes]]:
    """For one group message: this device's key copy -> (seq -> the pushed frame)."""

    def for_key(key: bytes | None) -> Callable[[int], bytes]:
        def build(seq: int) -> bytes:
            return encode(
                frames.Deliver(
                    seq=seq,
                    message=message_id,
                    sender=caller.username,
                    sender_device=caller.device_id,
                    group=group_id,
                    body=body,
                    key=key,
                    at=accepted_at,
                )
            )

        return build

    return for_key


def group_message_frame(seq: int, row: messages.GroupMessageRow) -> bytes:
    """Rebuild a group message's frame for one device from its stored parts (the pump's backlog path)."""
    return encode(
        frames.Deliver(
            seq=seq,
            message=row.message_id,
            sender=row.sender,
            sender_device=row.sender_device_id,
            group=row.group_id,
            body=row.body,
            key=row.key,
            at=row.accepted_at,
        )
    )
