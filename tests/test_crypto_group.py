"""Sender keys: order, replay, bounds, rotation, tampering, persistence (docs/protocol-group.md §3.17)."""

from __future__ import annotations

import base64

import pytest

from lien.crypto import errors, primitives
from lien.crypto.group import (
    DISTRIBUTION_CONTENT_TYPE,
    SenderKey,
    SenderKeyReceiver,
    _create,
    accept_distribution,
    is_distribution,
)
from lien.crypto.group_chain import END_OF_CHAIN, SenderKeyLimits, SenderSigningKey
from lien.crypto.group_wire import (
    MAX_GROUP_BODY_BYTES,
    SenderKeyDistribution,
    group_body_key_id,
    parse_group_body,
)
from lien.crypto.keys import IdentityKeyPair
from lien.crypto.payload import (
    Conversation,
    DeviceAddress,
    GroupPayload,
    Payload,
    SignedGroupPayload,
    encode_plaintext,
    sign_group_payload,
    sign_payload,
    verify_group_payload,
    verify_pairwise_payload,
    verify_payload,
)

from .crypto_group_helpers import GROUP, encrypt_raw, member, team
from .crypto_helpers import encrypt_raw as pairwise_encrypt_raw
from .crypto_helpers import open_pair, receive

# --- the basic exchange ------------------------------------------------------------------


def test_one_body_opens_on_every_member_device_and_carries_a_proof() -> None:
    alice, alice_phone, bob = team(3)
    body, sent = alice.send("K+ 6,8 mmol/L")
    for reader in (alice_phone, bob):
        received = reader.receive(body, alice)
        assert received.payload == sent
        assert received.signer == alice.identity.public.signing_key
        assert verify_payload(received.encoded, received.signature, received.signer) == sent
        assert verify_group_payload(received.encoded, received.signature, received.signer) == sent
    assert parse_group_body(body).iteration == 0 and body[0] == 0x03


def test_out_of_order_then_replay_is_refused() -> None:
    alice, bob = team(2)
    bodies = [alice.send(f"n{index}")[0] for index in range(5)]
    for index in (3, 0, 4, 1, 2):
        assert bob.receive(bodies[index], alice).payload.text == f"n{index}"
    for body in bodies:
        with pytest.raises(errors.ReplayedMessage):
            bob.receive(body, alice)


def test_a_member_installed_later_reads_only_what_follows() -> None:
    alice, bob = team(2)
    early = [alice.send(f"early {index}")[0] for index in range(3)]
    carol = member("carol", 9)
    alice.give_key_to(carol)
    late, _ = alice.send("late")
    for body in early:
        with pytest.raises(errors.ReplayedMessage):
            carol.receive(body, alice)
    assert carol.receive(late, alice).payload.text == "late"
    assert [bob.receive(body, alice).payload.text for body in early] == [f"early {i}" for i in range(3)]


def test_unknown_key_id_and_no_key_yet() -> None:
    alice, bob = team(2)
    stranger = SenderKey.create(GROUP, alice.address, alice.identity.public)
    body = stranger.encrypt(alice.payload(), alice.identity)
    with pytest.raises(errors.UnknownSenderKey) as caught:
        bob.receive(body, alice)
    assert caught.value.code == "unknown-sender-key"
    assert isinstance(caught.value, errors.DecryptionFailed)
    assert group_body_key_id(body) == stranger.key_id
    empty = SenderKeyReceiver.create(GROUP, alice.address, alice.identity.public)
    with pytest.raises(errors.UnknownSenderKey):
        empty.decrypt(body, delivered_by=alice.address, conversation=Conversation.group(GROUP))


# --- rotation ----------------------------------------------------------------------------


def test_rotation_keeps_the_previous_key_for_in_flight_messages_only() -> None:
    alice, bob = team(2)
    assert alice.sender_key is not None
    in_flight = [alice.send(f"old {index}")[0] for index in range(2)]
    first_key = alice.sender_key.key_id
    alice.sender_key = alice.sender_key.rotate()
    assert alice.sender_key.key_id != first_key and alice.sender_key.iteration == 0
    alice.give_key_to(bob)
    new, _ = alice.send("new")
    assert bob.receivers[alice.address].key_ids == (first_key, alice.sender_key.key_id)
    assert bob.receive(new, alice).payload.text == "new"
    assert bob.receive(in_flight[1], alice).payload.text == "old 1"
    alice.sender_key = alice.sender_key.rotate()
    alice.give_key_to(bob)  # a third key: the first is gone
    assert first_key not in bob.receivers[alice.address].key_ids
    with pytest.raises(errors.UnknownSenderKey):
        bob.receive(in_flight[0], alice)
    bob.receivers[alice.address].forget_previous()
    assert bob.receivers[alice.address].key_ids == (alice.sender_key.key_id,)


