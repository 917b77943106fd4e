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


Answers = list[frames.Accepted | errors.LienError]
"""One per envelope, in order: ``accepted``, or the error that refused that envelope."""


async def accept_envelopes(
    services: Services,
    caller: Caller,
    sends: list[Envelope],
    *,
    answer: Callable[[Answers], None] | None = None,
) -> Answers:
    """Store envelopes from one device, in the order given, in one transaction.

    Each is stored for every addressed device and is idempotent on (device,
    client message id). The answer list matches ``sends``: ``accepted`` or the
    error that refused that envelope (the others are unaffected). ``answer``,
    when given, receives that list as soon as the transaction has committed,
    before the recipients' nodes are notified (protocol §6.1: store, answer,
    then notify), so that ``accepted`` does not wait for the broker.
    """
    refused_early: list[errors.LienError | None] = []
    checked: list[Envelope] = []
    for send in sends:
        try:
            check_envelope(send)
        except errors.LienError as refusal:
            refused_early.append(refusal)
        else:
            refused_early.append(None)
            checked.append(send)

    stored: list[Stored | errors.LienError] = []
    if checked:
        stored = await services.committer.run_bulk(_store_batches, _DeviceBatch(services, caller, checked))
    outcomes = iter(stored)
    announced: list[messages.QueuedEntry] = []
    results: Answers = []
    accepted = 0
    for send, early in zip(sends, refused_early, strict=True):
        if early is not None:
            results.append(early)
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
            accepted += 1
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
    services.metrics.messages_accepted.inc(accepted)
    if answer is not None:
        answer(results)
    await announce(services, announced)
    return results


@dataclass(frozen=True)
class _DeviceBatch:
    """One connection's checked envelopes, stored in their order within a shared transaction."""

    services: Services
    caller: Caller
    sends: list[Envelope]


@dataclass(frozen=True)
class _Addressed:
    """An envelope whose copies match the devices it addresses, its message row ready to insert."""

    row: messages.StoredMessage
    owners: dict[int, int]
    """device id -> user id for every device addressed but the sender's."""
    usernames: dict[int, str]
    """user id -> username of those devices' owners."""


_Place = tuple[int, int]
"""An envelope's place in a transaction: (batch index, index in its batch)."""


