"""Sender keys in the browser's crypto core (JavaScript) and lien.crypto talk to each other.

docs/protocol-group.md §3.17: a JavaScript device (``web_client/test/interop_cli.js``,
its ``group_*`` requests) and Python devices in this process share care-team groups:

1. each distributes its sender key to the other over their pairwise session (§3.17.4.3),
   then both write in the group; each reads the other's bodies out of order, refuses
   replays, and verifies the other's signed group payloads offline (§3.17.6);
2. a member is removed: the remaining senders of both languages rotate (§3.17.9); the
   removed device reads nothing sent after, the others read everything;
3. tampered bodies, bodies delivered by another device and distributions claiming another
   identity are refused on both sides.

These tests need ``node`` and ``web_client/node_modules`` (``make web-deps``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from lien.crypto.errors import CryptoError
from lien.crypto.group import SenderKey, SenderKeyReceiver, accept_distribution, is_distribution
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair
from lien.crypto.payload import Conversation, DeviceAddress, GroupPayload, verify_payload
from lien.crypto.session import Session, accept_prekey_message, initiate_session
from lien.crypto.wire import parse_body
from lien.crypto.x3dh import PrekeyBundle
from lien.protocol import api
from tests.node_cli import NodeCli, address_json, b64, bundle_json, identity_json, unb64

GROUP = "GCARETEAM2345"
CONVERSATION = Conversation.group(GROUP)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def node() -> Iterator[NodeCli]:
    cli = NodeCli()
    try:
        yield cli
    finally:
        cli.close()


def refused(outcome: str | Exception) -> str:
    """The §3.17.10 code of a refusal."""
    assert isinstance(outcome, CryptoError), outcome
    return outcome.code


class PythonMember:
    """A member device of lien.crypto: pairwise sessions, its sender key, a receiver per member device."""

    def __init__(self, user: str, device: int) -> None:
        self.address = DeviceAddress(user, device)
        self._identity = IdentityKeyPair.generate()
        self.identity = self._identity.public
        self._signed_prekey = SignedPrekeyPair.generate(1, self._identity)
        self._one_time = {key.prekey_id: key for key in OneTimePrekeyPair.generate_batch(100, 5)}
        self._sessions: dict[str, Session] = {}
        self.key = SenderKey.create(GROUP, self.address, self.identity)
        self.receivers: dict[str, SenderKeyReceiver] = {}
        self.sent = 0

    def bundle_json(self) -> dict[str, Any]:
        first = next(iter(self._one_time.values()))
        return bundle_json(self.address, self.identity, self._signed_prekey, first)

    def distribute(self, peer: Member) -> bytes:
        """The current distribution for ``peer``, over the session with it (opened from its bundle)."""
        name = str(peer.address)
        if name not in self._sessions:
            bundle = msgspec.json.decode(json.dumps(peer.bundle_json()), type=api.KeyBundle)
            self._sessions[name] = initiate_session(
                self._identity, self.address, peer.address, PrekeyBundle.from_api(bundle)
            )
        carried = self.key.distribution_payload(peer.address, client_message_id="key", sent_at_ms=1)
        return self._sessions[name].encrypt(carried, self._identity)

    def accept(self, peer: Member, body: bytes) -> tuple[int, ...]:
        """Open a pairwise body in the group's conversation and install the distribution inside."""
        name = str(peer.address)
        existing = self._sessions.get(name)
        if parse_body(body).x3dh is None or (existing is not None and existing.matches(body)):
            assert existing is not None
            signed = existing.decrypt(body, delivered_by=peer.address, conversation=CONVERSATION)
        else:
            accepted = accept_prekey_message(
                self._identity,
                self.address,
                body,
                delivered_by=peer.address,
                sender_identity=peer.identity,
                conversation=CONVERSATION,
                signed_prekeys=lambda key_id: self._signed_prekey if key_id == 1 else None,
                one_time_prekeys=self._one_time.get,
            )
            self._sessions[name] = accepted.session
            signed = accepted.message
        assert is_distribution(signed.payload)
        receiver = accept_distribution(
            signed, sender_identity=peer.identity, receiver=self.receivers.get(name)
        )
        self.receivers[name] = receiver
        return receiver.key_ids

    def encrypt(self, text: str) -> bytes:
        self.sent += 1
        payload = GroupPayload(self.address, CONVERSATION, f"py-{self.sent}", 1_700_000_000_000, text)
        return self.key.encrypt(payload, self._identity)

    def decrypt(self, peer: Member, body: bytes) -> str | CryptoError:
        """The text, verified offline too; or the refusal."""
        receiver = self.receivers.get(str(peer.address))
        if receiver is None:
            return CryptoError("no receiver")
        try:
            received = receiver.decrypt(body, delivered_by=peer.address, conversation=CONVERSATION)
        except CryptoError as error:
            return error
        proven = verify_payload(received.encoded, received.signature, peer.identity.signing_key)
        assert isinstance(proven, GroupPayload) and proven.sender == peer.address
        return received.payload.text

    def rotate(self) -> None:
        self.key = self.key.rotate()

    def persist(self) -> None:
        self.key = SenderKey.from_bytes(self.key.to_bytes())
        self.receivers = {
            name: SenderKeyReceiver.from_bytes(r.to_bytes()) for name, r in self.receivers.items()
        }