def test_rotation_redraws_a_key_id_equal_to_the_old_one() -> None:
    draws = iter([b"\x00\x00\x00\x07", b"\x00\x00\x00\x07", b"\x00\x00\x00\x08", b"c" * 32, b"s" * 32])
    alice = member("alice", 1)
    key = _create(GROUP, alice.address, alice.identity.public, lambda size: next(draws), avoid_key_id=7)
    assert key.key_id == 8


def test_installing_the_same_distribution_again_does_not_rewind_the_chain() -> None:
    alice, bob = team(2)
    assert alice.sender_key is not None
    stale = alice.sender_key.distribution().encode()
    body, _ = alice.send()
    bob.receive(body, alice)
    receiver = bob.receivers[alice.address]
    assert receiver.install(stale) is False
    with pytest.raises(errors.ReplayedMessage):
        bob.receive(body, alice)


def test_a_key_id_reused_with_another_signing_key_is_refused() -> None:
    alice, bob = team(2)
    assert alice.sender_key is not None
    genuine = alice.sender_key.distribution()
    other = SenderSigningKey.from_seed(b"x" * 32)
    forged = SenderKeyDistribution(GROUP, genuine.key_id, 0, b"k" * 32, other.public_key)
    receiver = bob.receivers[alice.address]
    before = receiver.to_bytes()
    with pytest.raises(errors.InvalidDistribution):
        receiver.install(forged.encode())
    with pytest.raises(errors.InvalidDistribution):
        receiver.install(SenderKeyDistribution("another-group", 1, 0, b"k" * 32, other.public_key).encode())
    assert receiver.to_bytes() == before


# --- distributions over pairwise sessions --------------------------------------------------


def test_accept_distribution_from_a_pairwise_message() -> None:
    alice_device, bob_device, alice_session, bob_session = open_pair()
    alice = member("alice", 1)
    alice.identity = alice_device.identity
    key = alice.start()
    carrier = key.distribution_payload(bob_device.address, client_message_id="skd-1", sent_at_ms=1)
    assert is_distribution(carrier) and carrier.content_type == DISTRIBUTION_CONTENT_TYPE
    body = alice_session.encrypt(carrier, alice_device.identity)
    # a distribution travels in the group's conversation: the pairwise session checks that too
    with pytest.raises(errors.ConversationMismatch):
        receive(bob_session, body, alice_device, bob_device)
    received = bob_session.decrypt(
        body, delivered_by=alice_device.address, conversation=Conversation.group(GROUP)
    )
    receiver = accept_distribution(received, sender_identity=bob_session.peer_identity, receiver=None)
    assert receiver.sender == alice.address and receiver.key_ids == (key.key_id,)
    group_body, _ = alice.send("hello")
    opened = receiver.decrypt(group_body, delivered_by=alice.address, conversation=Conversation.group(GROUP))
    assert opened.payload.text == "hello"
    # the same distribution again: the receiver passed in is not modified, the result is equivalent
    again = accept_distribution(received, sender_identity=bob_session.peer_identity, receiver=receiver)
    assert again is not receiver and again.key_ids == receiver.key_ids
    with pytest.raises(errors.IdentityMismatch):
        accept_distribution(received, sender_identity=IdentityKeyPair.generate().public, receiver=None)