async def _store_batches(
    connection: AsyncConnection, writes: InboxWrites, batches: list[_DeviceBatch]
) -> list[list[Stored | errors.LienError]]:
    """Store the envelopes of every connection in this transaction; one outcome list per batch.

    One-to-one and group envelopes are checked and inserted together: one
    lock-and-read of the groups, one of their members, one statement that
    inserts every message row and reads the devices of every user involved,
    one lookup for resends and one insert for new contacts, however many
    envelopes there are. Inbox entries and ledger records are then queued in
    each connection's order, so what one device sends reaches every inbox in
    that order. Resends (§6.6) are stored one by one at their place.

    The rows are inserted before each envelope is checked against the
    devices read with them (one round trip instead of two: every batch of
    envelopes waits for the transaction's round trips, and every one holds
    up the next batch); those then refused are deleted again before the
    transaction goes on, so nothing else ever sees them, and a client id an
    envelope was refused under stays free, as if it had never been inserted.

    The group rows are held (``FOR SHARE``, in id order) until commit, so a
    membership change cannot slip between the epoch check and the entries: a
    member removed before this commits never gets the message, one removed
    after was a member when it was sent.
    """
    services = batches[0].services
    candidates = await _candidates(connection, batches)
    inserted, live_devices = await messages.insert_messages_reading_devices(
        connection, list(candidates.rows.values()), sorted(candidates.users)
    )
    addressed = _address(batches, candidates, live_devices)
    ready = [found for found in addressed.values() if isinstance(found, _Addressed)]
    withdrawn = [
        row
        for place, row in candidates.rows.items()
        if row.id in inserted and not isinstance(addressed[place], _Addressed)
    ]
    if withdrawn:
        await messages.withdraw_messages(connection, [row.id for row in withdrawn])
        inserted.difference_update(row.id for row in withdrawn)
        # An envelope that reused the client id of one refused here was left out for it: insert it now.
        freed = {(row.sender_device_id, row.client_id) for row in withdrawn}
        left_out = [
            found.row
            for found in ready
            if found.row.id not in inserted and (found.row.sender_device_id, found.row.client_id) in freed
        ]
        if left_out:
            inserted.update((await messages.insert_messages_reading_devices(connection, left_out, []))[0])
    earlier = await messages.messages_by_client_ids(
        connection,
        [
            (found.row.sender_device_id, found.row.client_id)
            for found in ready
            if found.row.id not in inserted
        ],
    )
    contact_pairs: set[tuple[int, int]] = set()
    results: list[list[Stored | errors.LienError]] = []
    for batch_index, batch in enumerate(batches):
        caller = batch.caller
        outcomes: list[Stored | errors.LienError] = []
        for send_index, send in enumerate(batch.sends):
            outcome: Stored | errors.LienError
            try:
                if isinstance(send, frames.Resend):
                    outcome = await _store_resend(services, connection, writes, caller, send)
                elif isinstance(found := addressed[batch_index, send_index], errors.LienError):
                    outcome = found
                elif found.row.id not in inserted:
                    outcome = _duplicate_of(earlier.get((caller.device_id, send.id)), found.row, caller)
                elif isinstance(send, frames.GroupSend):
                    outcome = _queue_group_send(writes, caller, send, found)
                else:
                    outcome = _queue_envelope(writes, caller, send, found)
                    if outcome.recipient_id != caller.user_id:
                        contact_pairs.add((caller.user_id, outcome.recipient_id))
                        contact_pairs.add((outcome.recipient_id, caller.user_id))
            except errors.LienError as refusal:
                outcome = refusal
            outcomes.append(outcome)
        results.append(outcomes)
    fresh = contact_pairs - services.known_contacts
    if fresh:
        await messages.add_contacts(connection, fresh, services.clock())
    return results


@dataclass(frozen=True)
class _Candidates:
    """What a transaction's one-to-one and group envelopes need before their devices are read."""

    refused: dict[_Place, errors.LienError]
    """Envelopes refused already (unknown recipient)."""
    recipients: dict[_Place, int]
    """One-to-one envelopes: the recipient's user id."""
    group_sends: dict[_Place, frames.GroupSend]
    group_rows: dict[str, group_store.GroupRow]
    """The groups addressed that exist, locked until commit."""
    members: dict[str, dict[int, str]]
    """Group id -> user id -> username of its members."""
    rows: dict[_Place, messages.StoredMessage]
    """The message row of every envelope that can be inserted: its recipient or group exists."""
    users: set[int]
    """Every user whose devices an envelope may address."""


async def _candidates(connection: AsyncConnection, batches: list[_DeviceBatch]) -> _Candidates:
    """Resolve recipients, lock and read the groups addressed and their members; a row per envelope."""
    services = batches[0].services
    refused: dict[_Place, errors.LienError] = {}
    recipients: dict[_Place, int] = {}
    group_sends: dict[_Place, frames.GroupSend] = {}
    for batch_index, batch in enumerate(batches):
        for send_index, send in enumerate(batch.sends):
            if isinstance(send, frames.GroupSend):
                group_sends[batch_index, send_index] = send
            elif isinstance(send, frames.Send):
                try:
                    recipients[batch_index, send_index] = await resolve_user(services, connection, send.to)
                except errors.LienError as refusal:
                    refused[batch_index, send_index] = refusal
    group_ids = sorted({send.group for send in group_sends.values()})
    group_rows = await group_store.get_groups(connection, group_ids, lock=True) if group_ids else {}
    members = await group_store.member_names(connection, sorted(group_rows)) if group_rows else {}
    rows: dict[_Place, messages.StoredMessage] = {}
    for place, recipient_id in recipients.items():
        batch = batches[place[0]]
        rows[place] = _new_row(services, batch.caller, batch.sends[place[1]].id, recipient_id=recipient_id)
    for place, group_send in group_sends.items():
        if group_send.group in group_rows:  # the row's foreign key: an unknown group is refused without one
            caller, group_id = batches[place[0]].caller, group_send.group
            rows[place] = _new_row(services, caller, group_send.id, group_id=group_id, body=group_send.body)
    users = set(recipients.values()) | {batches[batch_index].caller.user_id for batch_index, _ in recipients}
    users.update(user_id for names in members.values() for user_id in names)
    return _Candidates(refused, recipients, group_sends, group_rows, members, rows, users)


