"""One simulated device over the protocol core: real keys, real sessions, real frames. No I/O.

A :class:`BenchDevice` is what a load-test user or the asyncio driver wraps
around a socket. It registers with real identity keys and prekeys
(docs/protocol.md §4), opens X3DH + Double Ratchet sessions from claimed
bundles (docs/protocol-crypto.md §3.13), encrypts signed payloads into
``send`` frames, and turns incoming frames into :class:`Event` values,
decrypting and verifying every message it receives. Group messages use
sender keys (``lien.crypto.group``, docs/protocol-group.md).

The end-to-end latency of a delivery is measured from the sender's clock
just before it encrypts to the recipient's clock once the message decrypted
and verified. The send time travels inside the signed, encrypted payload, in
the client message id (``<tag>.<microseconds since the epoch>``), so it
works across processes on one machine.

Transports (``loadtests/transport_gevent.py``, ``loadtests/driver.py``) move
bytes; this module decides what they are.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import secrets
import time
from dataclasses import dataclass
from typing import Final

from lien import ledger
from lien.crypto import group as group_crypto
from lien.crypto import session as sessions
from lien.crypto.errors import CryptoError, NoSession
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair
from lien.crypto.keys import device_registration as registration_body
from lien.crypto.payload import Conversation, DeviceAddress, GroupPayload, Payload, SignedPayload
from lien.crypto.x3dh import PrekeyBundle
from lien.protocol import api, codec, frames
from lien.protocol.client import ClientProtocol, Connected, Ephemeral, InboxItem, SendAccepted, SendRefused
from lien.protocol.client import ServerError as ProtocolServerError

PASSWORD: Final = "bench passphrase, not a secret"
ONE_TIME_PREKEYS: Final = 40
"""Uploaded at registration: enough for a device to be claimed by every peer of a large group."""
ACK_EVERY: Final = 16
"""Entries handled before an ack goes out at once (the transport also flushes acks on a timer)."""
RECEIVED_HASHES_KEPT: Final = 4096
"""Ciphertext hashes kept for signing receipts (docs/protocol.md §10.4) of the latest messages."""


def now_us() -> int:
    return time.time_ns() // 1000


def sent_at_of(client_id: str) -> int | None:
    """The send time (µs) a bench client message id carries, or None for any other id."""
    _, _, stamp = client_id.rpartition(".")
    return int(stamp) if stamp.isdigit() else None


# --- events a transport hands to its scenario -----------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """A message this device decrypted and verified."""

    sender: str
    message_id: str
    client_id: str
    text: str
    latency_s: float | None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptArrived:
    message_id: str
    kind: str
    by: str


@dataclass(frozen=True, slots=True)
class Accepted:
    client_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Failed:
    """Anything a well-behaved client should never see: an error frame or a message that did not open."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Ready:
    pass


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The fair-use limit refused a send: send ``frame`` again after ``after_s``, as the SDK does."""

    client_id: str
    frame: bytes
    after_s: float


Event = Received | ReceiptArrived | Accepted | Failed | Ready | RetryLater


class NeedDevices(Exception):
    """The transport must fetch ``GET /v1/users/{user}/devices``, then call ``learn_devices``."""

    def __init__(self, user: str) -> None:
        super().__init__(user)
        self.user = user


class Directory:
    """Device id -> (username, identity): public knowledge, shareable by the devices of one process."""

    def __init__(self) -> None:
        self.identities: dict[int, tuple[str, PublicIdentity]] = {}

    def learn(self, device_list: api.DeviceList) -> None:
        for device in device_list.devices:
            self.identities[device.device] = (device_list.user, PublicIdentity.from_device(device))

    def add(self, user: str, device_id: int, identity: PublicIdentity) -> None:
        self.identities[device_id] = (user, identity)


# --- the device -------------------------------------------------------------------------


class BenchDevice:
    """A device of a one-device user, as the load tests drive it."""

    def __init__(self, username: str, *, directory: Directory | None = None) -> None:
        self.username = username
        self.identity = IdentityKeyPair.generate()
        self.signed_prekey = SignedPrekeyPair.generate(1, self.identity)
        self.one_time = {p.prekey_id: p for p in OneTimePrekeyPair.generate_batch(1, ONE_TIME_PREKEYS)}
        self.directory = directory if directory is not None else Directory()
        self.device_id = 0
        self.token = ""
        self.protocol = ClientProtocol()
        self.sessions: dict[int, sessions.Session] = {}
        self.devices_of: dict[str, list[int]] = {}
        self.group_epochs: dict[str, int] = {}
        self.group_members: dict[str, list[int]] = {}
        self._sender_keys: dict[str, group_crypto.SenderKey] = {}
        self._distributed: dict[str, set[int]] = {}
        self._receivers: dict[tuple[str, int], group_crypto.SenderKeyReceiver] = {}
        self._counter = itertools.count(1)
        self._tag = secrets.token_hex(3)
        self._handed_out: set[int] = set()
        self._received: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._unaccepted: dict[str, bytes] = {}

    # --- registration (docs/protocol.md §4.3) -------------------------------------------

    def register_request(self) -> api.RegisterRequest:
        return api.RegisterRequest(
            username=self.username,
            password=PASSWORD,
            profile=api.Profile(display_name=self.username, profession="bench"),
            device=registration_body(self.identity, self.signed_prekey, list(self.one_time.values())),
        )

    def registered(self, grant: api.SessionGrant) -> None:
        self.device_id = grant.device
        self.token = grant.token
        self.devices_of[self.username] = [grant.device]
        self.directory.add(self.username, grant.device, self.identity.public)

    @property
    def address(self) -> DeviceAddress:
        return DeviceAddress(self.username, self.device_id)

    # --- the socket (docs/protocol.md §5, §6) -----------------------------------------------

    def auth_frame(self) -> bytes:
        return self.protocol.auth(self.token)

    def pending_sends(self) -> list[bytes]:
        return self.protocol.pending_sends()

    def ack_frame(self, *, at_least: int = 1) -> bytes | None:
        return self.protocol.ack(at_least=at_least)

    def receipt_frame(self, message_id: str, kind: frames.ReceiptKind) -> bytes:
        """A receipt signed by this device over the hash of the ciphertext it received (§10.4)."""
        ciphertext_sha256 = self._received[message_id]
        at = now_us() // 1000
        signed = ledger.receipt_signing_input(
            message=message_id,
            kind=kind,
            ciphertext_sha256=ciphertext_sha256,
            device_time=at,
            by=self.username,
            by_device=self.device_id,
        )
        receipt = frames.Receipt(
            message=message_id, kind=kind, hash=ciphertext_sha256, at=at, signature=self.identity.sign(signed)
        )
        return codec.encode(receipt)

    # --- sessions (docs/protocol-crypto.md §3.5, §3.13) ---------------------------------------

    def needs_bundles(self, user: str) -> bool:
        return user not in self.devices_of

    def learn_bundles(self, bundles: api.KeyBundles) -> None:
        """Open a session with every device of ``bundles.user`` (from ``POST .../keys/claim``)."""
        ids = []
        for bundle in bundles.bundles:
            peer = DeviceAddress(bundles.user, bundle.device)
            prekey_bundle = PrekeyBundle.from_api(bundle)
            self.directory.add(bundles.user, bundle.device, prekey_bundle.identity)
            if bundle.device not in self.sessions:
                self.sessions[bundle.device] = sessions.initiate_session(
                    self.identity, self.address, peer, prekey_bundle
                )
            ids.append(bundle.device)
        self.devices_of[bundles.user] = sorted(ids)

    def local_bundles(self) -> api.KeyBundles:
        """This device's bundle as the server would hand it out, one one-time prekey used up.

        For the baseline relay, which has no key directory: the load generator
        still opens real sessions, from the same keys, without a server.
        """
        handed = next((key_id for key_id in sorted(self.one_time) if key_id not in self._handed_out), None)
        prekey = None if handed is None else self.one_time[handed]
        if handed is not None:
            self._handed_out.add(handed)
        bundle = api.KeyBundle(
            device=self.device_id,
            identity_signing_key=self.identity.public.signing_key,
            identity_exchange_key=self.identity.public.exchange_key,
            signed_prekey=self.signed_prekey.to_body(),
            prekey=None if prekey is None else prekey.to_body(),
        )
        return api.KeyBundles(user=self.username, bundles=[bundle])

    def adopt_sessions(self, user: str) -> None:
        """Answer ``user`` over the sessions its devices opened with this one (no claim, no new session)."""
        self.devices_of[user] = sorted(
            device for device in self.sessions if self.directory.identities.get(device, ("", None))[0] == user
        )

    def learn_devices(self, device_list: api.DeviceList) -> None:
        self.directory.learn(device_list)

    # --- one to one -------------------------------------------------------------------

    def new_client_id(self) -> str:
        return f"{self._tag}{next(self._counter)}.{now_us()}"

    def send_text(self, to: str, text: str) -> tuple[str, bytes]:
        """A ``send`` frame to every device of ``to``, each copy a signed payload encrypted for it.

        Needs sessions with ``to``'s devices (:meth:`learn_bundles`); the
        client id carries the send time. Returns the client id and the frame.
        """
        client_id = self.new_client_id()
        sent_at_ms = now_us() // 1000
        conversation = Conversation.user(to)
        own = self.address
        copies = []
        for device_id in self.devices_of[to]:
            payload = Payload(own, DeviceAddress(to, device_id), conversation, client_id, sent_at_ms, text)
            body = self.sessions[device_id].encrypt(payload, self.identity)
            copies.append(frames.Copy(device=device_id, body=body))
        frame = self.protocol.send(frames.Send(id=client_id, to=to, copies=copies))
        self._unaccepted[client_id] = frame
        return client_id, frame

    # --- groups (docs/protocol-group.md) ----------------------------------------------------

    def join_group(self, group: api.GroupInfo, member_devices: dict[str, list[int]]) -> None:
        """Remember a group's epoch and member devices (every member needs a session already)."""
        self.group_epochs[group.id] = group.epoch
        self.group_members[group.id] = sorted(
            device for member in group.members for device in member_devices[member.user]
        )

    def send_group_text(self, group_id: str, text: str) -> tuple[str, bytes]:
        """One ``group_send``: a single sender-key body, plus key copies for members that lack the key."""
        client_id = self.new_client_id()
        sent_at_ms = now_us() // 1000
        own = self.address
        conversation = Conversation.group(group_id)
        sender_key = self._sender_keys.get(group_id)
        if sender_key is None:
            sender_key = group_crypto.SenderKey.create(group_id, own, self.identity.public)
            self._sender_keys[group_id] = sender_key
            self._distributed[group_id] = set()
        keys = []
        missing = [d for d in self.group_members[group_id] if d != self.device_id]
        missing = [d for d in missing if d not in self._distributed[group_id]]
        for device_id in missing:
            user, _ = self.directory.identities[device_id]
            payload = sender_key.distribution_payload(
                DeviceAddress(user, device_id), client_message_id=client_id, sent_at_ms=sent_at_ms
            )
            keys.append(
                frames.Copy(device=device_id, body=self.sessions[device_id].encrypt(payload, self.identity))
            )
        body = sender_key.encrypt(GroupPayload(own, conversation, client_id, sent_at_ms, text), self.identity)
        self._distributed[group_id].update(missing)
        frame = frames.GroupSend(
            id=client_id, group=group_id, epoch=self.group_epochs[group_id], body=body, keys=keys
        )
        data = self.protocol.send(frame)
        self._unaccepted[client_id] = data
        return client_id, data

    # --- receiving --------------------------------------------------------------------------

    def receive(self, data: bytes | str) -> Event | None:
        """Turn one server frame into an event (None for frames a scenario does not care about).

        Raises :class:`NeedDevices` when a message comes from a device this
        process has never heard of; the transport fetches its user's device
        list and calls again with the same frame.
        """
        event = self.protocol.receive(data)
        match event:
            case InboxItem(frame=frames.Deliver() as deliver):
                return self._open(deliver)
            case InboxItem(frame=frames.GroupEvent() as group_event):
                epoch = max(self.group_epochs.get(group_event.group, 0), group_event.epoch)
                self.group_epochs[group_event.group] = epoch
                self.protocol.handled(group_event.seq)
                return None
            case InboxItem(frame=frames.Status() as status):
                self.protocol.handled(status.seq)
                return ReceiptArrived(status.message, status.kind, status.by)
            case SendAccepted(accepted=accepted):
                self._unaccepted.pop(accepted.id, None)
                return Accepted(accepted.id, accepted.message)
            case SendRefused(client_id=client_id, error=error):
                frame = self._unaccepted.get(client_id)
                if error.code == "rate-limited" and frame is not None:
                    return RetryLater(client_id, frame, float(error.retry_after or 1.0))
                self._unaccepted.pop(client_id, None)
                return Failed(error.code, f"send {client_id} refused")
            case ProtocolServerError(error=error):
                return Failed(error.code, error.message)
            case Connected():
                return Ready()
            case Ephemeral():
                return None
        return None  # pragma: no cover

    def _open(self, deliver: frames.Deliver) -> Event:
        known = self.directory.identities.get(deliver.sender_device)
        if known is None:
            raise NeedDevices(deliver.sender)
        self._received[deliver.message] = hashlib.sha256(deliver.body).digest()
        if len(self._received) > RECEIVED_HASHES_KEPT:
            self._received.popitem(last=False)
        sender_user, sender_identity = known
        delivered_by = DeviceAddress(deliver.sender, deliver.sender_device)
        try:
            if deliver.group is not None:
                text, client_id = self._open_group(deliver, delivered_by, sender_identity)
            else:
                assert deliver.to is not None
                opened = self._open_pairwise(
                    deliver.body, delivered_by, sender_identity, Conversation.user(deliver.to)
                )
                text, client_id = opened.payload.text, opened.payload.client_message_id
        except CryptoError as exc:
            self.protocol.handled(deliver.seq)
            return Failed(exc.code, f"message {deliver.message} from {deliver.sender} did not open")
        self.protocol.handled(deliver.seq)
        sent_at = sent_at_of(client_id)
        latency = None if sent_at is None else max(0.0, (now_us() - sent_at) / 1e6)
        return Received(sender_user, deliver.message, client_id, text, latency, deliver.group)

    def _open_pairwise(
        self,
        body: bytes,
        delivered_by: DeviceAddress,
        sender_identity: PublicIdentity,
        conversation: Conversation,
    ) -> SignedPayload:
        """§3.7.6 routing: the existing session, or a new one from a prekey message."""
        session = self.sessions.get(delivered_by.device)
        if session is not None:
            try:
                return session.decrypt(body, delivered_by=delivered_by, conversation=conversation)
            except NoSession:
                pass
            except CryptoError:
                if session.matches(body) or not _is_prekey_message(body):
                    raise
        accepted = sessions.accept_prekey_message(
            self.identity,
            self.address,
            body,
            delivered_by=delivered_by,
            sender_identity=sender_identity,
            conversation=conversation,
            signed_prekeys=lambda key_id: (
                self.signed_prekey if key_id == self.signed_prekey.prekey_id else None
            ),
            one_time_prekeys=self.one_time.get,
        )
        self.sessions[delivered_by.device] = accepted.session
        if accepted.used_one_time_prekey_id is not None:
            self.one_time.pop(accepted.used_one_time_prekey_id, None)
        return accepted.message

    def _open_group(
        self, deliver: frames.Deliver, delivered_by: DeviceAddress, sender_identity: PublicIdentity
    ) -> tuple[str, str]:
        assert deliver.group is not None
        conversation = Conversation.group(deliver.group)
        slot = (deliver.group, deliver.sender_device)
        if deliver.key is not None:
            distribution = self._open_pairwise(deliver.key, delivered_by, sender_identity, conversation)
            self._receivers[slot] = group_crypto.accept_distribution(
                distribution, sender_identity=sender_identity, receiver=self._receivers.get(slot)
            )
        receiver = self._receivers.get(slot)
        if receiver is None:
            raise NoSession()
        opened = receiver.decrypt(deliver.body, delivered_by=delivered_by, conversation=conversation)
        return opened.payload.text, opened.payload.client_message_id


def _is_prekey_message(body: bytes) -> bool:
    return len(body) > 1 and body[0] == 0x02 and body[1] == 0x02
