"""The browser's crypto core (web_client/, JavaScript) and lien.crypto talk to each other.

docs/protocol-crypto.md §3.5 to §3.10: one specification, two implementations.
Here a JavaScript device runs in node (``web_client/test/interop_cli.js``,
JSON lines over stdin/stdout) and a Python device in this process:

1. Python initiates, JavaScript responds; 20 messages each way, delivered out
   of order, with DH ratchet steps, held-back messages from previous chains,
   a stored-and-restored session and replays;
2. JavaScript initiates, Python responds; the same;
3. each side verifies the other's signed payloads, and refuses altered ones;
4. both compute the same safety number.

These tests need ``node`` and ``web_client/node_modules``: without them they
fail (they do not skip), asking to run ``npm ci`` in ``web_client/``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import pytest

from lien.crypto.errors import BadSignature, CryptoError
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair
from lien.crypto.payload import Conversation, DeviceAddress, Payload, sign_payload, verify_payload
from lien.crypto.safety import safety_number, user_fingerprint
from lien.crypto.session import Session, accept_prekey_message, initiate_session
from lien.crypto.wire import parse_body
from lien.crypto.x3dh import PrekeyBundle
from lien.protocol import api
from tests.node_cli import NodeCli, address_json, b64, bundle_json, identity_json, unb64

MESSAGES_EACH_WAY = 20
ROUNDS = 5

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def node() -> Iterator[NodeCli]:
    cli = NodeCli()
    try:
        yield cli
    finally:
        cli.close()


# --- the two kinds of device --------------------------------------------------------------


@dataclass
class Outcome:
    """What a receiver made of a body: the text, or the §3.9 code it was refused with."""

    text: str | None = None
    code: str | None = None


class Side(Protocol):
    address: DeviceAddress
    identity: PublicIdentity

    def bundle_json(self) -> dict[str, Any]: ...
    def initiate(self, peer: Side) -> None: ...
    def send(self, peer: Side, text: str, client_message_id: str) -> bytes: ...
    def receive(self, peer: Side, body: bytes) -> Outcome: ...
    def persist(self, peer: Side) -> None: ...


class PythonSide:
    """A device of lien.crypto, routing bodies as §3.7.6 says (like the SDK)."""

    def __init__(self, user: str, device: int) -> None:
        self.address = DeviceAddress(user, device)
        self._identity = IdentityKeyPair.generate()
        self.identity = self._identity.public
        self._signed_prekey = SignedPrekeyPair.generate(1, self._identity)
        self._one_time = {key.prekey_id: key for key in OneTimePrekeyPair.generate_batch(100, 3)}
        self.session: Session | None = None
        self.received: list[tuple[bytes, bytes]] = []
        """(payload bytes, signature) of every message decrypted, to verify offline."""

    def bundle_json(self) -> dict[str, Any]:
        first = next(iter(self._one_time.values()))
        return bundle_json(self.address, self.identity, self._signed_prekey, first)

    def initiate(self, peer: Side) -> None:
        bundle = PrekeyBundle.from_api(
            msgspec.json.decode(json.dumps(peer.bundle_json()), type=api.KeyBundle)
        )
        self.session = initiate_session(self._identity, self.address, peer.address, bundle)

    def send(self, peer: Side, text: str, client_message_id: str) -> bytes:
        assert self.session is not None
        payload = Payload(
            self.address,
            peer.address,
            Conversation.user(peer.address.user),
            client_message_id,
            1_700_000_000_000,
            text,
        )
        return self.session.encrypt(payload, self._identity)

    def receive(self, peer: Side, body: bytes) -> Outcome:
        conversation = Conversation.user(self.address.user)
        try:
            if parse_body(body).x3dh is None or (self.session is not None and self.session.matches(body)):
                assert self.session is not None
                signed = self.session.decrypt(body, delivered_by=peer.address, conversation=conversation)
            else:
                accepted = accept_prekey_message(
                    self._identity,
                    self.address,
                    body,
                    delivered_by=peer.address,
                    sender_identity=peer.identity,
                    conversation=conversation,
                    signed_prekeys=lambda key_id: self._signed_prekey if key_id == 1 else None,
                    one_time_prekeys=self._one_time.get,
                )
                self.session = accepted.session
                if accepted.used_one_time_prekey_id is not None:
                    del self._one_time[accepted.used_one_time_prekey_id]
                signed = accepted.message
        except CryptoError as error:
            return Outcome(code=error.code)
        assert signed.signer == peer.identity.signing_key
        self.received.append((signed.encoded, signed.signature))
        return Outcome(text=signed.payload.text)

    def persist(self, peer: Side) -> None:
        assert self.session is not None
        self.session = Session.from_bytes(self.session.to_bytes())

    def sign(self, peer: Side, text: str) -> dict[str, str]:
        payload = Payload(
            self.address, peer.address, Conversation.user(peer.address.user), "proof-1", 1, text
        )
        signed = sign_payload(self._identity, payload)
        return {
            "payload_bytes": b64(signed.encoded),
            "signature": b64(signed.signature),
            "signer": b64(signed.signer),
        }


class JavaScriptSide:
    """A device of web_client/src/crypto, in the node process."""

    def __init__(self, node: NodeCli, user: str, device: int) -> None:
        self._node = node
        self.name = f"{user}/{device}"
        self.address = DeviceAddress(user, device)
        created = node.call("device", name=self.name, user=user, device=str(device))
        self.identity = PublicIdentity(
            unb64(created["identity"]["signing_key"]), unb64(created["identity"]["exchange_key"])
        )
        self._bundle: dict[str, Any] = created["bundle"]
        self.received: list[dict[str, Any]] = []

    def bundle_json(self) -> dict[str, Any]:
        return self._bundle

    def initiate(self, peer: Side) -> None:
        self._node.call(
            "initiate", name=self.name, peer=address_json(peer.address), bundle=peer.bundle_json()
        )

    def send(self, peer: Side, text: str, client_message_id: str) -> bytes:
        answer = self._node.call(
            "encrypt",
            name=self.name,
            recipient=address_json(peer.address),
            client_message_id=client_message_id,
            sent_at_ms="1700000000000",
            text=text,
        )
        return unb64(answer["body"])

    def receive(self, peer: Side, body: bytes) -> Outcome:
        answer = self._node.call(
            "receive",
            name=self.name,
            sender_identity=identity_json(peer.identity),
            body=b64(body),
            **{"from": address_json(peer.address)},
        )
        if not answer["ok"]:
            return Outcome(code=answer["code"])
        assert unb64(answer["signer"]) == peer.identity.signing_key
        self.received.append(answer)
        return Outcome(text=answer["payload"]["text"])

    def persist(self, peer: Side) -> None:
        self._node.call("persist", name=self.name, peer=address_json(peer.address))


# --- the conversation ---------------------------------------------------------------------


def text_of(sender: Side, index: int) -> str:
    return f"Kaliémie 6,8 mmol/L — message {index} de {sender.address.user} 🩺"


Sent = tuple[Side, Side, bytes, str]
"""Sender, receiver, body, text."""


def converse(initiator: Side, responder: Side, seed: int) -> list[Sent]:
    """20 messages each way in 5 rounds, out of order, one of each side's held back two rounds.

    In each round the initiator sends 4, the responder reads them shuffled, then answers 4,
    which the initiator reads shuffled: every round is a DH ratchet step on both sides, so
    the held-back messages come from previous chains (their keys stored as skipped keys).
    Both sessions are stored and restored half-way. Returns every message sent, in order.
    """
    rng = random.Random(seed)
    initiator.initiate(responder)
    sent: list[Sent] = []
    held: list[Sent] = []
    for round_number in range(ROUNDS):
        for sender, receiver in ((initiator, responder), (responder, initiator)):
            batch: list[Sent] = []
            for _ in range(MESSAGES_EACH_WAY // ROUNDS):
                index = sum(1 for item in sent if item[0] is sender)
                text = text_of(sender, index)
                batch.append(
                    (sender, receiver, sender.send(receiver, text, f"{sender.address.user}-{index}"), text)
                )
            sent.extend(batch)
            if round_number == 1:  # hold one back: delivered two rounds (two DH steps) later
                held.append(batch.pop(rng.randrange(len(batch))))
            rng.shuffle(batch)
            if round_number == 3:
                batch.extend(item for item in held if item[0] is sender)
            for item_sender, item_receiver, body, text in batch:
                outcome = item_receiver.receive(item_sender, body)
                assert outcome == Outcome(text=text), f"{item_receiver.address.user} could not read {text!r}"
        if round_number == 2:
            initiator.persist(responder)
            responder.persist(initiator)
    assert len(sent) == 2 * MESSAGES_EACH_WAY
    return sent


def check_replays(sent: list[Sent]) -> None:
    """Bodies delivered again are refused, and change nothing for the next message."""
    for sender, receiver, body, _ in sent[::3] + sent[-2:]:
        assert receiver.receive(sender, body).code == "replayed-message"
    initiator, responder = sent[0][0], sent[0][1]
    body = initiator.send(responder, "après les rejeux", "after-replays")
    assert responder.receive(initiator, body) == Outcome(text="après les rejeux")
    body = responder.send(initiator, "bien reçu", "after-replays")
    assert initiator.receive(responder, body) == Outcome(text="bien reçu")


def test_python_initiates_and_javascript_responds(node: NodeCli) -> None:
    alice = PythonSide("alice", 11)
    bob = JavaScriptSide(node, "bob", 22)
    sent = converse(alice, bob, seed=1)
    types = [body[1] for _, _, body, _ in sent]
    assert types[:4] == [0x02] * 4  # prekey messages until Bob answers, ratchet messages after
    assert set(types[4:]) == {0x01}
    check_replays(sent)
    # Python checks Bob's signatures offline with nothing but the bytes and Bob's key (§3.8.5)
    assert len(alice.received) == MESSAGES_EACH_WAY + 1
    for payload_bytes, signature in alice.received:
        assert verify_payload(payload_bytes, signature, bob.identity.signing_key).sender == bob.address


def test_javascript_initiates_and_python_responds(node: NodeCli) -> None:
    carol = JavaScriptSide(node, "carol", 33)
    dave = PythonSide("dave", 44)
    sent = converse(carol, dave, seed=2)
    assert [body[1] for _, _, body, _ in sent[:5]] == [0x02] * 4 + [0x01]
    check_replays(sent)
    assert len(dave.received) == MESSAGES_EACH_WAY + 1
    for payload_bytes, signature in dave.received:
        assert verify_payload(payload_bytes, signature, carol.identity.signing_key).sender == carol.address
    # what JavaScript decrypted is what Python signed, byte for byte
    for answer in carol.received:
        verify_payload(unb64(answer["payload_bytes"]), unb64(answer["signature"]), dave.identity.signing_key)


def test_each_side_verifies_the_other_signed_payloads(node: NodeCli) -> None:
    erin = PythonSide("erin", 55)
    frank = JavaScriptSide(node, "frank", 66)
    # JavaScript verifies Python's signature, and refuses it from another key or altered
    signed = erin.sign(frank, "Ordonnance renouvelée — 3 mois")
    answer = node.call("verify", **signed)
    assert answer["ok"] and answer["payload"]["text"] == "Ordonnance renouvelée — 3 mois"
    assert answer["payload"]["sender"] == address_json(erin.address)
    wrong_signer = {**signed, "signer": b64(frank.identity.signing_key)}
    assert node.call("verify", **wrong_signer) == {"ok": False, "code": "bad-signature"}
    altered = bytearray(unb64(signed["payload_bytes"]))
    altered[-1] ^= 1
    assert node.call("verify", **{**signed, "payload_bytes": b64(bytes(altered))})["code"] == "bad-signature"
    # Python verifies JavaScript's signature, and refuses it altered
    theirs = node.call(
        "sign",
        name=frank.name,
        recipient=address_json(erin.address),
        client_message_id="proof-2",
        sent_at_ms=str(2**63 - 1),
        text="Résultat transmis à 14 h 02",
    )
    payload = verify_payload(
        unb64(theirs["payload_bytes"]), unb64(theirs["signature"]), unb64(theirs["signer"])
    )
    assert unb64(theirs["signer"]) == frank.identity.signing_key
    assert payload.sender == frank.address and payload.recipient == erin.address
    assert payload.sent_at_ms == 2**63 - 1 and payload.text == "Résultat transmis à 14 h 02"
    signature = bytearray(unb64(theirs["signature"]))
    signature[0] ^= 1
    with pytest.raises(BadSignature):
        verify_payload(unb64(theirs["payload_bytes"]), bytes(signature), frank.identity.signing_key)


def test_both_sides_compute_the_same_safety_number(node: NodeCli) -> None:
    alice_devices = [PythonSide("alice", 1).identity, PythonSide("alice", 2).identity]
    bob_devices = [JavaScriptSide(node, "bob", 3).identity, PythonSide("bob", 4).identity]
    answer = node.call(
        "safety_number",
        user_a="alice",
        devices_a=[identity_json(identity) for identity in alice_devices],
        user_b="bob",
        devices_b=[identity_json(identity) for identity in reversed(bob_devices)],
    )
    number = safety_number("alice", alice_devices, "bob", bob_devices)
    assert answer["digits"] == number.digits
    assert answer["fingerprint_a"] == user_fingerprint("alice", alice_devices)
    assert answer["fingerprint_b"] == user_fingerprint("bob", bob_devices)
    assert len(number.digits) == 60