def _address(
    batches: list[_DeviceBatch], candidates: _Candidates, live_devices: dict[int, int]
) -> dict[_Place, _Addressed | errors.LienError]:
    """For each one-to-one and group envelope, by its place: its checked row, or why it is refused."""
    found: dict[_Place, _Addressed | errors.LienError] = dict(candidates.refused)
    devices_of = devices.by_owner(live_devices)
    for place, recipient_id in candidates.recipients.items():
        batch = batches[place[0]]
        send = batch.sends[place[1]]
        assert isinstance(send, frames.Send)
        try:
            found[place] = _address_send(batch.caller, send, candidates.rows[place], recipient_id, devices_of)
        except errors.LienError as refusal:
            found[place] = refusal
    for place, group_send in candidates.group_sends.items():
        caller = batches[place[0]].caller
        try:
            found[place] = _address_group_send(
                caller,
                group_send,
                candidates.rows.get(place),
                candidates.group_rows.get(group_send.group),
                candidates.members,
                devices_of,
            )
        except errors.LienError as refusal:
            found[place] = refusal
    return found


def _address_send(
    caller: Caller,
    send: frames.Send,
    row: messages.StoredMessage,
    recipient_id: int,
    devices_of: dict[int, list[int]],
) -> _Addressed:
    """Check that a one-to-one envelope has a copy for each device of both users but the sending one."""
    usernames = {recipient_id: send.to, caller.user_id: caller.username}
    owners = _addressed_devices(caller, usernames, devices_of)
    given = {copy.device for copy in send.copies}
    if given != set(owners):
        raise errors.DevicesMismatch(
            details={"missing": sorted(set(owners) - given), "extra": sorted(given - set(owners))}
        )
    return _Addressed(row, owners, usernames)


def _address_group_send(
    caller: Caller,
    send: frames.GroupSend,
    row: messages.StoredMessage | None,
    group: group_store.GroupRow | None,
    members: dict[str, dict[int, str]],
    devices_of: dict[int, list[int]],
) -> _Addressed:
    """Check a group envelope against its group (read and locked) and its members' devices (§6.7)."""
    if group is None or row is None:
        raise errors.UnknownGroup()
    usernames = members[send.group]
    if caller.user_id not in usernames:
        raise errors.NotAMember()
    if send.epoch != group.epoch:
        # A resend of an accepted message encrypted for an older epoch is re-encrypted by the
        # client for the new one under the same client id, and then answered as a duplicate.
        raise errors.StaleMembership(details={"epoch": group.epoch})
    owners = _addressed_devices(caller, usernames, devices_of)
    keyed = {copy.device for copy in send.keys}
    if len(keyed) != len(send.keys):
        raise errors.MalformedFrame("Each device may appear only once in `keys`.")
    extra = sorted(keyed - set(owners))
    if extra:
        raise errors.DevicesMismatch(details={"missing": [], "extra": extra})
    return _Addressed(row, owners, usernames)