@pytest.mark.parametrize(
    ("text", "conversation"),
    [
        ("not base64!", GROUP),
        (base64.b64encode(b"\x01\x00").decode(), GROUP),
        ("valid", "other-group"),
    ],
)
def test_accept_distribution_refuses_bad_carriers(text: str, conversation: str) -> None:
    alice = member("alice", 1)
    key = alice.start()
    if text == "valid":
        text = base64.b64encode(key.distribution().encode()).decode()
    carrier = Payload(
        alice.address,
        DeviceAddress("bob", 2),
        Conversation.group(conversation),
        "skd",
        1,
        text,
        DISTRIBUTION_CONTENT_TYPE,
    )
    signed = sign_payload(alice.identity, carrier)
    with pytest.raises(errors.InvalidDistribution):
        accept_distribution(signed, sender_identity=alice.identity.public, receiver=None)
    plain = sign_payload(
        alice.identity,
        Payload(alice.address, DeviceAddress("bob", 2), Conversation.user("bob"), "m", 1, "hi"),
    )
    with pytest.raises(ValueError):
        accept_distribution(plain, sender_identity=alice.identity.public, receiver=None)


@pytest.mark.parametrize(
    ("reason", "mutate"),
    [
        ("empty", lambda data: b""),
        ("wrong version", lambda data: b"\x03" + data[1:]),
        ("trailing byte", lambda data: data + b"\x00"),
        ("truncated", lambda data: data[:-1]),
        ("empty group id", lambda data: data[:1] + b"\x00" + data[2 + data[1] :]),
        ("group id not ASCII", lambda data: data[:2] + b"\xc3" + data[3:]),
        ("group id with a space", lambda data: data[:2] + b" " + data[3:]),
        ("small-order signing key", lambda data: data[:-32] + bytes(32)),
        ("non-canonical signing key", lambda data: data[:-32] + b"\xff" * 31 + b"\x7f"),
    ],
)
def test_malformed_distributions(reason: str, mutate: object) -> None:
    alice = member("alice", 1)
    data = alice.start().distribution().encode()
    assert callable(mutate)
    with pytest.raises(errors.InvalidDistribution):
        SenderKeyDistribution.decode(mutate(data))


# --- what the receiver checks ------------------------------------------------------------


def test_a_member_with_the_chain_key_cannot_forge_the_sender() -> None:
    alice, bob, mallory = team(3)
    assert alice.sender_key is not None
    # Mallory holds Alice's chain (as a member) but not Alice's sender signing key
    forger = SenderKey.from_bytes(alice.sender_key.to_bytes())
    plaintext = encode_plaintext(sign_group_payload(mallory.identity, mallory.payload("forged")))
    body = encrypt_raw(forger, plaintext, signing_key=SenderSigningKey.from_seed(b"m" * 32))
    before = bob.receivers[alice.address].to_bytes()
    with pytest.raises(errors.DecryptionFailed) as caught:
        bob.receive(body, alice)
    assert caught.value.code == "decryption-failed"
    assert bob.receivers[alice.address].to_bytes() == before


@pytest.mark.parametrize(
    "case", ["other identity", "claims another sender", "other group", "pairwise payload"]
)
def test_the_inner_payload_must_be_the_sender_devices_own(case: str) -> None:
    alice, bob = team(2)
    assert alice.sender_key is not None
    if case == "other identity":
        plaintext = encode_plaintext(sign_group_payload(IdentityKeyPair.generate(), alice.payload()))
        expected = "bad-signature"
    elif case == "claims another sender":
        plaintext = encode_plaintext(sign_group_payload(alice.identity, bob.payload()))
        expected = "sender-mismatch"
    elif case == "other group":
        plaintext = encode_plaintext(sign_group_payload(alice.identity, alice.payload(group_id="other")))
        expected = "conversation-mismatch"
    else:
        pairwise = Payload(alice.address, bob.address, Conversation.group(GROUP), "m", 1, "hi")
        plaintext = encode_plaintext(sign_payload(alice.identity, pairwise))
        expected = "bad-signature"  # the pairwise signature domain does not verify as a group payload
    body = encrypt_raw(alice.sender_key, plaintext)
    before = bob.receivers[alice.address].to_bytes()
    with pytest.raises(errors.CryptoError) as caught:
        bob.receive(body, alice)
    assert caught.value.code == expected
    assert bob.receivers[alice.address].to_bytes() == before


