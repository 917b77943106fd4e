"""The asyncio client: ``lien.Client`` (README, "Using the SDK").

One WebSocket per device, driven by :class:`lien.protocol.client.ClientProtocol`.
The client reconnects with capped, jittered backoff (to the next URL when
several are given), resends whatever was not accepted under the same client
message id, acks inbox entries once they are handed to the application, and
deduplicates redeliveries by server message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from lien import ledger
from lien.crypto import wire
from lien.crypto.errors import CryptoError, InvalidDistribution, MalformedMessage, UnknownSenderKey
from lien.crypto.group import is_distribution
from lien.crypto.keys import PublicIdentity
from lien.crypto.payload import (
    Conversation,
    DeviceAddress,
    GroupPayload,
    Payload,
    SignedGroupPayload,
    SignedPayload,
)
from lien.crypto.safety import SafetyNumber
from lien.keystore import KeptReceipt, Keystore, SentRecord
from lien.ledger import Evidence
from lien.protocol import client as proto
from lien.protocol import codec, errors, frames, limits
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
from lien.sdk.events import (
    Event,
    GroupChanged,
    Message,
    PresenceChange,
    Receipt,
    Typing,
    Undecryptable,
    from_millis,
)
from lien.sdk.groups import GroupBook
from lien.sdk.http import ApiClient
from lien.sdk.trust import IdentityPolicy

logger = logging.getLogger(__name__)

_RECONNECT_MIN_SECONDS = 0.1
_RECONNECT_MAX_SECONDS = 5.0
_ACK_EVERY = 32
_ACK_DELAY_SECONDS = 0.02
_MISMATCH_RETRIES = 3
_PREKEY_BATCH = 50
_OUTBOX_LIMIT = 10_000
_FATAL_CLOSE_CODES: dict[int, type[errors.LienError]] = {
    code: error
    for error in (errors.AuthenticationFailed, errors.UnsupportedVersion, errors.SessionReplaced)
    if (code := error.close_code) is not None
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _ws_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/ws"
    raise ValueError(f"server URL must start with http:// or https://: {base_url!r}")


def _urls(url: str | Sequence[str]) -> list[str]:
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("give at least one server URL")
    for each in urls:
        _ws_url(each)
    return [each.rstrip("/") for each in urls]


class Client:
    """A signed-in device of a Lien account. Build it with :meth:`register` or :meth:`login`."""

    def __init__(self, urls: list[str], keystore: Keystore, api: ApiClient) -> None:
        self._urls = urls
        self._url_index = 0
        self.keystore = keystore
        self._api = api
        self._protocol = proto.ClientProtocol()
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[frames.Accepted]] = {}
        self._outbox: list[bytes] = []
        self._directory = Directory(api, keystore, self._events.put_nowait)
        self._send_lock = asyncio.Lock()
        self._group_book: GroupBook | None = None
        self._watched: list[str] = []
        """Held from session look-up to the write of a send, so sessions advance in the order bodies leave."""
        self._socket: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._fatal: errors.LienError | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ack_flush: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

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

    # --- connection ------------------------------------------------------------

    async def connect(self, *, timeout: float = 30.0) -> None:
        """Open the socket and wait until the server is ready; reconnects by itself afterwards."""
        if self._closed:
            raise RuntimeError("this client is closed")
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"lien-client-{self.username}")
        async with asyncio.timeout(timeout):
            while not self._ready.is_set():
                if self._fatal is not None:
                    raise self._fatal
                if self._runner.done():
                    self._runner.result()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self._ready.wait()
        if self._fatal is not None:
            raise self._fatal

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    async def _run(self) -> None:
        delay = _RECONNECT_MIN_SECONDS
        while not self._closed:
            url = self._urls[self._url_index % len(self._urls)]
            try:
                async with websockets.connect(
                    _ws_url(url), max_size=limits.MAX_FRAME_BYTES, open_timeout=10, ping_interval=20
                ) as socket:
                    self._socket = socket
                    token = self.keystore.token
                    if token is None:
                        raise errors.AuthenticationFailed("No session token: sign in again.")
                    await socket.send(self._protocol.auth(token).decode())
                    async for data in socket:
                        if await self._on_frame(data):
                            delay = _RECONNECT_MIN_SECONDS
                close_code = socket.close_code
            except errors.LienError as error:
                self._fail(error)
                return
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                close_code = getattr(getattr(exc, "rcvd", None), "code", None)
                logger.info("connection to %s lost (%s)", url, type(exc).__name__)
            finally:
                self._socket = None
                self._ready.clear()
            fatal = _FATAL_CLOSE_CODES.get(close_code) if close_code is not None else None
            if fatal is not None:
                # 4409: another process signed in as this device; reconnecting would only push it off again.
                self._fail(fatal())
                return
            if self._closed:
                return
            self._url_index += 1
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)

    def _fail(self, error: errors.LienError) -> None:
        """The connection cannot go on (revoked, replaced, unsupported): stop and fail every waiting send."""
        self._fatal = error
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()

    async def _on_frame(self, data: str | bytes) -> bool:
        """Handle one server frame; True when it was the ``ready`` frame."""
        try:
            event = self._protocol.receive(data)
        except errors.LienError:
            logger.warning("ignored an undecodable frame from the server")
            return False
        match event:
            case proto.Connected():
                await self._on_connected()
                return True
            case proto.SendAccepted(accepted=accepted):
                future = self._waiting.pop(accepted.id, None)
                if future is not None and not future.done():
                    future.set_result(accepted)
            case proto.SendRefused(client_id=client_id, error=error):
                self._protocol.forget(client_id)
                future = self._waiting.pop(client_id, None)
                if future is not None and not future.done():
                    future.set_exception(error)
            case proto.InboxItem(frame=frames.Deliver() as deliver):
                await self._on_message(deliver)
            case proto.InboxItem(frame=frames.Status() as status):
                await self._on_status(status)
            case proto.InboxItem(frame=frames.GroupEvent() as group_event):
                self._on_group_event(group_event)
            case proto.Ephemeral(frame=frames.TypingEvent() as typing):
                self._events.put_nowait(
                    Typing(typing.sender, typing.sender_device, typing.active, typing.group)
                )
            case proto.Ephemeral(frame=frames.Presence() as presence):
                self._events.put_nowait(PresenceChange(presence.user, presence.online))
            case proto.Ephemeral(frame=frames.DevicesChanged(user=user)):
                self._spawn(self._directory.devices(user, refresh=True))
            case proto.Ephemeral(frame=frames.PrekeysLow()):
                self._spawn(self._replenish_prekeys())
            case proto.ServerError(error=error, ref=ref):
                logger.warning("server error %s (ref %s): %s", error.code, ref, error.message)
        return False

    async def _on_connected(self) -> None:
        ready = self._protocol.ready
        assert ready is not None
        for data in self._protocol.pending_sends():
            await self._write(data)
        if self._watched:
            await self._write(codec.encode(frames.Watch(users=self._watched)))
        outbox, self._outbox = self._outbox, []
        for data in outbox:
            await self._write(data)
        self._ready.set()
        if ready.replenish:
            self._spawn(self._replenish_prekeys())

    async def _write(self, data: bytes) -> bool:
        """Send now if connected; False when the socket is down (the caller queues or relies on resend)."""
        socket = self._socket
        if socket is None:
            return False
        try:
            await socket.send(data.decode())
        except websockets.exceptions.ConnectionClosed:
            return False
        return True

    async def _send_or_queue(self, data: bytes) -> None:
        if not (self._ready.is_set() and await self._write(data)) and len(self._outbox) < _OUTBOX_LIMIT:
            self._outbox.append(data)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- sending -------------------------------------------------------------

    async def send_text(self, to: str, text: str) -> str:
        """Encrypt ``text`` for every device of ``to`` (and your other devices) and send it.

        Returns the server's message id once the server has durably accepted
        it. While disconnected it waits, and it is resent under the same client
        message id after a reconnect, so it is delivered once. Raises
        :class:`~lien.sdk.trust.IdentityNotAccepted` when ``to``'s devices
        changed and the identity policy asks for the user's consent first.
        """
        if self._runner is None:
            raise RuntimeError("call connect() first")
        if self._fatal is not None:
            raise self._fatal
        if is_group_id(to):
            return await self._send_group(to, text)
        client_id = secrets.token_hex(12)
        sent_at = _now_ms()
        refresh = False
        for _ in range(_MISMATCH_RETRIES + 1):
            async with self._send_lock:
                frame = await self._build_send(client_id, to, text, sent_at, refresh=refresh)
                future = await self._dispatch(frame)
            try:
                accepted = await self._until_accepted(frame, future)
            except errors.DevicesMismatch:
                refresh = True
                continue
            self.keystore.remember_sent(accepted.message, SentRecord(to, client_id, sent_at, text))
            return accepted.message
        raise errors.DevicesMismatch("The recipient's devices kept changing; try again.")

    async def _dispatch(self, frame: frames.Send | frames.GroupSend) -> asyncio.Future[frames.Accepted]:
        """Hand a send to the connection (or to the resend queue while offline); its answer will come."""
        future: asyncio.Future[frames.Accepted] = asyncio.get_running_loop().create_future()
        self._waiting[frame.id] = future
        data = self._protocol.send(frame)
        if self._ready.is_set():
            await self._write(data)
        return future

    async def _until_accepted(
        self, frame: frames.Send | frames.GroupSend, future: asyncio.Future[frames.Accepted]
    ) -> frames.Accepted:
        """Wait for ``accepted``; over the account's fair-use rate, wait the delay given and send it again."""
        while True:
            try:
                return await future
            except errors.RateLimited as limited:
                await asyncio.sleep(limited.retry_after or 1.0)
                future = await self._dispatch(frame)

    # --- groups ----------------------------------------------------------------

    @property
    def _groups(self) -> GroupBook:
        if self._group_book is None:
            self._group_book = GroupBook(self.keystore, self._own(), self.keystore.identity.public)
        return self._group_book

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
                future = await self._dispatch(frame)
            try:
                accepted = await self._until_accepted(frame, future)
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

    def _own(self) -> DeviceAddress:
        return DeviceAddress(self.username, self.device_id)

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
                data = self._protocol.send(resend)
                if self._ready.is_set():
                    await self._write(data)
        except (errors.LienError, CryptoError, ConnectionError) as failure:
            logger.warning("could not repair message %s for a device: %s", message_id, type(failure).__name__)

    # --- receiving -----------------------------------------------------------

    async def _on_message(self, deliver: frames.Deliver) -> None:
        if self.keystore.was_seen(deliver.message):
            self._handled(deliver.seq)  # a redelivery of something already shown
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
                    self.keystore,
                    self._own(),
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
            await self._accept_message(deliver, signed, recipient)
        self._handled(deliver.seq)

    async def _report_unreadable(self, deliver: frames.Deliver, failure: CryptoError) -> None:
        """Never shown as text: the application hears of it, the sender is asked to repair (§6.6)."""
        logger.warning("message %s could not be opened: %s", deliver.message, failure.code)
        self._events.put_nowait(
            Undecryptable(
                deliver.message, deliver.sender, deliver.sender_device, failure.code, repairing=True
            )
        )
        receipt = self._receipt(deliver.message, "decrypt-failed", hashlib.sha256(deliver.body).digest())
        await self._send_or_queue(receipt)
        self._handled(deliver.seq)

    async def _accept_message(
        self, deliver: frames.Deliver, signed: SignedPayload | SignedGroupPayload, recipient: str
    ) -> None:
        """A verified message: shown once (by server id, and by sender device + client id), then receipted."""
        payload = signed.payload
        self.keystore.remember_seen(deliver.message)
        replay_key = f"{deliver.sender}/{deliver.sender_device}/{payload.client_message_id}"
        if not self.keystore.remember_seen(replay_key):
            logger.warning("message %s repeats a message already shown; not shown again", deliver.message)
            return
        outgoing = deliver.sender == self.username
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
        self._messages.put_nowait(message)
        if not outgoing:
            await self._send_or_queue(self._receipt(deliver.message, "decrypted", message.ciphertext_sha256))

    async def _open_group_message(
        self, deliver: frames.Deliver, group_id: str, sender: DeviceAddress, identity: PublicIdentity
    ) -> SignedPayload | SignedGroupPayload | None:
        """Install the sender key copy if any, then open the body (group body, or repaired pairwise copy)."""
        conversation = Conversation.group(group_id)
        if deliver.key is not None:
            distribution = e2e.decrypt(
                self.keystore,
                self._own(),
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
                self.keystore,
                self._own(),
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

    def _on_group_event(self, event: frames.GroupEvent) -> None:
        self._groups.apply_event(event)
        if event.event == "devices-changed" and event.subject is not None:
            self._spawn(self._directory.devices(event.subject, refresh=True))
        self._events.put_nowait(
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
        self._handled(event.seq)

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
        receipt = Receipt(
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
        if verified:
            self.keystore.remember_receipt(status.message, status)
        if status.kind == "decrypt-failed" and verified:
            self._spawn(self._repair(status.message, DeviceAddress(status.by, status.by_device)))
        self._events.put_nowait(receipt)
        self._handled(status.seq)

    def _receipt(self, message_id: str, kind: frames.ReceiptKind, ciphertext_sha256: bytes) -> bytes:
        """A receipt frame signed by this device's identity key (docs/protocol.md §10.4)."""
        at = _now_ms()
        signed = ledger.receipt_signing_input(
            message=message_id,
            kind=kind,
            ciphertext_sha256=ciphertext_sha256,
            device_time=at,
            by=self.username,
            by_device=self.device_id,
        )
        frame = frames.Receipt(
            message=message_id,
            kind=kind,
            hash=ciphertext_sha256,
            at=at,
            signature=self.keystore.identity.sign(signed),
        )
        return codec.encode(frame)

    def _handled(self, seq: int) -> None:
        self._protocol.handled(seq)
        if self._protocol.unacked >= _ACK_EVERY:
            self._flush_acks()
        elif self._ack_flush is None:
            self._ack_flush = asyncio.get_running_loop().call_later(_ACK_DELAY_SECONDS, self._flush_acks)

    def _flush_acks(self) -> None:
        if self._ack_flush is not None:
            self._ack_flush.cancel()
            self._ack_flush = None
        if not self._protocol.unacked:
            return
        self.keystore.save()  # sessions advanced by what is acked must survive a crash first
        data = self._protocol.ack()
        if data is not None:
            self._spawn(self._write(data))

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
        await self._send_or_queue(self._receipt(message.id, "read", message.ciphertext_sha256))

    async def set_typing(self, to: str, active: bool = True) -> None:
        """Ephemeral: dropped rather than queued while disconnected."""
        if self._ready.is_set():
            typing = (
                frames.Typing(group=to, active=active)
                if is_group_id(to)
                else frames.Typing(to=to, active=active)
            )
            await self._write(codec.encode(typing))

    async def watch(self, users: Sequence[str]) -> None:
        """Follow the presence of these contacts (replaces the previous set; kept across reconnects)."""
        self._watched = list(users)
        await self._send_or_queue(codec.encode(frames.Watch(users=self._watched)))

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
        """Flush acks, close the socket, save the keystore. Unaccepted sends are abandoned."""
        if self._closed:
            return
        if self._ready.is_set() and self._protocol.unacked:
            self.keystore.save()
            data = self._protocol.ack()
            if data is not None:
                await self._write(data)
        self._closed = True
        if self._ack_flush is not None:
            self._ack_flush.cancel()
        socket = self._socket
        if socket is not None:
            await socket.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("client closed"))
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