def _addressed_devices(
    caller: Caller, usernames: dict[int, str], devices_of: dict[int, list[int]]
) -> dict[int, int]:
    """device id -> user id for every live device of these users but the sending one."""
    return {
        device_id: user_id
        for user_id in usernames
        for device_id in devices_of.get(user_id, [])
        if device_id != caller.device_id
    }


def _new_row(
    services: Services,
    caller: Caller,
    client_id: str,
    *,
    recipient_id: int | None = None,
    group_id: str | None = None,
    body: bytes | None = None,
) -> messages.StoredMessage:
    """The message row of an envelope accepted now: a new server id, this node's time."""
    now = services.clock()
    return messages.StoredMessage(
        id=new_message_id(now),
        sender_user_id=caller.user_id,
        sender_device_id=caller.device_id,
        recipient_user_id=recipient_id,
        client_id=client_id,
        created_at=now,
        group_id=group_id,
        body=body,
    )


def _duplicate_of(
    existing: messages.StoredMessage | None, row: messages.StoredMessage, caller: Caller
) -> Stored:
    """The answer to a resend of an accepted envelope (same device, same client id, same addressee)."""
    if (
        existing is None
        or existing.recipient_user_id != row.recipient_user_id
        or existing.group_id != row.group_id
    ):
        raise errors.IdempotencyConflict()
    return Stored(
        existing.id,
        existing.created_at,
        duplicate=True,
        recipient_id=row.recipient_user_id or caller.user_id,
        entries=[],
    )


def _queue_envelope(writes: InboxWrites, caller: Caller, send: frames.Send, found: _Addressed) -> Stored:
    """Queue the inbox entries, copy hashes and ledger record of a one-to-one envelope just inserted."""
    message_id, now = found.row.id, found.row.created_at
    assert found.row.recipient_user_id is not None
    hashes = [(copy.device, hashlib.sha256(copy.body).digest()) for copy in send.copies]
    writes.copy_hashes.extend((message_id, device, sha256) for device, sha256 in hashes)
    _record_accepted(
        writes,
        caller,
        send.id,
        found,
        [(device, sha256.hex()) for device, sha256 in hashes],
        recipient=send.to,
    )
    deliver_frame = _deliver_builder(message_id, caller, now, to=send.to)
    entries = [
        writes.add(copy.device, INBOX_MESSAGE, message_id, now, deliver_frame(copy.body))
        for copy in send.copies
    ]
    return Stored(message_id, now, duplicate=False, recipient_id=found.row.recipient_user_id, entries=entries)


def _record_accepted(
    writes: InboxWrites,
    caller: Caller,
    client_id: str,
    found: _Addressed,
    hashes: list[tuple[int, str]],
    *,
    recipient: str | None = None,
    group: str | None = None,
) -> None:
    """Queue the ledger record of an accepted envelope: (device, hex SHA-256) of each copy stored."""
    writes.record(
        chain.MessageAccepted(
            message=found.row.id,
            client_id=client_id,
            sender=caller.username,
            sender_device=caller.device_id,
            recipient=recipient,
            group=group,
            copies=[
                chain.CopyHash(user=found.usernames[found.owners[device]], device=device, sha256=sha256)
                for device, sha256 in hashes
            ],
            at=found.row.created_at,
        ),
        found.row.id,
    )


def _queue_group_send(
    writes: InboxWrites, caller: Caller, send: frames.GroupSend, found: _Addressed
) -> Stored:
    """Queue an entry for every member device but the sender's, and the ledger record (§6.7).

    The ciphertext is stored once, in the message row; each entry holds only
    that device's sender key copy, if any.
    """
    message_id, now = found.row.id, found.row.created_at
    targets = sorted(found.owners)
    body_sha256 = hashlib.sha256(send.body).hexdigest()
    _record_accepted(
        writes, caller, send.id, found, [(device, body_sha256) for device in targets], group=send.group
    )
    keys = {copy.device: copy.body for copy in send.keys}
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
