"""Our X3DH and Double Ratchet agree with Syndace's ``x3dh`` and ``doubleratchet`` packages.

docs/protocol-crypto.md §3.12 explains why Lien does not use those packages
at run time. These tests configure them with Lien's primitives and show:

* X3DH: the same shared secret ``SK`` from the same keys, on both the
  active and the passive side (``x3dh`` uses one key for DH and XEdDSA
  signatures, so its signed-prekey signature is made with XEdDSA here; the
  associated data differs by design, §3.5.4);
* Double Ratchet: the same headers and the same ciphertexts, byte for byte,
  for a conversation with out-of-order delivery and DH ratchet steps, and
  each implementation decrypts the other's messages.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, ClassVar

import doubleratchet
import pytest
import x3dh
import x3dh.base_state
import xeddsa
from doubleratchet import EncryptedMessage
from doubleratchet import Header as TheirHeader
from doubleratchet.recommended import (
    HashFunction,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)
from x3dh.models import BaseStateModel, IdentityKeyPairModel, SignedPreKeyPairModel
from x3dh.types import IdentityKeyFormat, SecretType

from lien.crypto import primitives
from lien.crypto import x3dh as our_x3dh
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair
from lien.crypto.ratchet import DEFAULT_LIMITS, RatchetState
from lien.crypto.wire import RatchetHeader

RNG = random.Random(20240601)


def key() -> bytes:
    return RNG.randbytes(32)


# --- X3DH -------------------------------------------------------------------------


class TheirX3dh(x3dh.base_state.BaseState):
    @staticmethod
    def _encode_public_key(key_format: Any, pub: bytes) -> bytes:
        return pub


def their_state(identity_private: bytes, spk_private: bytes, one_time: list[bytes]) -> TheirX3dh:
    spk_public = primitives.x25519_public(spk_private)
    model = BaseStateModel(
        identity_key=IdentityKeyPairModel(secret=identity_private, secret_type=SecretType.PRIV),
        signed_pre_key=SignedPreKeyPairModel(
            priv=spk_private,
            sig=xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(identity_private, False), spk_public),
            timestamp=0,
        ),
        old_signed_pre_key=None,
        pre_keys=frozenset(one_time),
    )
    return TheirX3dh.from_model(
        model,
        IdentityKeyFormat.CURVE_25519,
        x3dh.HashFunction.SHA_256,
        primitives.X3DH_INFO,
    )


@pytest.mark.parametrize("with_one_time", [True, False])
async def test_x3dh_shared_secret_matches_x3dh_package(
    with_one_time: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    alice_x, bob_x = alice.secret_bytes()[1], bob.secret_bytes()[1]
    spk = SignedPrekeyPair.generate(3, bob)
    opk = OneTimePrekeyPair.generate(9) if with_one_time else None
    ephemeral = key()

    bundle = our_x3dh.PrekeyBundle(
        bob.public,
        3,
        spk.public_key,
        spk.signature,
        None if opk is None else our_x3dh.OneTimePrekeyPublic(9, opk.public_key),
    )
    ours = our_x3dh.initiate(alice, bundle, ephemeral)

    their_alice = their_state(alice_x, key(), [])
    their_bob = their_state(bob_x, spk.private_bytes(), [] if opk is None else [opk.private_bytes()])
    monkeypatch.setattr(x3dh.base_state.secrets, "token_bytes", lambda size: ephemeral)
    shared, associated, header = await their_alice.get_shared_secret_active(
        their_bob.bundle, require_pre_key=with_one_time
    )
    monkeypatch.undo()
    assert shared == ours.shared_secret
    assert header.ephemeral_key == primitives.x25519_public(ephemeral)
    # their AD is IKx_A || IKx_B; ours binds the Ed25519 keys too (§3.5.4)
    assert associated == alice.public.exchange_key + bob.public.exchange_key
    assert ours.associated_data == (
        alice.public.signing_key
        + alice.public.exchange_key
        + bob.public.signing_key
        + bob.public.exchange_key
    )

    passive, _, _ = await their_bob.get_shared_secret_passive(header, require_pre_key=with_one_time)
    mine = our_x3dh.respond(bob, spk, opk, alice.public, header.ephemeral_key)
    assert passive == mine.shared_secret == shared


# --- Double Ratchet ---------------------------------------------------------------------


class RootKdf(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return primitives.ROOT_KDF_INFO


class ChainKdf(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


CHAIN_CONSTANT = primitives.CHAIN_KEY_CONSTANT + primitives.MESSAGE_KEY_CONSTANT
"""Their KDF chain keeps HMAC(ck, 0x02) as the next chain key and returns HMAC(ck, 0x01)."""


class XChaChaAead(doubleratchet.AEAD):
    @staticmethod
    async def encrypt(plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
        return primitives.aead_encrypt(key, plaintext, associated_data)

    @staticmethod
    async def decrypt(ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        return primitives.aead_decrypt(key, ciphertext, associated_data)


class Draws:
    """The same sequence of ratchet private keys for their implementation as for ours."""

    queue: ClassVar[list[bytes]] = []


class TheirDhRatchet(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
    @staticmethod
    def _generate_priv() -> bytes:
        return Draws.queue.pop(0)


class TheirRatchet(doubleratchet.DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: TheirHeader) -> bytes:
        return (
            associated_data
            + RatchetHeader(
                header.ratchet_pub, header.previous_sending_chain_length, header.sending_chain_length
            ).encode()
        )


THEIR_CONFIG: dict[str, Any] = {
    "diffie_hellman_ratchet_class": TheirDhRatchet,
    "root_chain_kdf": RootKdf,
    "message_chain_kdf": ChainKdf,
    "message_chain_constant": CHAIN_CONSTANT,
    "dos_protection_threshold": DEFAULT_LIMITS.max_skip,
    "max_num_skipped_message_keys": DEFAULT_LIMITS.max_skipped_keys,
    "aead": XChaChaAead,
}


class Ours:
    def __init__(self, state: RatchetState, draws: Iterator[bytes], associated_data: bytes) -> None:
        self.state = state
        self.draws = draws
        self.associated_data = associated_data

    def encrypt(self, plaintext: bytes) -> tuple[RatchetHeader, bytes]:
        header, message_key = self.state.next_sending_key()
        return header, primitives.aead_encrypt(message_key, plaintext, self.associated_data + header.encode())

    def decrypt(self, header: RatchetHeader, ciphertext: bytes) -> bytes:
        message_key = self.state.message_key_for(header, lambda size: next(self.draws), DEFAULT_LIMITS)
        return primitives.aead_decrypt(message_key, ciphertext, self.associated_data + header.encode())


def to_theirs(header: RatchetHeader, ciphertext: bytes) -> EncryptedMessage:
    return EncryptedMessage(
        header=TheirHeader(header.ratchet_key, header.previous_chain_length, header.message_number),
        ciphertext=ciphertext,
    )


def to_ours(message: EncryptedMessage) -> tuple[RatchetHeader, bytes]:
    header = message.header
    ratchet_header = RatchetHeader(
        header.ratchet_pub, header.previous_sending_chain_length, header.sending_chain_length
    )
    return ratchet_header, message.ciphertext


async def test_double_ratchet_matches_doubleratchet_package_byte_for_byte() -> None:
    shared_secret, associated_data, spk_private = key(), key() * 4, key()
    spk_public = primitives.x25519_public(spk_private)
    alice_draws, bob_draws = [key() for _ in range(4)], [key() for _ in range(4)]

    # Our Alice and their Alice, fed the same keys, produce the same first messages.
    our_alice = Ours(
        RatchetState.for_initiator(shared_secret, spk_public, alice_draws[0]),
        iter(alice_draws[1:]),
        associated_data,
    )
    Draws.queue = [alice_draws[0]]
    their_alice, their_first = await TheirRatchet.encrypt_initial_message(
        **THEIR_CONFIG,
        shared_secret=shared_secret,
        recipient_ratchet_pub=spk_public,
        message=b"m0",
        associated_data=associated_data,
    )
    our_first = our_alice.encrypt(b"m0")
    assert to_ours(their_first) == our_first
    sent = [our_first, our_alice.encrypt(b"m1"), our_alice.encrypt(b"m2")]
    for index in (1, 2):
        theirs = await their_alice.encrypt_message(f"m{index}".encode(), associated_data)
        assert to_ours(theirs) == sent[index]

    # Their Bob receives our Alice's messages out of order (m2 first, m1 from the skipped keys).
    Draws.queue = [bob_draws[0]]
    their_bob, plaintext = await TheirRatchet.decrypt_initial_message(
        **THEIR_CONFIG,
        shared_secret=shared_secret,
        own_ratchet_priv=spk_private,
        message=to_theirs(*sent[2]),
        associated_data=associated_data,
    )
    assert plaintext == b"m2"
    assert await their_bob.decrypt_message(to_theirs(*sent[0]), associated_data) == b"m0"

    # Our Bob gets the same messages in the same order, with the same random draws.
    our_bob = Ours(RatchetState.for_responder(shared_secret, spk_private), iter(bob_draws), associated_data)
    assert our_bob.decrypt(*sent[2]) == b"m2"
    assert our_bob.decrypt(*sent[0]) == b"m0"

    # Replies: both Bobs now produce identical bodies; our Alice decrypts theirs, out of order.
    replies = []
    for index in range(3):
        theirs = await their_bob.encrypt_message(f"r{index}".encode(), associated_data)
        ours = our_bob.encrypt(f"r{index}".encode())
        assert to_ours(theirs) == ours
        replies.append(ours)
    assert our_alice.decrypt(*replies[1]) == b"r1"  # DH ratchet step on our Alice
    assert our_alice.decrypt(*replies[0]) == b"r0"
    Draws.queue = [alice_draws[1]]  # the new ratchet key our Alice drew for that step
    assert await their_alice.decrypt_message(to_theirs(*replies[1]), associated_data) == b"r1"
    assert Draws.queue == []

    # Second round: both Alices step again identically; both Bobs take the skipped m1 after PN.
    ours_next = our_alice.encrypt(b"m3")
    theirs_next = await their_alice.encrypt_message(b"m3", associated_data)
    assert to_ours(theirs_next) == ours_next
    assert ours_next[0].previous_chain_length == 3
    assert our_bob.decrypt(*ours_next) == b"m3"
    Draws.queue = [bob_draws[1]]
    assert await their_bob.decrypt_message(theirs_next, associated_data) == b"m3"
    assert Draws.queue == []
    assert our_bob.decrypt(*sent[1]) == b"m1"
    assert await their_bob.decrypt_message(to_theirs(*sent[1]), associated_data) == b"m1"
    after_step = [await their_bob.encrypt_message(b"r3", associated_data), our_bob.encrypt(b"r3")]
    assert to_ours(after_step[0]) == after_step[1]
