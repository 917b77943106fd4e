"""The asyncio client: ``lien.Client`` (README, "Using the SDK"; docs/protocol.md §7).

A signed-in device of an account. It composes:

* :class:`lien.sdk.link.Link`: the WebSocket, reconnects, resends, acks;
* :mod:`lien.sdk.e2e`: pairwise sessions (X3DH and the Double Ratchet);
* :class:`lien.sdk.groups.GroupBook`: care-team groups and their sender keys;
* :class:`lien.sdk.directory.Directory`: device lists and the trust in them;
* :class:`lien.sdk.receiving.Inbound`: what to do with what arrives.

This module holds the public calls and the sending side: which devices get a
copy, opening missing sessions from claimed key bundles, saving the keystore
before any ciphertext leaves, and repairing a message a device could not open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

import msgspec

from lien.crypto.errors import CryptoError
from lien.crypto.payload import Conversation, DeviceAddress, GroupPayload, Payload
from lien.crypto.safety import SafetyNumber
from lien.keystore import KeptReceipt, Keystore, SentRecord
from lien.ledger import Evidence
from lien.protocol import codec, errors, frames
from lien.protocol.api import (
    GroupCreate,
    GroupInfo,
    GroupRename,
    LoginRequest,
    MemberAdd,
    Profile,
    RegisterRequest,
)
from lien.protocol.frames import is_group_id
from lien.sdk import e2e
from lien.sdk.directory import Directory
from lien.sdk.events import Event, Message, PresenceChange, Receipt, Typing, from_millis
from lien.sdk.groups import GroupBook
from lien.sdk.http import ApiClient
from lien.sdk.link import Link, ws_url
from lien.sdk.receiving import Inbound
from lien.sdk.trust import IdentityPolicy

logger = logging.getLogger(__name__)

_MISMATCH_RETRIES = 3
_PREKEY_BATCH = 50


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _urls(url: str | Sequence[str]) -> list[str]:
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("give at least one server URL")
    for each in urls:
        ws_url(each)
    return [each.rstrip("/") for each in urls]


class Client:
    """A signed-in device of a Lien account. Build it with :meth:`register` or :meth:`login`."""

    def __init__(self, urls: list[str], keystore: Keystore, api: ApiClient) -> None:
        self.keystore = keystore
        self._api = api
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._directory = Directory(api, keystore, self._events.put_nowait)
        self._link = Link(urls, lambda: self.keystore.token, self, name=keystore.username)
        self._groups = GroupBook(keystore, self._own(), keystore.identity.public)
        self._inbound = Inbound(
            keystore=keystore,
            own=self._own(),
            directory=self._directory,
            groups=self._groups,
            link=self._link,
            deliver_message=self._messages.put_nowait,
            report=self._events.put_nowait,
            repair=lambda message_id, peer: self._link.spawn(self._repair(message_id, peer)),
        )
        self._send_lock = asyncio.Lock()
        """Held from session look-up to the write of a send, so sessions advance in the order bodies leave."""
        self._watched: list[str] = []

    # --- construction ------------------------------------------------------

    @classmethod
    async def register(
        cls,
        url: str | Sequence[str],
        username: str,
        password: str,
        *,
        keystore: str | Path,
        display_name: str | None = None,
        profession: str = "",
        rpps: str = "",
        organisation: str = "",
        city: str = "",
        invite: str | None = None,
        device_name: str = "lien-python",
    ) -> Client:
        """Create the account and this device; the keystore directory must not exist yet."""
        urls = _urls(url)
        path = Path(keystore)
        if Keystore.exists(path):
            raise FileExistsError(f"a keystore already exists at {path}; use Client.login")
        store = Keystore.create(path, password, username=username, server_url=urls[0])
        api = ApiClient(urls[0])
        try:
            grant = await api.register(
                RegisterRequest(
                    username=username,
                    password=password,
                    profile=Profile(
                        display_name=display_name or username,
                        profession=profession,
                        rpps=rpps,
                        organisation=organisation,
                        city=city,
                    ),
                    device=e2e.device_registration(store, device_name),
                    invite=invite,
                )
            )
        except BaseException:
            await api.close()
            Keystore.destroy(path)
            raise
        store.device_id = grant.device
        store.set_token(grant.token, grant.expires_at)
        store.save()
        api.token = grant.token
        return cls(urls, store, api)

    @classmethod
    async def login(
        cls,
        url: str | Sequence[str],
        username: str,
        password: str,
        *,
        keystore: str | Path,
        device_name: str = "lien-python",
    ) -> Client:
        """Sign in: the device in ``keystore`` if it exists, else a new device of the account."""
        urls = _urls(url)
        path = Path(keystore)
        created = not Keystore.exists(path)
        if created:
            store = Keystore.create(path, password, username=username, server_url=urls[0])
        else:
            store = Keystore.open(path, password)
            if store.username != username:
                raise ValueError(f"the keystore at {path} belongs to {store.username!r}, not {username!r}")
        api = ApiClient(urls[0])
        try:
            if store.device_id is not None:
                request = LoginRequest(username=username, password=password, device_id=store.device_id)
            else:
                request = LoginRequest(
                    username=username, password=password, device=e2e.device_registration(store, device_name)
                )
            grant = await api.login(request)
        except BaseException:
            await api.close()
            if created:
                Keystore.destroy(path)
            raise
        store.device_id = grant.device
        store.set_token(grant.token, grant.expires_at)
        store.save()
        api.token = grant.token
        return cls(urls, store, api)

    # --- identity ------------------------------------------------------------

    @property
    def username(self) -> str:
        return self.keystore.username

    @property
    def device_id(self) -> int:
        device_id = self.keystore.device_id
        assert device_id is not None
        return device_id

    @property
    def api(self) -> ApiClient:
        return self._api

    def _own(self) -> DeviceAddress:
        return DeviceAddress(self.username, self.device_id)

    # --- connection ------------------------------------------------------------

    async def connect(self, *, timeout: float = 30.0) -> None:
        """Open the socket and wait until the server is ready; reconnects by itself afterwards."""
        await self._link.connect(timeout)

    @property
    def connected(self) -> bool:
        return self._link.ready

    async def wait_connected(self, timeout: float | None = None) -> None:
        await self._link.wait_ready(timeout)

    async def on_connected(self, ready: frames.Ready) -> None:
        """After each connect: follow the same contacts again, top up one-time prekeys when asked."""
        if self._watched:
            await self._link.write(codec.encode(frames.Watch(users=self._watched)))
        if ready.replenish:
            self._link.spawn(self._replenish_prekeys())

    async def on_inbox(self, frame: frames.Deliver | frames.Status | frames.GroupEvent) -> None:
        await self._inbound.on_inbox(frame)

    def on_ephemeral(
        self, frame: frames.TypingEvent | frames.Presence | frames.DevicesChanged | frames.PrekeysLow
    ) -> None:
        match frame:
            case frames.TypingEvent():
                self._events.put_nowait(Typing(frame.sender, frame.sender_device, frame.active, frame.group))
            case frames.Presence():
                self._events.put_nowait(PresenceChange(frame.user, frame.online))
            case frames.DevicesChanged(user=user):
                self._link.spawn(self._directory.devices(user, refresh=True))
            case frames.PrekeysLow():
                self._link.spawn(self._replenish_prekeys())

    def before_ack(self) -> None:
        self.keystore.save()  # sessions advanced by what is acked must survive a crash first

    # --- sending -------------------------------------------------------------

    async def send_text(self, to: str, text: str) -> str:
        """Encrypt ``text`` for every device of ``to`` (and your other devices) and send it.

        Returns the server's message id once the server has durably accepted
        it. While disconnected it waits, and it is resent under the same client
        message id after a reconnect, so it is delivered once. Raises
        :class:`~lien.sdk.trust.IdentityNotAccepted` when ``to``'s devices
        changed and the identity policy asks for the user's consent first.
        """
        if not self._link.started:
            raise RuntimeError("call connect() first")
        self._link.raise_if_failed()
        if is_group_id(to):
            return await self._send_group(to, text)
        client_id = secrets.token_hex(12)
        sent_at = _now_ms()
        refresh = False
        for _ in range(_MISMATCH_RETRIES + 1):
            async with self._send_lock:
                frame = await self._build_send(client_id, to, text, sent_at, refresh=refresh)
                future = await self._link.dispatch(frame)
            try:
                accepted = await self._link.until_accepted(frame, future)
            except errors.DevicesMismatch:
                refresh = True
                continue
            self.keystore.remember_sent(accepted.message, SentRecord(to, client_id, sent_at, text))
            return accepted.message
        raise errors.DevicesMismatch("The recipient's devices kept changing; try again.")

    async def _build_send(
        self, client_id: str, to: str, text: str, sent_at: int, *, refresh: bool
    ) -> frames.Send:
        """One body per target device, from its session (opened from a claimed bundle when missing)."""
        targets = await self._targets(to, refresh=refresh)
        if not targets:
            raise errors.UnknownDevice(f"{to} has no device to send to.")
        await self._open_missing_sessions(targets)
        conversation = Conversation.user(to)
        copies = []
        for peer in targets:
            if not e2e.has_session(self.keystore, peer):
                continue  # its bundle was not handed out: the server will say which devices are missing
            payload = Payload(
                sender=self._own(),
                recipient=peer,
                conversation=conversation,
                client_message_id=client_id,
                sent_at_ms=sent_at,
                text=text,
            )
            copies.append(frames.Copy(device=peer.device, body=e2e.encrypt(self.keystore, payload)))
        self.keystore.save()  # before any body leaves: a ratchet key must never be used twice
        if not copies:
            raise errors.UnknownDevice(f"{to} has no device to send to.")
        return frames.Send(id=client_id, to=to, copies=copies)

    async def _targets(self, to: str, *, refresh: bool) -> list[DeviceAddress]:
        """Every device of ``to`` and this user's other devices; sessions checked against the directory."""
        recipients = await self._directory.devices(to, refresh=refresh)
        own = (
            await self._directory.devices(self.username, refresh=refresh)
            if to != self.username
            else recipients
        )
        self._directory.check_accepted(to)
        listed = {DeviceAddress(to, device): identity for device, identity in recipients.items()}
        listed.update({DeviceAddress(self.username, device): identity for device, identity in own.items()})
        listed.pop(self._own(), None)
        for peer, identity in listed.items():
            session = e2e.load_session(self.keystore, peer)
            if session is not None and session.peer_identity != identity:
                e2e.drop_session(self.keystore, peer)
        return sorted(listed, key=lambda peer: (peer.user, peer.device))

    async def _open_missing_sessions(self, targets: list[DeviceAddress]) -> None:
        missing: dict[str, list[int]] = {}
        for peer in targets:
            if not e2e.has_session(self.keystore, peer):
                missing.setdefault(peer.user, []).append(peer.device)
        for username, device_ids in missing.items():
            claimed = await self._api.claim_keys(username, device_ids)
            listed = await self._directory.devices(username)
            for bundle in claimed.bundles:
                peer = DeviceAddress(username, bundle.device)
                known = listed.get(bundle.device)
                if known is None or known.signing_key != bundle.identity_signing_key:
                    continue  # the claim and the device list disagree: never start a session on that
                if not e2e.has_session(self.keystore, peer):
                    e2e.start_session(self.keystore, self._own(), peer, bundle)

    async def _repair(self, message_id: str, peer: DeviceAddress) -> None:
        """``peer`` could not decrypt a message this device sent: new session, then resend it (§6.6)."""
        record = self.keystore.sent_message(message_id)
        if record is None or peer.device in record.resent_to or peer == self._own():
            return
        try:
            async with self._send_lock:
                e2e.drop_session(self.keystore, peer)
                await self._open_missing_sessions([peer])
                if not e2e.has_session(self.keystore, peer):
                    return
                group = record.to if is_group_id(record.to) else None
                payload = Payload(
                    sender=self._own(),
                    recipient=peer,
                    conversation=Conversation.group(record.to) if group else Conversation.user(record.to),
                    client_message_id=record.client_id,
                    sent_at_ms=record.sent_at,
                    text=record.text,
                )
                body = e2e.encrypt(self.keystore, payload)
                if group is not None:
                    self._groups.forget_distribution_to(group, peer)
                repaired = SentRecord(
                    record.to, record.client_id, record.sent_at, record.text, (*record.resent_to, peer.device)
                )
                self.keystore.remember_sent(message_id, repaired)
                self.keystore.save()
                resend = frames.Resend(
                    id=secrets.token_hex(12),
                    message=message_id,
                    copies=[frames.Copy(device=peer.device, body=body)],
                )
                future = await self._link.dispatch(resend)
            await self._link.until_accepted(resend, future)
        except (errors.LienError, CryptoError, ConnectionError) as failure:
            logger.warning("could not repair message %s for a device: %s", message_id, type(failure).__name__)
            # Refused or cut off: the next decrypt-failed from that device may try again.
            current = self.keystore.sent_message(message_id)
            if current is not None and peer.device in current.resent_to:
                left = tuple(device for device in current.resent_to if device != peer.device)
                self.keystore.remember_sent(
                    message_id, SentRecord(current.to, current.client_id, current.sent_at, current.text, left)
                )

    # --- trust ------------------------------------------------------------------

    @property
    def identity_policy(self) -> IdentityPolicy:
        """``"warn"`` (default): report device changes and keep sending; ``"block"``: wait for consent."""
        return self._directory.policy

    @identity_policy.setter
    def identity_policy(self, policy: IdentityPolicy) -> None:
        self._directory.policy = policy

    async def safety_number(self, username: str) -> SafetyNumber:
        """The 60-digit number both users see; compare it out of band (docs/protocol-crypto.md §3.10)."""
        return await self._directory.safety_number(self.username, username)

    async def accept_identity(self, username: str) -> None:
        """Accept ``username``'s current devices (after comparing safety numbers)."""
        await self._directory.accept(username)
        self.keystore.save()

    # --- groups ----------------------------------------------------------------

    async def create_group(self, name: str, members: Sequence[str]) -> str:
        """Create a care-team group with you as its owner; returns its id (docs/protocol.md §4.6)."""
        info = await self._api.create_group(GroupCreate(name=name, members=list(members)))
        self._groups.learn(info)
        self.keystore.save()
        return info.id

    async def add_member(self, group: str, user: str, *, role: Literal["admin", "member"] = "member") -> None:
        """Add ``user`` (owners and admins; only the owner adds admins)."""
        self._groups.learn(await self._api.add_member(group, MemberAdd(user=user, role=role)))
        self.keystore.save()

    async def remove_member(self, group: str, user: str) -> None:
        """Remove ``user``; your next message to the group uses a new sender key they never get."""
        self._groups.learn(await self._api.remove_member(group, user))
        self.keystore.save()

    async def leave_group(self, group: str) -> None:
        await self._api.leave_group(group)
        record = self._groups.record(group)
        if record is not None:
            record.active = False
            self.keystore.set_group(group, record)
            self.keystore.save()

    async def rename_group(self, group: str, name: str) -> None:
        self._groups.learn(await self._api.rename_group(group, GroupRename(name=name)))

    async def group_info(self, group: str) -> GroupInfo:
        """The group as the server has it now (members, roles, epoch)."""
        info = await self._api.group(group)
        self._groups.learn(info)
        return info

    async def groups(self) -> list[GroupInfo]:
        """The groups you belong to."""
        listing = await self._api.groups()
        for info in listing.groups:
            self._groups.learn(info)
        return listing.groups

    async def _send_group(self, group_id: str, text: str) -> str:
        """One ciphertext for every member device; sender key copies for the devices that lack it (§7.7)."""
        client_id = secrets.token_hex(12)
        sent_at = _now_ms()
        refresh = self._groups.record(group_id) is None
        for _ in range(_MISMATCH_RETRIES + 1):
            async with self._send_lock:
                frame, lacking = await self._build_group_send(
                    group_id, client_id, text, sent_at, refresh=refresh
                )
                future = await self._link.dispatch(frame)
            try:
                accepted = await self._link.until_accepted(frame, future)
            except (errors.StaleMembership, errors.DevicesMismatch):
                refresh = True
                continue
            self._groups.mark_distributed(group_id, lacking)
            self.keystore.remember_sent(accepted.message, SentRecord(group_id, client_id, sent_at, text))
            self.keystore.save()
            return accepted.message
        raise errors.StaleMembership("The group kept changing; try again.")

    async def _build_group_send(
        self, group_id: str, client_id: str, text: str, sent_at: int, *, refresh: bool
    ) -> tuple[frames.GroupSend, list[DeviceAddress]]:
        known = self._groups.record(group_id)
        if refresh or known is None or not known.synced:
            self._groups.learn(await self._api.group(group_id))
        record = self._groups.record(group_id)
        if record is None or not record.active:
            raise errors.NotAMember()
        targets: list[DeviceAddress] = []
        for member in record.members:
            devices = await self._directory.devices(member, refresh=refresh)
            if member != self.username:
                self._directory.check_accepted(member)
            targets.extend(DeviceAddress(member, device) for device in sorted(devices))
        targets = [peer for peer in targets if peer != self._own()]
        key = self._groups.sender_key(group_id)
        lacking = self._groups.lacking_key(group_id, targets)
        await self._open_missing_sessions(lacking)
        copies = []
        given = []
        for peer in lacking:
            if not e2e.has_session(self.keystore, peer):
                continue  # no bundle for it: the server will say the device is gone, or it asks for a repair
            carried = key.distribution_payload(peer, client_message_id=client_id, sent_at_ms=sent_at)
            copies.append(frames.Copy(device=peer.device, body=e2e.encrypt(self.keystore, carried)))
            given.append(peer)
        payload = GroupPayload(
            sender=self._own(),
            conversation=Conversation.group(group_id),
            client_message_id=client_id,
            sent_at_ms=sent_at,
            text=text,
        )
        body = key.encrypt(payload, self.keystore.identity)
        self._groups.store_sender_key(key)
        self.keystore.save()  # before any body leaves: a chain key must never be used twice
        frame = frames.GroupSend(id=client_id, group=group_id, epoch=record.epoch, body=body, keys=copies)
        return frame, given

    # --- receiving -------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> Message:
        """The next message, decrypted and verified; raises TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self._messages.get()

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next receipt, typing notice, presence change or undecryptable-message notice."""
        async with asyncio.timeout(timeout):
            return await self._events.get()

    async def mark_read(self, message: Message) -> None:
        """Tell the sender (and your other devices) that the message was read."""
        if message.outgoing:
            return
        await self._link.send_or_queue(self._inbound.receipt(message.id, "read", message.ciphertext_sha256))

    async def set_typing(self, to: str, active: bool = True) -> None:
        """Ephemeral: dropped rather than queued while disconnected."""
        if self._link.ready:
            typing = (
                frames.Typing(group=to, active=active)
                if is_group_id(to)
                else frames.Typing(to=to, active=active)
            )
            await self._link.write(codec.encode(typing))

    async def watch(self, users: Sequence[str]) -> None:
        """Follow the presence of these contacts (replaces the previous set; kept across reconnects)."""
        self._watched = list(users)
        await self._link.send_or_queue(codec.encode(frames.Watch(users=self._watched)))

    async def message_proof(self, message: Message | str) -> bytes:
        """The proof bundle of a message, as JSON for ``lien verify-proof`` (docs/protocol.md §10.5).

        Pass a received :class:`Message` to include the signed text you hold
        (the evidence of what was said); a message id gives the bundle alone.
        """
        message_id = message if isinstance(message, str) else message.id
        proof = await self._api.proof(message_id)
        if isinstance(message, Message):
            evidence = Evidence(
                payload=message.payload, signature=message.signature, signer_key=message.signer_key
            )
            proof = msgspec.structs.replace(proof, evidence=evidence)
        return msgspec.json.encode(proof)

    def kept_receipts(self, message_id: str) -> list[KeptReceipt]:
        """The verified, signed receipts this device kept for a message it sent."""
        return self.keystore.kept_receipts(message_id)

    async def receipts(self, message_id: str) -> list[Receipt]:
        """Every receipt the server recorded for a message you sent."""
        listing = await self._api.receipts(message_id)
        return [Receipt(message_id, r.kind, r.user, r.device, from_millis(r.at)) for r in listing.receipts]

    async def _replenish_prekeys(self) -> None:
        try:
            prekeys = e2e.new_prekeys(self.keystore, _PREKEY_BATCH)
            self.keystore.save()
            await self._api.upload_prekeys(prekeys)
        except (errors.LienError, ConnectionError) as exc:
            logger.warning("prekey upload failed: %s", exc)

    # --- shutdown --------------------------------------------------------------

    async def close(self) -> None:
        """Flush acks, close the socket, save the keystore. Sends not yet accepted are abandoned."""
        await self._link.close()
        self.keystore.save()
        await self._api.close()

    async def logout(self) -> None:
        """Revoke this device's session on the server, then close."""
        with contextlib.suppress(errors.LienError, ConnectionError):
            await self._api.logout()
        self.keystore.set_token(None, None)
        await self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