class JavaScriptMember:
    """A member device of web_client/src/crypto, in the node process (one per device id in a module)."""

    def __init__(self, node: NodeCli, user: str, device: int) -> None:
        self._node = node
        self.name = f"{user}/{device}"
        self.address = DeviceAddress(user, device)
        created = node.call("device", name=self.name, user=user, device=str(device), one_time_prekeys=5)
        self.identity = PublicIdentity(
            unb64(created["identity"]["signing_key"]), unb64(created["identity"]["exchange_key"])
        )
        self._bundle: dict[str, Any] = created["bundle"]
        self._peers: set[str] = set()
        self.sent = 0
        node.call("group_key", name=self.name, group=GROUP)
        self.proofs: list[dict[str, Any]] = []

    def bundle_json(self) -> dict[str, Any]:
        """Its bundle; the one-time prekey only the first time (the CLI device lists one)."""
        bundle, self._bundle = self._bundle, {**self._bundle, "prekey": None}
        return bundle

    def distribute(self, peer: Member) -> bytes:
        if str(peer.address) not in self._peers:
            self._node.call(
                "initiate", name=self.name, peer=address_json(peer.address), bundle=peer.bundle_json()
            )
            self._peers.add(str(peer.address))
        answer = self._node.call(
            "group_distribute",
            name=self.name,
            group=GROUP,
            recipient=address_json(peer.address),
            client_message_id="key",
        )
        return unb64(answer["body"])

    def accept(self, peer: Member, body: bytes) -> tuple[int, ...]:
        self._peers.add(str(peer.address))
        answer = self._node.call(
            "group_accept",
            name=self.name,
            group=GROUP,
            sender_identity=identity_json(peer.identity),
            body=b64(body),
            **{"from": address_json(peer.address)},
        )
        assert answer["ok"], answer
        return tuple(answer["key_ids"])

    def encrypt(self, text: str) -> bytes:
        self.sent += 1
        answer = self._node.call(
            "group_encrypt",
            name=self.name,
            group=GROUP,
            client_message_id=f"js-{self.sent}",
            sent_at_ms="1700000000000",
            text=text,
        )
        return unb64(answer["body"])

    def decrypt(self, peer: Member, body: bytes) -> str | CryptoError:
        answer = self._node.call(
            "group_decrypt",
            name=self.name,
            group=GROUP,
            body=b64(body),
            **{"from": address_json(peer.address)},
        )
        if not answer["ok"]:
            error = CryptoError()
            error.code = answer["code"]  # type: ignore[misc]
            return error
        assert answer["sender"] == address_json(peer.address) and answer["group"] == GROUP
        assert unb64(answer["signer"]) == peer.identity.signing_key
        self.proofs.append(answer)
        return str(answer["text"])

    def rotate(self) -> None:
        self._node.call("group_rotate", name=self.name, group=GROUP)

    def persist(self) -> None:
        self._node.call("group_persist", name=self.name, group=GROUP)


Member = PythonMember | JavaScriptMember


def distribute(sender: Member, recipients: list[Member]) -> None:
    for recipient in recipients:
        key_ids = recipient.accept(sender, sender.distribute(recipient))
        assert len(key_ids) >= 1


def text_of(sender: Member, index: int) -> str:
    return f"Kaliémie 6,8 mmol/L — {sender.address.user} n°{index} 🩺"