def test_delivery_by_another_device_or_in_another_group_is_refused_before_decrypting() -> None:
    alice, alice_phone, bob = team(3)
    body, _ = alice.send()
    receiver = bob.receivers[alice.address]
    with pytest.raises(errors.SenderMismatch):
        receiver.decrypt(body, delivered_by=alice_phone.address, conversation=Conversation.group(GROUP))
    with pytest.raises(errors.ConversationMismatch):
        receiver.decrypt(body, delivered_by=alice.address, conversation=Conversation.group("other"))
    with pytest.raises(errors.ConversationMismatch):
        receiver.decrypt(body, delivered_by=alice.address, conversation=Conversation.user("alice"))
    with pytest.raises(errors.DecryptionFailed):  # right key_id, wrong chain: the signature fails
        bob.receivers[alice_phone.address].decrypt(
            body, delivered_by=alice_phone.address, conversation=Conversation.group(GROUP)
        )
    assert bob.receive(body, alice)


def test_a_body_made_for_another_group_does_not_open() -> None:
    alice, bob = team(2)
    assert alice.sender_key is not None
    plaintext = encode_plaintext(sign_group_payload(alice.identity, alice.payload()))
    body = encrypt_raw(alice.sender_key, plaintext, group_id="other-group")
    with pytest.raises(errors.DecryptionFailed):
        bob.receive(body, alice)


def test_group_and_pairwise_payloads_cannot_be_confused() -> None:
    identity = IdentityKeyPair.generate()
    group = sign_group_payload(
        identity, GroupPayload(DeviceAddress("alice", 1), Conversation.group(GROUP), "m", 1, "x")
    )
    assert group.encoded[0] == 3
    with pytest.raises(errors.MalformedPayload):
        verify_pairwise_payload(
            group.encoded, identity.sign(b"lien-payload-v2\x00" + group.encoded), identity.public.signing_key
        )
    with pytest.raises(errors.BadSignature):
        verify_pairwise_payload(group.encoded, group.signature, identity.public.signing_key)
    pairwise = sign_payload(
        identity,
        Payload(DeviceAddress("alice", 1), DeviceAddress("bob", 2), Conversation.group(GROUP), "m", 1, "x"),
    )
    with pytest.raises(errors.BadSignature):
        verify_group_payload(pairwise.encoded, pairwise.signature, identity.public.signing_key)
    with pytest.raises(ValueError):
        GroupPayload(DeviceAddress("alice", 1), Conversation.user("bob"), "m", 1, "x")
    # a group payload inside a pairwise session is refused too, whichever domain signed it
    alice, bob, alice_session, bob_session = open_pair()
    inner = sign_group_payload(
        alice.identity, GroupPayload(alice.address, Conversation.group(GROUP), "m", 1, "x")
    )
    body = pairwise_encrypt_raw(alice_session, encode_plaintext(inner))
    with pytest.raises(errors.BadSignature):
        receive(bob_session, body, alice, bob)
    relabelled = SignedGroupPayload(
        inner.payload,
        inner.encoded,
        alice.identity.sign(b"lien-payload-v2\x00" + inner.encoded),
        inner.signer,
    )
    body = pairwise_encrypt_raw(alice_session, encode_plaintext(relabelled))
    with pytest.raises(errors.MalformedPayload):
        receive(bob_session, body, alice, bob)


# --- bounds ------------------------------------------------------------------------------


def test_max_skip_and_skipped_key_cap() -> None:
    limits = SenderKeyLimits(max_skip=5, max_skipped_keys=6)
    alice, bob = member("alice", 1), member("bob", 2)
    alice.start()
    alice.give_key_to(bob, limits=limits)
    bodies = [alice.send(f"n{index}")[0] for index in range(20)]
    with pytest.raises(errors.TooManySkipped):
        bob.receive(bodies[6], alice)  # would skip 0..5: six keys
    assert bob.receive(bodies[5], alice)  # skips 0..4
    assert bob.receive(bodies[10], alice)  # skips 6..9: 9 stored, the oldest 3 dropped
    chain = bob.receivers[alice.address]._core.chains[-1]
    assert sorted(chain.skipped) == [3, 4, 6, 7, 8, 9]
    for index in (0, 1, 2):
        with pytest.raises(errors.ReplayedMessage):
            bob.receive(bodies[index], alice)
    for index in (3, 4, 6, 7, 8, 9):
        assert bob.receive(bodies[index], alice)
    restored = SenderKeyReceiver.from_bytes(bob.receivers[alice.address].to_bytes(), limits=limits)
    assert restored.to_bytes() == bob.receivers[alice.address].to_bytes()


