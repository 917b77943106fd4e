"""Micro-benchmark of the format-2 crypto core (docs/protocol-crypto.md §3.5 to §3.8). Not a test.

    python scripts/bench_crypto.py [--messages N]

Prints microseconds per operation, best of five rounds:
session set-up (bundle check + X3DH + first prekey message + accept),
encrypt+decrypt of a message in a running session (sign, encrypt, decrypt,
verify), the same with a DH ratchet step on every message (ping-pong), and
saving + restoring a session state; then sender keys for groups
(docs/protocol-group.md §3.17): encrypting a 1 KiB text once for the whole
group, and decrypting it on one member device.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from lien.crypto.group import SenderKey, SenderKeyReceiver
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair
from lien.crypto.payload import Conversation, DeviceAddress, GroupPayload, Payload
from lien.crypto.session import Session, accept_prekey_message, initiate_session
from lien.crypto.x3dh import OneTimePrekeyPublic, PrekeyBundle

ALICE, BOB = DeviceAddress("alice", 1), DeviceAddress("bob", 2)
TEXT = "Potassium 6,8 mmol/L — merci de rappeler le patient avant 18 h."
GROUP_TEXT = ("Compte rendu de la réunion de l'équipe de soins. " * 30)[:1024]
"""1,024 characters (1,066 bytes of UTF-8)."""
GROUP = "care-team:bench"


class Pair:
    def __init__(self) -> None:
        self.alice_identity, self.bob_identity = IdentityKeyPair.generate(), IdentityKeyPair.generate()
        self.spk = SignedPrekeyPair.generate(1, self.bob_identity)
        self.counter = 0

    def set_up(self) -> tuple[Session, Session]:
        opk = OneTimePrekeyPair.generate(self.counter % 1000)
        bundle = PrekeyBundle(
            self.bob_identity.public,
            1,
            self.spk.public_key,
            self.spk.signature,
            OneTimePrekeyPublic(opk.prekey_id, opk.public_key),
        )
        alice = initiate_session(self.alice_identity, ALICE, BOB, bundle)
        body = alice.encrypt(self.payload(ALICE, BOB), self.alice_identity)
        accepted = accept_prekey_message(
            self.bob_identity,
            BOB,
            body,
            delivered_by=ALICE,
            sender_identity=self.alice_identity.public,
            conversation=Conversation.user("bob"),
            signed_prekeys=lambda _: self.spk,
            one_time_prekeys=lambda _: opk,
        )
        return alice, accepted.session

    def payload(self, sender: DeviceAddress, recipient: DeviceAddress) -> Payload:
        self.counter += 1
        return Payload(
            sender, recipient, Conversation.user(recipient.user), f"m{self.counter}", 1_700_000_000_000, TEXT
        )


def best_of(rounds: int, count: int, action: Callable[[], object]) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            action()
        timings.append((time.perf_counter() - start) / count)
    return min(timings) * 1e6


def bench_group(count: int) -> tuple[float, float, float, int]:
    """Best of five rounds: µs per group encrypt, per decrypt on one member device, per state save+restore."""
    alice_identity = IdentityKeyPair.generate()
    sender_key = SenderKey.create(GROUP, ALICE, alice_identity.public)
    receiver = SenderKeyReceiver.create(GROUP, ALICE, alice_identity.public)
    receiver.install(sender_key.distribution().encode())
    conversation = Conversation.group(GROUP)
    payloads = [
        GroupPayload(ALICE, conversation, f"g{n}", 1_700_000_000_000, GROUP_TEXT) for n in range(count)
    ]
    encrypt_times, decrypt_times = [], []
    for _ in range(5):
        start = time.perf_counter()
        bodies = [sender_key.encrypt(payload, alice_identity) for payload in payloads]
        encrypt_times.append((time.perf_counter() - start) / count)
        start = time.perf_counter()
        for body in bodies:
            receiver.decrypt(body, delivered_by=ALICE, conversation=conversation)
        decrypt_times.append((time.perf_counter() - start) / count)
    state_us = best_of(5, count, lambda: SenderKeyReceiver.from_bytes(receiver.to_bytes()))
    return min(encrypt_times) * 1e6, min(decrypt_times) * 1e6, state_us, len(bodies[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    pair = Pair()
    count = args.messages

    setup_us = best_of(5, max(count // 10, 20), pair.set_up)

    alice, bob = pair.set_up()
    reply = bob.encrypt(pair.payload(BOB, ALICE), pair.bob_identity)
    alice.decrypt(reply, delivered_by=BOB, conversation=Conversation.user("alice"))

    def one_way() -> None:
        body = alice.encrypt(pair.payload(ALICE, BOB), pair.alice_identity)
        bob.decrypt(body, delivered_by=ALICE, conversation=Conversation.user("bob"))

    one_way_us = best_of(5, count, one_way)

    sides = [(alice, pair.alice_identity, ALICE, bob, BOB), (bob, pair.bob_identity, BOB, alice, ALICE)]

    def ping_pong() -> None:
        sender, identity, sender_address, receiver, receiver_address = sides[pair.counter % 2]
        body = sender.encrypt(pair.payload(sender_address, receiver_address), identity)
        receiver.decrypt(
            body, delivered_by=sender_address, conversation=Conversation.user(receiver_address.user)
        )

    ping_pong_us = best_of(5, count, ping_pong)
    state_us = best_of(5, count, lambda: Session.from_bytes(bob.to_bytes()))
    body = alice.encrypt(pair.payload(ALICE, BOB), pair.alice_identity)

    print(f"body size for a {len(TEXT)}-character text: {len(body)} bytes")
    print(f"session set-up (X3DH both sides + first message): {setup_us:8.1f} µs")
    print(f"encrypt + decrypt, same chain:                    {one_way_us:8.1f} µs per message")
    print(f"encrypt + decrypt, DH ratchet step each message:  {ping_pong_us:8.1f} µs per message")
    print(f"state to_bytes + from_bytes:                      {state_us:8.1f} µs")

    group_encrypt_us, group_decrypt_us, group_state_us, group_body = bench_group(count)
    print(f"group body size for a {len(GROUP_TEXT)}-character text: {group_body} bytes")
    print(f"group encrypt, once for all member devices:       {group_encrypt_us:8.1f} µs per message")
    print(f"group decrypt, on one member device:              {group_decrypt_us:8.1f} µs per message")
    print(f"group receiver to_bytes + from_bytes:             {group_state_us:8.1f} µs")


if __name__ == "__main__":
    main()