def test_python_and_javascript_read_each_others_group_messages(node: NodeCli) -> None:
    alice = PythonMember("alice", 11)
    bob = JavaScriptMember(node, "bob", 22)
    distribute(alice, [bob])  # alice opens the session with a prekey message
    distribute(bob, [alice])  # bob answers on that session
    rng = random.Random(3)
    for sender, receiver in ((alice, bob), (bob, alice)):
        bodies = [(sender.encrypt(text_of(sender, index)), text_of(sender, index)) for index in range(12)]
        held = bodies.pop(2)
        first, second = bodies[:6], bodies[6:]
        rng.shuffle(first)
        for body, text in first:
            assert receiver.decrypt(sender, body) == text
        receiver.persist()
        sender.persist()
        for body, text in [*second, held]:
            assert receiver.decrypt(sender, body) == text
        for body, _ in bodies[::4]:
            assert refused(receiver.decrypt(sender, body)) == "replayed-message"
        after = sender.encrypt("après les rejeux")
        assert receiver.decrypt(sender, after) == "après les rejeux"
    # what JavaScript opened, Python verifies offline with nothing but the bytes and Alice's key
    assert len(bob.proofs) == 13
    for proof in bob.proofs:
        payload = verify_payload(
            unb64(proof["payload_bytes"]), unb64(proof["signature"]), alice.identity.signing_key
        )
        assert isinstance(payload, GroupPayload) and payload.sender == alice.address
    # and JavaScript verifies a proof Python kept
    body = bob.encrypt("preuve")
    receiver = alice.receivers[str(bob.address)]
    received = receiver.decrypt(body, delivered_by=bob.address, conversation=CONVERSATION)
    answer = node.call(
        "verify",
        payload_bytes=b64(received.encoded),
        signature=b64(received.signature),
        signer=b64(received.signer),
    )
    assert answer["ok"] and answer["payload"]["text"] == "preuve" and answer["payload"]["recipient"] is None
    altered = bytearray(received.encoded)
    altered[-1] ^= 1
    assert node.call(
        "verify",
        payload_bytes=b64(bytes(altered)),
        signature=b64(received.signature),
        signer=b64(received.signer),
    ) == {"ok": False, "code": "bad-signature"}


def test_after_a_removal_senders_of_both_languages_rotate_and_the_removed_device_reads_nothing(
    node: NodeCli,
) -> None:
    alice = PythonMember("alice", 111)
    bob = JavaScriptMember(node, "bob", 122)
    carol = JavaScriptMember(node, "carol", 133)
    dave = PythonMember("dave", 144)
    team: list[Member] = [alice, bob, carol, dave]
    for sender in team:
        distribute(sender, [member for member in team if member is not sender])
    in_flight: dict[str, bytes] = {}
    for sender in team:
        body = sender.encrypt(f"avant le départ de Bob, de {sender.address.user}")
        in_flight[str(sender.address)] = body
        for member in team:
            if member is not sender and member is not carol:  # Carol reads them after the rotation
                assert member.decrypt(sender, body) == f"avant le départ de Bob, de {sender.address.user}"

    # Bob is removed: every remaining sender rotates and gives the new key to the others only
    remaining: list[Member] = [alice, carol, dave]
    for sender in remaining:
        sender.rotate()
        distribute(sender, [member for member in remaining if member is not sender])
    for sender in remaining:
        body = sender.encrypt(f"après le départ de Bob, de {sender.address.user}")
        for member in remaining:
            if member is not sender:
                assert member.decrypt(sender, body) == f"après le départ de Bob, de {sender.address.user}"
        assert refused(bob.decrypt(sender, body)) == "unknown-sender-key"
    # a message sent under the previous key, still in flight, opens with the key kept beside the new one
    for sender in (alice, dave, bob):
        assert carol.decrypt(sender, in_flight[str(sender.address)]) == (
            f"avant le départ de Bob, de {sender.address.user}"
        )


def test_tampered_and_misrouted_group_messages_are_refused_on_both_sides(node: NodeCli) -> None:
    alice = PythonMember("alice", 211)
    bob = JavaScriptMember(node, "bob", 222)
    erin = JavaScriptMember(node, "erin", 255)
    distribute(alice, [bob, erin])
    distribute(bob, [alice])
    distribute(erin, [alice])
    for sender, receiver in ((alice, bob), (bob, alice)):
        body = sender.encrypt("intact")
        for index in (1, 5, 9, 40, len(body) - 70, len(body) - 1):
            damaged = bytearray(body)
            damaged[index] ^= 0x01
            code = refused(receiver.decrypt(sender, bytes(damaged)))
            assert code in {"decryption-failed", "unknown-sender-key"}, (index, code)
        assert receiver.decrypt(sender, body) == "intact"
    # a body of Erin's, delivered as if Bob had sent it, is refused by Alice
    from_erin = erin.encrypt("d'Erin")
    assert refused(alice.decrypt(bob, from_erin)) in {"decryption-failed", "unknown-sender-key"}
    assert alice.decrypt(erin, from_erin) == "d'Erin"
    # a distribution from Alice, said to come from Erin's device, does not open in JavaScript
    carried = alice.distribute(bob)
    answer = node.call(
        "group_accept",
        name=bob.name,
        group=GROUP,
        sender_identity=identity_json(erin.identity),
        body=b64(carried),
        **{"from": address_json(erin.address)},
    )
    assert answer == {"ok": False, "code": "no-session"}  # Bob has no session with that device