def test_default_bounds_are_1000_and_2000() -> None:
    limits = SenderKeyLimits()
    assert (limits.max_skip, limits.max_skipped_keys) == (1000, 2000)
    with pytest.raises(ValueError):
        SenderKeyLimits(max_skip=10, max_skipped_keys=5)
    with pytest.raises(ValueError):
        SenderKeyLimits(max_skip=100_001, max_skipped_keys=100_001)


def test_a_restored_receiver_trims_to_tighter_limits() -> None:
    alice, bob = team(2)
    bodies = [alice.send()[0] for _ in range(30)]
    bob.receive(bodies[29], alice)
    tight = SenderKeyLimits(max_skip=3, max_skipped_keys=4)
    restored = SenderKeyReceiver.from_bytes(bob.receivers[alice.address].to_bytes(), limits=tight)
    assert sorted(restored._core.chains[-1].skipped) == [25, 26, 27, 28]


def test_a_sender_key_is_used_up_after_2_to_the_32_messages() -> None:
    alice = member("alice", 1)
    key = alice.start()
    key._core.iteration = END_OF_CHAIN - 1
    bob = member("bob", 2)
    alice.give_key_to(bob)
    last, _ = alice.send("last")
    assert parse_group_body(last).iteration == 2**32 - 1
    assert bob.receive(last, alice).payload.text == "last"
    before = key.to_bytes()
    with pytest.raises(errors.SessionExhausted):
        alice.send("one too many")
    with pytest.raises(errors.SessionExhausted):
        key.distribution()
    assert key.to_bytes() == before
    assert SenderKey.from_bytes(before).iteration == END_OF_CHAIN


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "malformed-message"),
        (b"\x02" + bytes(100), "unsupported-format"),
        (b"\x01" + bytes(100), "unsupported-format"),
        (b"\x03" + bytes(87), "malformed-message"),
        (b"\x03" + bytes(MAX_GROUP_BODY_BYTES), "malformed-message"),
    ],
)
def test_unparseable_bodies(body: bytes, code: str) -> None:
    with pytest.raises(errors.CryptoError) as caught:
        parse_group_body(body)
    assert caught.value.code == code


def test_shortest_body_parses() -> None:
    parsed = parse_group_body(b"\x03" + bytes(88))
    assert (len(parsed.ciphertext), len(parsed.signature)) == (16, 64)


def test_largest_text_fits_in_a_body() -> None:
    alice, bob = team(2)
    body, _ = alice.send("é" * 30_000)  # 60,000 bytes of UTF-8: the payload maximum
    assert len(body) <= MAX_GROUP_BODY_BYTES
    assert bob.receive(body, alice).payload.text == "é" * 30_000


# --- state, repr and misuse ----------------------------------------------------------------


def test_state_round_trips_and_hides_secrets() -> None:
    alice, bob = team(2)
    assert alice.sender_key is not None
    key = alice.sender_key
    body, _ = alice.send()
    restored = SenderKey.from_bytes(key.to_bytes())
    assert restored.to_bytes() == key.to_bytes() and restored.key_id == key.key_id
    receiver = bob.receivers[alice.address]
    for text in (
        repr(key),
        repr(receiver),
        repr(key.distribution()),
        repr(receiver._core),
        repr(parse_group_body(body)),
    ):
        assert key._core.chain_key.hex()[:16] not in text
        assert key._core.signing_key.seed_bytes().hex()[:16] not in text
    with pytest.raises(errors.GroupStateCorrupt):
        SenderKey.from_bytes(receiver.to_bytes())  # another kind of state
    with pytest.raises(errors.GroupStateCorrupt):
        SenderKeyReceiver.from_bytes(key.to_bytes())
    assert isinstance(errors.GroupStateCorrupt(), errors.KeystoreCorrupt)


def test_misuse_is_a_programming_error() -> None:
    alice, bob = team(2)
    assert alice.sender_key is not None
    with pytest.raises(ValueError):
        alice.sender_key.encrypt(bob.payload(), alice.identity)  # not this device's payload
    with pytest.raises(ValueError):
        alice.sender_key.encrypt(alice.payload(group_id="other"), alice.identity)
    with pytest.raises(ValueError):
        alice.sender_key.encrypt(alice.payload(), bob.identity)
    with pytest.raises(ValueError):
        SenderKey.create("not a group id", alice.address, alice.identity.public)
    with pytest.raises(ValueError):
        primitives.message_aead_key(b"k" * 32, info=b"another info")
