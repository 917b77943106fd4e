"""Property and fuzz tests of sender keys (docs/protocol-group.md §3.17).

Hypothesis runs derandomized (the same examples every run) so that CI is
reproducible; the module takes a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lien.crypto import errors, primitives
from lien.crypto.group import SenderKey, SenderKeyReceiver
from lien.crypto.group_chain import DEFAULT_SENDER_KEY_LIMITS, SenderKeyLimits
from lien.crypto.group_wire import parse_group_body
from lien.crypto.payload import GroupPayload

from .crypto_group_helpers import Member, derivable_message_keys, member, opens, team

FAST = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIGHT = SenderKeyLimits(max_skip=3, max_skipped_keys=4)

# --- random groups: send, deliver out of order, drop, duplicate, restart, rotate ---------------


@dataclass
class InFlight:
    sender: int
    body: bytes
    payload: GroupPayload
    key_id: int


ACTIONS = ["send"] * 3 + ["deliver"] * 4 + ["drop", "duplicate", "restart", "rotate"]
ops = st.tuples(st.sampled_from(ACTIONS), st.integers(0, 3), st.integers(0, 60))
Op = tuple[str, int, int]


class GroupRun:
    """Four member devices; the first three also send. Distributions arrive at once, in order."""

    def __init__(self, limits: SenderKeyLimits) -> None:
        self.limits = limits
        self.members = [member("alice", 1), member("alice", 2), member("bob", 3), member("carol", 4)]
        self.senders = self.members[:3]
        for sender in self.senders:
            sender.start()
            self.distribute(sender)
        self.inboxes: list[list[InFlight]] = [[] for _ in self.members]
        self.delivered: list[list[InFlight]] = [[] for _ in self.members]
        self.seen: list[set[str]] = [set() for _ in self.members]
        self.counts = {"ok": 0, "refused": 0, "replayed": 0, "rotated": 0}

    def distribute(self, sender: Member) -> None:
        for other in self.members:
            if other is not sender:
                sender.give_key_to(other, limits=self.limits)

    def apply(self, op: Op) -> None:
        action, index, pick = op
        if action == "send":
            sender = self.senders[index % 3]
            body, message = sender.send(f"{sender.address.user} {pick}")
            assert sender.sender_key is not None
            item = InFlight(index % 3, body, message, sender.sender_key.key_id)
            for position, other in enumerate(self.members):
                if other is not sender:
                    self.inboxes[position].append(item)
        elif action == "deliver" and self.inboxes[index]:
            item = self.inboxes[index].pop(pick % len(self.inboxes[index]))
            self.deliver(index, item, first_time=True)
        elif action == "drop" and self.inboxes[index]:
            self.inboxes[index].pop(pick % len(self.inboxes[index]))
        elif action == "duplicate" and self.delivered[index]:
            self.deliver(index, self.delivered[index][pick % len(self.delivered[index])], first_time=False)
        elif action == "restart":
            me = self.members[index]
            me.receivers = {
                address: SenderKeyReceiver.from_bytes(receiver.to_bytes(), limits=self.limits)
                for address, receiver in me.receivers.items()
            }
            if me.sender_key is not None:
                me.sender_key = SenderKey.from_bytes(me.sender_key.to_bytes())
        elif action == "rotate":
            sender = self.senders[index % 3]
            assert sender.sender_key is not None
            sender.sender_key = sender.sender_key.rotate()
            self.distribute(sender)
            self.counts["rotated"] += 1

    def deliver(self, index: int, item: InFlight, *, first_time: bool) -> None:
        me, sender = self.members[index], self.senders[item.sender]
        receiver = me.receivers[sender.address]
        held = item.key_id in receiver.key_ids
        before = receiver.to_bytes()
        try:
            received = me.receive(item.body, sender)
        except errors.CryptoError as error:
            assert receiver.to_bytes() == before, "a failed delivery changed the receiver"
            if not held:
                assert error.code == "unknown-sender-key"
            elif not first_time:
                assert error.code == "replayed-message"
            else:
                assert self.limits != DEFAULT_SENDER_KEY_LIMITS, f"first delivery failed: {error.code}"
                assert error.code in {"too-many-skipped", "replayed-message"}
            self.counts["replayed" if not first_time else "refused"] += 1
            CODES.add(error.code)
            return
        assert first_time and held, "a message decrypted twice, or with a key not held"
        assert received.payload == item.payload, "a message decrypted to something else"
        assert item.payload.client_message_id not in self.seen[index]
        self.seen[index].add(item.payload.client_message_id)
        self.delivered[index].append(item)
        self.counts["ok"] += 1


TOTALS = {"runs": 0, "ok": 0, "refused": 0, "replayed": 0, "rotated": 0}
CODES: set[str] = set()


@settings(FAST, max_examples=500)
@given(steps=st.lists(ops, min_size=10, max_size=45), tight=st.booleans())
def test_random_groups_decrypt_each_message_at_most_once_and_never_wrongly(
    steps: list[Op], tight: bool
) -> None:
    run = GroupRun(TIGHT if tight else DEFAULT_SENDER_KEY_LIMITS)
    for step in steps:
        run.apply(step)
    for index in range(len(run.members)):  # deliver what is left, newest first
        while run.inboxes[index]:
            run.apply(("deliver", index, len(run.inboxes[index]) - 1))
    TOTALS["runs"] += 1
    for key, value in run.counts.items():
        TOTALS[key] += value


def test_random_groups_exercised_every_outcome() -> None:
    """Runs after the property above (pytest keeps file order): the generator reached every branch."""
    if TOTALS["runs"] == 0:
        pytest.skip("run together with the property test")
    assert TOTALS["ok"] > 5000 and TOTALS["refused"] > 0 and TOTALS["replayed"] > 0
    assert TOTALS["rotated"] > 50
    assert sorted(CODES) == ["replayed-message", "too-many-skipped", "unknown-sender-key"]


# --- removal: after rotation, nothing the removed member holds or derives opens a message ------


@settings(FAST, max_examples=10)
@given(before=st.lists(st.integers(0, 2), min_size=3, max_size=12), after=st.integers(1, 4))
def test_a_removed_member_reads_nothing_sent_after_the_rotation(before: list[int], after: int) -> None:
    alice, alice_phone, bob, mallory = team(4)
    senders = [alice, alice_phone, bob]
    for position, index in enumerate(before):  # Mallory reads some, misses some (skipped keys)
        body, _ = senders[index].send()
        if position % 3:
            mallory.receive(body, senders[index])
    # control: without a rotation, Mallory's keys do open the next message
    assert alice.sender_key is not None
    control = SenderKey.from_bytes(alice.sender_key.to_bytes())
    control_body = control.encrypt(alice.payload(), alice.identity)
    mallory_chains = [chain for receiver in mallory.receivers.values() for chain in receiver._core.chains]
    assert opens(derivable_message_keys(mallory_chains, 20), control_body)
    # removal: every remaining sender rotates and distributes to the remaining devices only
    remaining = [alice, alice_phone, bob]
    for sender in remaining:
        assert sender.sender_key is not None
        sender.sender_key = sender.sender_key.rotate()
        for other in remaining:
            if other is not sender:
                sender.give_key_to(other)
        del sender.receivers[mallory.address]
    assert mallory.sender_key is not None
    own = SenderKeyReceiver.create(mallory.sender_key.group_id, mallory.address, mallory.identity.public)
    own.install(mallory.sender_key.distribution().encode())
    held = mallory_chains + own._core.chains
    # Beyond max_skip, every key Mallory's states could be made to yield; tried as AEAD keys on the
    # first steps, compared with the real message key on all of them.
    derivable = set(derivable_message_keys(held, 1100))
    tried = derivable_message_keys(held, 30)
    for sender in remaining:
        for _ in range(after):
            assert sender.sender_key is not None
            message_key = primitives.kdf_ck(sender.sender_key._core.chain_key)[1]
            body, _ = sender.send("after removal")
            with pytest.raises(errors.UnknownSenderKey):
                mallory.receive(body, sender)
            assert message_key not in derivable
            assert not opens(tried, body)
            for other in remaining:
                if other is not sender:
                    assert other.receive(body, sender).payload.text == "after removal"
        assert sender.sender_key is not None
        assert sender.sender_key._core.chain_key not in derivable


# --- join: a device installed at iteration N reads nothing before N ------------------------------


@settings(FAST, max_examples=40)
@given(sent_before=st.integers(0, 12), sent_after=st.integers(1, 4), rotate_on_join=st.booleans())
def test_a_member_who_joins_later_reads_nothing_sent_before(
    sent_before: int, sent_after: int, rotate_on_join: bool
) -> None:
    alice, bob = team(2)
    earlier = [alice.send(f"before {index}")[0] for index in range(sent_before)]
    assert alice.sender_key is not None
    if rotate_on_join:
        alice.sender_key = alice.sender_key.rotate()
        alice.give_key_to(bob)
    newcomer = member("dan", 7)
    alice.give_key_to(newcomer)
    installed = newcomer.receivers[alice.address]._core.chains[-1]
    assert installed.iteration == (0 if rotate_on_join else sent_before)
    keys = derivable_message_keys(newcomer.receivers[alice.address]._core.chains, 50)
    for body in earlier:
        with pytest.raises(errors.ReplayedMessage if not rotate_on_join else errors.UnknownSenderKey):
            newcomer.receive(body, alice)
        assert not opens(keys, body)
    for index in range(sent_after):
        body, _ = alice.send(f"after {index}")
        assert newcomer.receive(body, alice).payload.text == f"after {index}"
        assert bob.receive(body, alice).payload.text == f"after {index}"


# --- forward secrecy on the state object -------------------------------------------------------


@settings(FAST, max_examples=60)
@given(order=st.permutations(range(6)), received=st.integers(1, 6))
def test_no_key_in_the_state_opens_an_already_decrypted_message(order: list[int], received: int) -> None:
    alice, bob = team(2)
    bodies = [alice.send(f"n{index}")[0] for index in range(6)]
    done = order[:received]
    for index in done:
        bob.receive(bodies[index], alice)
    restored = SenderKeyReceiver.from_bytes(bob.receivers[alice.address].to_bytes())
    for chains in (bob.receivers[alice.address]._core.chains, restored._core.chains):
        keys = derivable_message_keys(chains, 10)
        for index, body in enumerate(bodies):
            assert opens(keys, body) == (index not in done), index
    assert alice.sender_key is not None
    sender_chain = alice.sender_key._core.chain_key
    assert not any(opens([sender_chain, primitives.kdf_ck(sender_chain)[1]], body) for body in bodies)


# --- bit flips ---------------------------------------------------------------------------------


@settings(FAST, max_examples=300)
@given(text=st.text(max_size=300), position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_bit_flip_is_rejected(text: str, position: int, bit: int) -> None:
    alice, bob = team(2)
    alice.send("advance the chain")
    body, _ = alice.send(text)
    tampered = bytearray(body)
    tampered[position % len(body)] ^= 1 << bit
    receiver = bob.receivers[alice.address]
    before = receiver.to_bytes()
    with pytest.raises(errors.CryptoError) as caught:
        bob.receive(bytes(tampered), alice)
    assert caught.value.code in {"unsupported-format", "unknown-sender-key", "decryption-failed"}
    assert receiver.to_bytes() == before
    assert bob.receive(body, alice).payload.text == text
    assert parse_group_body(body).iteration == 1


# --- stored state ------------------------------------------------------------------------------


def _receiver_state() -> bytes:
    alice, bob = team(2)
    bodies = [alice.send()[0] for _ in range(5)]
    bob.receive(bodies[3], alice)
    assert alice.sender_key is not None
    alice.sender_key = alice.sender_key.rotate()
    alice.give_key_to(bob)
    return bob.receivers[alice.address].to_bytes()


RECEIVER_STATE = _receiver_state()
SENDER_STATE = team(1)[0].sender_key.to_bytes()  # type: ignore[union-attr]


@settings(FAST, max_examples=300)
@given(position=st.integers(min_value=0), value=st.integers(0, 255), cut=st.booleans(), sender=st.booleans())
def test_damaged_state_is_refused_or_still_valid(position: int, value: int, cut: bool, sender: bool) -> None:
    data = bytearray(SENDER_STATE if sender else RECEIVER_STATE)
    if cut:
        del data[position % len(data) :]
    else:
        data[position % len(data)] = value
    try:
        state: SenderKey | SenderKeyReceiver = (
            SenderKey.from_bytes(bytes(data)) if sender else SenderKeyReceiver.from_bytes(bytes(data))
        )
    except errors.GroupStateCorrupt:
        return
    again = type(state).from_bytes(state.to_bytes())
    assert again.to_bytes() == state.to_bytes()
