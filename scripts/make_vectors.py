"""Write the format-2 test vectors under tests/vectors/ (docs/protocol-crypto.md §3.11).

    python scripts/make_vectors.py            # (re)write the files
    python scripts/make_vectors.py --check    # exit 1 if a file would change

Every key comes from a fixed seed, and every random draw a party makes is
listed in the file, in order, so that another implementation replays the
vectors by injecting those draws as its randomness. Bytes are lowercase
hex; 64-bit integers are decimal strings (JSON numbers lose precision in
JavaScript above 2**53); smaller integers are JSON numbers.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lien.crypto import primitives, x3dh
from lien.crypto.errors import CryptoError
from lien.crypto.group import DISTRIBUTION_CONTENT_TYPE, SenderKeyReceiver
from lien.crypto.group import _create as _create_sender_key
from lien.crypto.group_chain import DEFAULT_SENDER_KEY_LIMITS, MAX_RECEIVED_KEYS
from lien.crypto.group_wire import (
    DISTRIBUTION_VERSION,
    GROUP_AD_DOMAIN,
    GROUP_BODY_SIGNATURE_DOMAIN,
    GROUP_FORMAT_VERSION,
    MAX_GROUP_BODY_BYTES,
    SenderKeyDistribution,
    group_associated_data,
    group_body_signing_input,
    parse_group_body,
)
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair
from lien.crypto.payload import (
    GROUP_PAYLOAD_VERSION,
    GROUP_SIGNATURE_DOMAIN,
    Conversation,
    DeviceAddress,
    GroupPayload,
    Payload,
    encode_plaintext,
    group_signing_input,
    sign_group_payload,
    sign_payload,
    signing_input,
    verify_group_payload,
    verify_payload,
)
from lien.crypto.ratchet import DEFAULT_LIMITS
from lien.crypto.safety import safety_number, user_fingerprint
from lien.crypto.session import Session, _accept, _initiate
from lien.crypto.wire import parse_body

VECTORS_DIR = Path(__file__).resolve().parent.parent / "tests" / "vectors"
FORMAT = 1

Json = dict[str, Any]


def seed(label: str) -> bytes:
    """32 bytes fixed by ``label``: ``SHA-256("lien-vectors/" || label)``."""
    return hashlib.sha256(b"lien-vectors/" + label.encode()).digest()


class Draws:
    """A party's random source for the vectors: ``seed(label/i)`` for i = 0, 1, ..., recorded."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.taken: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        if size != 32:
            raise ValueError("the vectors only draw 32-byte keys")
        value = seed(f"{self.label}/{len(self.taken)}")
        self.taken.append(value)
        return value


def identity(label: str) -> IdentityKeyPair:
    return IdentityKeyPair.from_secret_bytes(seed(f"{label}/signing"), seed(f"{label}/exchange"))


def identity_json(pair: IdentityKeyPair) -> Json:
    signing_seed, exchange_private = pair.secret_bytes()
    return {
        "signing_seed": signing_seed.hex(),
        "exchange_private": exchange_private.hex(),
        "signing_key": pair.public.signing_key.hex(),
        "exchange_key": pair.public.exchange_key.hex(),
    }


def signed_prekey_json(prekey: SignedPrekeyPair) -> Json:
    return {
        "id": prekey.prekey_id,
        "private": prekey.private_bytes().hex(),
        "public": prekey.public_key.hex(),
        "signature": prekey.signature.hex(),
    }


def one_time_prekey_json(prekey: OneTimePrekeyPair) -> Json:
    return {
        "id": prekey.prekey_id,
        "private": prekey.private_bytes().hex(),
        "public": prekey.public_key.hex(),
    }


def address_json(address: DeviceAddress) -> Json:
    return {"user": address.user, "device": str(address.device)}


def payload_json(payload: Payload) -> Json:
    return {
        "sender": address_json(payload.sender),
        "recipient": address_json(payload.recipient),
        "conversation": {"kind": payload.conversation.kind.name.lower(), "id": payload.conversation.id},
        "client_message_id": payload.client_message_id,
        "sent_at_ms": str(payload.sent_at_ms),
        "content_type": payload.content_type,
        "text": payload.text,
    }


def error_code(action: Callable[[], object]) -> str:
    try:
        action()
    except CryptoError as error:
        return error.code
    raise AssertionError("the action was expected to fail")


# --- kdf.json ---------------------------------------------------------------------


RFC5869_CASES = [
    # RFC 5869 appendix A.1 to A.3 (HKDF-SHA-256)
    ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42),
    (bytes(range(0x00, 0x50)).hex(), bytes(range(0x60, 0xB0)).hex(), bytes(range(0xB0, 0x100)).hex(), 82),
    ("0b" * 22, "", "", 42),
]


def kdf_vectors() -> Json:
    hkdf = [
        {
            "ikm": ikm,
            "salt": salt,
            "info": info,
            "length": length,
            "okm": primitives.hkdf_sha256(
                bytes.fromhex(ikm), salt=bytes.fromhex(salt), info=bytes.fromhex(info), length=length
            ).hex(),
        }
        for ikm, salt, info, length in RFC5869_CASES
    ]
    hmac_cases = [
        {
            "key": seed("hmac/key").hex(),
            "message": message.hex(),
            "mac": primitives.hmac_sha256(seed("hmac/key"), message).hex(),
        }
        for message in (b"", b"\x01", b"\x02", b"Lien")
    ]
    kdf_rk = []
    root_key = seed("kdf_rk/root")
    for step in range(3):
        dh_output = seed(f"kdf_rk/dh/{step}")
        new_root, chain = primitives.kdf_rk(root_key, dh_output)
        kdf_rk.append(
            {
                "root_key": root_key.hex(),
                "dh_output": dh_output.hex(),
                "new_root_key": new_root.hex(),
                "chain_key": chain.hex(),
            }
        )
        root_key = new_root
    kdf_ck = []
    chain_key = seed("kdf_ck/chain")
    for _ in range(5):
        next_chain, message_key = primitives.kdf_ck(chain_key)
        kdf_ck.append(
            {
                "chain_key": chain_key.hex(),
                "next_chain_key": next_chain.hex(),
                "message_key": message_key.hex(),
            }
        )
        chain_key = next_chain
    message_keys = []
    aead = []
    for index in range(2):
        message_key = seed(f"message_key/{index}")
        key, nonce = primitives.message_aead_key(message_key)
        message_keys.append(
            {"message_key": message_key.hex(), "aead_key": key.hex(), "aead_nonce": nonce.hex()}
        )
        plaintext = f"plaintext {index} é".encode()
        associated = seed(f"aead/ad/{index}")
        aead.append(
            {
                "message_key": message_key.hex(),
                "plaintext": plaintext.hex(),
                "associated_data": associated.hex(),
                "ciphertext": primitives.aead_encrypt(message_key, plaintext, associated).hex(),
            }
        )
    x25519 = []
    for index in range(2):
        private, peer_private = seed(f"x25519/{index}/a"), seed(f"x25519/{index}/b")
        peer_public = primitives.x25519_public(peer_private)
        x25519.append(
            {
                "private": private.hex(),
                "public": primitives.x25519_public(private).hex(),
                "peer_public": peer_public.hex(),
                "shared": primitives.x25519(private, peer_public).hex(),
            }
        )
    rejected = [
        bytes(32),  # zero point
        (1).to_bytes(32, "little"),  # order 1
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
        bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),  # order 8
        (2**255 - 19 - 1).to_bytes(32, "little"),  # p - 1, order 2
        (2**255 - 19).to_bytes(32, "little"),  # p: non-canonical
        (2**255 - 19 + 1).to_bytes(32, "little"),  # p + 1: non-canonical
        b"\xff" * 32,  # non-canonical
    ]
    for public in rejected:
        error_code(lambda public=public: primitives.x25519(seed("x25519/rejecting"), public))
    return {
        "format": FORMAT,
        "schema": (
            "hkdf_sha256: RFC 5869 with SHA-256 (hex ikm, salt, info; okm of length bytes). "
            "hmac_sha256: key, message -> mac. kdf_rk (§3.4.3): consecutive steps of KDF_RK. "
            "kdf_ck (§3.4.4): consecutive steps of KDF_CK. message_key (§3.4.5): expansion of a message "
            "key into AEAD key and nonce. aead (§3.4.6): XChaCha20-Poly1305-IETF under that key and "
            "nonce, ciphertext includes the 16-byte tag. x25519: private -> public, and the shared "
            "secret with peer_public. x25519_rejected: public keys every DH must refuse (small order, "
            "non-canonical)."
        ),
        "constants": {
            "x3dh_info": primitives.X3DH_INFO.hex(),
            "root_kdf_info": primitives.ROOT_KDF_INFO.hex(),
            "message_key_info": primitives.MESSAGE_KEY_INFO.hex(),
            "chain_key_constant": primitives.CHAIN_KEY_CONSTANT.hex(),
            "message_key_constant": primitives.MESSAGE_KEY_CONSTANT.hex(),
        },
        "hkdf_sha256": hkdf,
        "hmac_sha256": hmac_cases,
        "kdf_rk": kdf_rk,
        "kdf_ck": kdf_ck,
        "message_key": message_keys,
        "aead": aead,
        "x25519": x25519,
        "x25519_rejected": [public.hex() for public in rejected],
    }


# --- x3dh.json --------------------------------------------------------------------


def x3dh_case(name: str, with_one_time: bool) -> Json:
    alice, bob = identity(f"{name}/alice"), identity(f"{name}/bob")
    signed = SignedPrekeyPair.from_private_bytes(17, seed(f"{name}/bob/spk"), bob)
    one_time = OneTimePrekeyPair.from_private_bytes(4242, seed(f"{name}/bob/opk")) if with_one_time else None
    bundle = x3dh.PrekeyBundle(
        bob.public,
        signed.prekey_id,
        signed.public_key,
        signed.signature,
        None if one_time is None else x3dh.OneTimePrekeyPublic(one_time.prekey_id, one_time.public_key),
    )
    ephemeral = seed(f"{name}/alice/ephemeral")
    initiator = x3dh.initiate(alice, bundle, ephemeral)
    responder = x3dh.respond(bob, signed, one_time, alice.public, primitives.x25519_public(ephemeral))
    assert initiator.shared_secret == responder.shared_secret
    assert initiator.associated_data == responder.associated_data
    return {
        "name": name,
        "initiator": identity_json(alice),
        "responder": identity_json(bob),
        "signed_prekey": signed_prekey_json(signed),
        "signed_prekey_message": (
            b"lien-signed-prekey-v1\x00" + signed.prekey_id.to_bytes(4, "big") + signed.public_key
        ).hex(),
        "one_time_prekey": None if one_time is None else one_time_prekey_json(one_time),
        "ephemeral": {"private": ephemeral.hex(), "public": primitives.x25519_public(ephemeral).hex()},
        "dh": [value.hex() for value in initiator.dh_outputs],
        "shared_secret": initiator.shared_secret.hex(),
        "associated_data": initiator.associated_data.hex(),
    }


def x3dh_vectors() -> Json:
    good = x3dh_case("x3dh-with-opk", True)
    signature = bytearray(bytes.fromhex(good["signed_prekey"]["signature"]))
    signature[0] ^= 1
    bob = identity("x3dh-with-opk/bob")
    spk = bytes.fromhex(good["signed_prekey"]["public"])
    code = error_code(lambda: x3dh.PrekeyBundle(bob.public, 17, spk, bytes(signature)))
    return {
        "format": FORMAT,
        "schema": (
            "Each case (§3.5): initiator A and responder B identities (Ed25519 seed and X25519 private "
            "key, public keys), B's signed prekey (id, private, public, Ed25519 signature over "
            "signed_prekey_message) and one-time prekey or null, A's ephemeral key, DH1..DH4 (DH4 "
            "absent without one-time prekey), SK and AD. rejected_bundles: a bundle whose signature is "
            "altered must be refused with 'error'."
        ),
        "cases": [good, x3dh_case("x3dh-without-opk", False)],
        "rejected_bundles": [
            {
                "identity_signing_key": bob.public.signing_key.hex(),
                "signed_prekey_id": 17,
                "signed_prekey": spk.hex(),
                "signature": bytes(signature).hex(),
                "error": code,
            }
        ],
    }


# --- payload.json -----------------------------------------------------------------


CONVERSATION_KIND_OFFSET = 1 + 6 + 8 + 4 + 8
"""Offset of the conversation kind in the first payload below (version, "alice", device, "bob", device)."""


def payload_vectors() -> Json:
    signer = identity("payload/alice")
    payloads = [
        Payload(
            DeviceAddress("alice", 1),
            DeviceAddress("bob", 2),
            Conversation.user("bob"),
            "msg-0001",
            1_700_000_000_000,
            "Kaliémie à 6,8 mmol/L — rappeler le patient.",
        ),
        Payload(
            DeviceAddress("alice", 1),
            DeviceAddress("alice", 3),
            Conversation.user("bob"),
            "msg-0001",
            1_700_000_000_000,
            "",
        ),
        Payload(
            DeviceAddress("dr.martin", 2**62),
            DeviceAddress("infirmier-42", 7),
            Conversation.group("care-team:1234"),
            "c:9f2e.1",
            2**63 - 1,
            "👩‍⚕️ ok",
            "text/markdown",
        ),
    ]
    cases = []
    for payload in payloads:
        signed = sign_payload(signer, payload)
        cases.append(
            {
                "payload": payload_json(payload),
                "encoded": signed.encoded.hex(),
                "signing_input": signing_input(signed.encoded).hex(),
                "signature": signed.signature.hex(),
                "plaintext": encode_plaintext(signed).hex(),
            }
        )
    base = payloads[0].encode()
    malformed = {
        "trailing byte": base + b"\x00",
        "wrong version": b"\x01" + base[1:],
        "truncated": base[:-1],
        "unknown conversation kind": base[:CONVERSATION_KIND_OFFSET]
        + b"\x03"
        + base[CONVERSATION_KIND_OFFSET + 1 :],
        "uppercase username": base.replace(b"alice", b"Alice", 1),
    }
    rejected = []
    for reason, data in malformed.items():
        signature = signer.sign(signing_input(data))
        code = error_code(
            lambda data=data, signature=signature: verify_payload(data, signature, signer.public.signing_key)
        )
        rejected.append(
            {"reason": reason, "encoded": data.hex(), "signature": signature.hex(), "error": code}
        )
    return {
        "format": FORMAT,
        "schema": (
            "signer: the Ed25519 identity (§3.8). cases: payload fields (64-bit integers as decimal strings; "
            "conversation kind 'user' = 1, 'group' = 2) -> encoded (§3.8.1), signing_input and its Ed25519 "
            "signature (§3.8.2), and the padded plaintext that is encrypted (§3.8.3). rejected: validly "
            "signed bytes that are not canonical payloads; verify_payload must refuse them with 'error'."
        ),
        "signer": identity_json(signer),
        "signature_domain": b"lien-payload-v2\x00".hex(),
        "cases": cases,
        "rejected": rejected,
    }


# --- safety.json ------------------------------------------------------------------


def safety_vectors() -> Json:
    alice = [identity(f"safety/alice/{index}").public for index in range(2)]
    bob = [identity("safety/bob/0").public]
    carol = [identity(f"safety/carol/{index}").public for index in range(3)]

    def user(name: str, devices: list[PublicIdentity]) -> Json:
        return {
            "username": name,
            "devices": [
                {"signing_key": d.signing_key.hex(), "exchange_key": d.exchange_key.hex()} for d in devices
            ],
            "fingerprint": user_fingerprint(name, devices),
        }

    return {
        "format": FORMAT,
        "schema": (
            "users: username, device identity keys (in no particular order) and the 30-digit fingerprint "
            "(§3.10). pairs: the 60-digit safety number of two of those users (same either way round)."
        ),
        "users": [user("alice", alice), user("bob", bob), user("carol", carol)],
        "pairs": [
            {"users": ["alice", "bob"], "safety_number": safety_number("alice", alice, "bob", bob).digits},
            {
                "users": ["carol", "alice"],
                "safety_number": safety_number("carol", carol, "alice", alice).digits,
            },
        ],
    }


# --- session.json -----------------------------------------------------------------


class Party:
    def __init__(self, name: str, address: DeviceAddress) -> None:
        self.name = name
        self.address = address
        self.identity = identity(f"session/{name}")
        self.draws = Draws(f"session/{name}/random")
        self.session: Session | None = None


def body_json(body: bytes) -> Json:
    parsed = parse_body(body)
    x3dh_json = None
    if parsed.x3dh is not None:
        x3dh_json = {
            "sender_signing_key": parsed.x3dh.sender.signing_key.hex(),
            "sender_exchange_key": parsed.x3dh.sender.exchange_key.hex(),
            "ephemeral_key": parsed.x3dh.ephemeral_key.hex(),
            "signed_prekey_id": parsed.x3dh.signed_prekey_id,
            "one_time_prekey_id": parsed.x3dh.one_time_prekey_id,
        }
    return {
        "type": "prekey" if parsed.x3dh is not None else "ratchet",
        "x3dh": x3dh_json,
        "header": {
            "ratchet_key": parsed.header.ratchet_key.hex(),
            "previous_chain_length": parsed.header.previous_chain_length,
            "message_number": parsed.header.message_number,
        },
        "prefix": parsed.prefix.hex(),
        "ciphertext": parsed.ciphertext.hex(),
    }


def session_vectors() -> Json:
    alice = Party("alice", DeviceAddress("alice", 11))
    bob = Party("bob", DeviceAddress("bob", 22))
    signed = SignedPrekeyPair.from_private_bytes(5, seed("session/bob/spk"), bob.identity)
    one_time = OneTimePrekeyPair.from_private_bytes(77, seed("session/bob/opk"))
    bundle = x3dh.PrekeyBundle(
        bob.identity.public,
        signed.prekey_id,
        signed.public_key,
        signed.signature,
        x3dh.OneTimePrekeyPublic(one_time.prekey_id, one_time.public_key),
    )
    bodies: dict[str, bytes] = {}
    steps: list[Json] = []
    clock = [1_700_000_000_000]

    alice.session = _initiate(alice.identity, alice.address, bob.address, bundle, DEFAULT_LIMITS, alice.draws)

    def send(sender: Party, recipient: Party, label: str, text: str) -> None:
        assert sender.session is not None
        clock[0] += 1000
        conversation = Conversation.user(recipient.address.user)
        payload = Payload(sender.address, recipient.address, conversation, label, clock[0], text)
        signed_payload = sign_payload(sender.identity, payload)
        body = sender.session.encrypt(payload, sender.identity)
        bodies[label] = body
        steps.append(
            {
                "op": "encrypt",
                "by": sender.name,
                "label": label,
                "payload": payload_json(payload),
                "payload_bytes": signed_payload.encoded.hex(),
                "signature": signed_payload.signature.hex(),
                "plaintext": encode_plaintext(signed_payload).hex(),
                "body": body.hex(),
                "parsed": body_json(body),
            }
        )

    def receive(recipient: Party, sender: Party, label: str, *, body: bytes | None = None) -> None:
        data = bodies[label] if body is None else body
        conversation = Conversation.user(recipient.address.user)
        step: Json = {"op": "decrypt", "by": recipient.name, "label": label}
        if body is not None:
            step["body"] = body.hex()
        try:
            if recipient.session is None:
                accepted = _accept(
                    recipient.identity,
                    recipient.address,
                    data,
                    delivered_by=sender.address,
                    sender_identity=sender.identity.public,
                    conversation=conversation,
                    signed_prekeys=lambda key_id: signed if key_id == signed.prekey_id else None,
                    one_time_prekeys=lambda key_id: one_time if key_id == one_time.prekey_id else None,
                    limits=DEFAULT_LIMITS,
                    random_source=recipient.draws,
                )
                recipient.session = accepted.session
                step["accept"] = True
                step["used_one_time_prekey_id"] = accepted.used_one_time_prekey_id
                message = accepted.message
            else:
                message = recipient.session.decrypt(
                    data, delivered_by=sender.address, conversation=conversation
                )
        except CryptoError as error:
            step["error"] = error.code
        else:
            step["payload_bytes"] = message.encoded.hex()
            step["signature"] = message.signature.hex()
        steps.append(step)

    send(alice, bob, "a0", "Résultat de potassium : 6,8 mmol/L.")
    send(alice, bob, "a1", "Pouvez-vous rappeler ?")
    send(alice, bob, "a2", "Merci.")
    receive(bob, alice, "a1")  # out of order: a0 is skipped
    receive(bob, alice, "a0")  # from the skipped keys
    receive(bob, alice, "a0")  # replay
    send(bob, alice, "b0", "Je rappelle le patient.")
    send(bob, alice, "b1", "C'est fait.")
    receive(alice, bob, "b1")  # DH ratchet step on Alice's side; b0 skipped
    send(alice, bob, "a3", "Parfait, merci.")  # a normal (non-prekey) message after the step
    receive(alice, bob, "b0")
    receive(bob, alice, "a3")  # DH ratchet step on Bob's side; a2 skipped via PN
    receive(bob, alice, "a2")
    receive(bob, alice, "a3")  # replay of a message from the current chain
    send(bob, alice, "b2", "À demain.")
    tampered = bytearray(bodies["b2"])
    tampered[-1] ^= 0x01
    receive(alice, bob, "b2", body=bytes(tampered))  # refused; Alice's session is unchanged
    receive(alice, bob, "b2")

    def party_json(party: Party) -> Json:
        return {
            "address": address_json(party.address),
            "identity": identity_json(party.identity),
            "random": [value.hex() for value in party.draws.taken],
        }

    return {
        "format": FORMAT,
        "schema": (
            "A conversation between two devices (§3.5 to §3.8). Each party's random draws are listed in the "
            "order they are taken (each one 32 bytes: an X3DH ephemeral key or a new ratchet key); inject "
            "them as the party's randomness. Alice opens the session from bundle; Bob accepts with "
            "bob_signed_prekey and bob_one_time_prekey. Replay steps in order. 'encrypt': the sender signs "
            "and encrypts payload (sent_at_ms and device ids are decimal strings) and must produce 'body' "
            "exactly; 'parsed' splits it (§3.7). 'decrypt': the recipient decrypts the body of the step "
            "labelled 'label' (or 'body' when given: a tampered copy), delivered by the other party in "
            "conversation user:<recipient's username>; it yields payload_bytes and signature, or fails "
            "with 'error' (a §3.9 code) and leaves its session unchanged. 'accept': true marks the "
            "step that opens Bob's session from a prekey message."
        ),
        "alice": party_json(alice),
        "bob": party_json(bob),
        "bundle": {
            "identity_signing_key": bob.identity.public.signing_key.hex(),
            "identity_exchange_key": bob.identity.public.exchange_key.hex(),
            "signed_prekey": {
                "id": signed.prekey_id,
                "key": signed.public_key.hex(),
                "signature": signed.signature.hex(),
            },
            "one_time_prekey": {"id": one_time.prekey_id, "key": one_time.public_key.hex()},
        },
        "bob_signed_prekey": signed_prekey_json(signed),
        "bob_one_time_prekey": one_time_prekey_json(one_time),
        "associated_data": (
            alice.identity.public.signing_key
            + alice.identity.public.exchange_key
            + bob.identity.public.signing_key
            + bob.identity.public.exchange_key
        ).hex(),
        "steps": steps,
    }


# --- body.json --------------------------------------------------------------------


def body_vectors(session: Json) -> Json:
    prekey = bytes.fromhex(
        next(s["body"] for s in session["steps"] if s.get("label") == "a0" and s["op"] == "encrypt")
    )
    normal = bytes.fromhex(
        next(s["body"] for s in session["steps"] if s.get("label") == "a3" and s["op"] == "encrypt")
    )
    spk_offset = 2 + 96
    cases = {
        "empty": b"",
        "legacy format 1": b"\x01" + normal[1:],
        "unknown format": b"\x03" + normal[1:],
        "unknown type": normal[:1] + b"\x03" + normal[2:],
        "only version and type": normal[:2],
        "ciphertext shorter than the tag": normal[: 2 + 40 + 15],
        "prekey message cut inside its X3DH data": prekey[:60],
        "one-time prekey flag 2": prekey[: spk_offset + 4] + b"\x02" + prekey[spk_offset + 5 :],
        "flag 0 with a non-zero one-time prekey id": prekey[: spk_offset + 4]
        + b"\x00"
        + prekey[spk_offset + 5 :],
        "signed prekey id above 2**31 - 1": prekey[:spk_offset]
        + b"\x80\x00\x00\x05"
        + prekey[spk_offset + 4 :],
        "non-canonical ratchet key": normal[:2] + b"\xff" * 32 + normal[34:],
    }
    rejected = [
        {"reason": reason, "body": data.hex(), "error": error_code(lambda data=data: parse_body(data))}
        for reason, data in cases.items()
    ]
    return {
        "format": FORMAT,
        "schema": (
            "Bodies every parser must refuse before any decryption (§3.7), with the §3.9 error code. "
            "Well-formed bodies and their parts are in session.json ('parsed')."
        ),
        "rejected": rejected,
    }


# --- group.json -------------------------------------------------------------------


class SizedDraws:
    """A random source for the group vectors: ``seed(label/i)[:size]``, recorded with its size."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.taken: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        if not 0 < size <= 32:
            raise ValueError("the vectors draw 1 to 32 bytes at a time")
        value = seed(f"{self.label}/{len(self.taken)}")[:size]
        self.taken.append(value)
        return value


def group_payload_json(payload: GroupPayload) -> Json:
    return {
        "sender": address_json(payload.sender),
        "conversation": {"kind": payload.conversation.kind.name.lower(), "id": payload.conversation.id},
        "client_message_id": payload.client_message_id,
        "sent_at_ms": str(payload.sent_at_ms),
        "content_type": payload.content_type,
        "text": payload.text,
    }


def distribution_json(distribution: SenderKeyDistribution) -> Json:
    return {
        "group_id": distribution.group_id,
        "key_id": distribution.key_id,
        "iteration": distribution.iteration,
        "chain_key": distribution.chain_key.hex(),
        "signing_key": distribution.signing_key.hex(),
    }


GROUP_ID = "care-team:1234"


def group_payload_vectors(signer: IdentityKeyPair) -> Json:
    payloads = [
        GroupPayload(
            DeviceAddress("alice", 11),
            Conversation.group(GROUP_ID),
            "g-0001",
            1_700_000_000_000,
            "Kaliémie à 6,8 mmol/L — qui rappelle le patient ?",
        ),
        GroupPayload(
            DeviceAddress("dr.martin", 2**62),
            Conversation.group("a"),
            "c:9f2e.1",
            2**63 - 1,
            "",
            "text/markdown",
        ),
    ]
    cases = []
    for payload in payloads:
        signed = sign_group_payload(signer, payload)
        cases.append(
            {
                "payload": group_payload_json(payload),
                "encoded": signed.encoded.hex(),
                "signing_input": group_signing_input(signed.encoded).hex(),
                "signature": signed.signature.hex(),
                "plaintext": encode_plaintext(signed).hex(),
            }
        )
    base = payloads[0].encode()
    kind_offset = 1 + 6 + 8
    malformed = {
        "trailing byte": base + b"\x00",
        "pairwise version byte": b"\x02" + base[1:],
        "truncated": base[:-1],
        "conversation kind user": base[:kind_offset] + b"\x01" + base[kind_offset + 1 :],
        "unknown conversation kind": base[:kind_offset] + b"\x03" + base[kind_offset + 1 :],
    }
    rejected = []
    for reason, data in malformed.items():
        signature = signer.sign(group_signing_input(data))
        code = error_code(
            lambda data=data, signature=signature: verify_payload(data, signature, signer.public.signing_key)
        )
        rejected.append(
            {"reason": reason, "encoded": data.hex(), "signature": signature.hex(), "error": code}
        )
    pairwise = sign_payload(
        signer,
        Payload(
            DeviceAddress("alice", 11), DeviceAddress("bob", 22), Conversation.group(GROUP_ID), "g-1", 1, "x"
        ),
    )
    code = error_code(
        lambda: verify_group_payload(pairwise.encoded, pairwise.signature, signer.public.signing_key)
    )
    rejected.append(
        {
            "reason": "a pairwise payload and its signature, checked as a group payload",
            "encoded": pairwise.encoded.hex(),
            "signature": pairwise.signature.hex(),
            "error": code,
            "group_only": True,
        }
    )
    return {"cases": cases, "rejected": rejected}


class GroupScenario:
    """Alice's device sends in a group; Bob, Carol (joins later) and Mallory (removed) receive."""

    def __init__(self) -> None:
        self.alice = DeviceAddress("alice", 11)
        self.identity = identity("group/alice")
        self.draws = SizedDraws("group/alice/random")
        self.receivers: dict[str, SenderKeyReceiver] = {}
        self.addresses = {
            "bob": DeviceAddress("bob", 22),
            "carol": DeviceAddress("carol", 33),
            "mallory": DeviceAddress("mallory", 44),
        }
        self.bodies: dict[str, bytes] = {}
        self.steps: list[Json] = []
        self.clock = 1_700_000_000_000
        self.key = _create_sender_key(
            GROUP_ID, self.alice, self.identity.public, self.draws, avoid_key_id=None
        )
        self.steps.append(self.key_step("create"))

    def key_step(self, op: str) -> Json:
        core = self.key._core
        return {
            "op": op,
            "key_id": core.key_id,
            "chain_key": core.chain_key.hex(),
            "signing_seed": core.signing_key.seed_bytes().hex(),
            "signing_key": core.signing_key.public_key.hex(),
            "draws_so_far": len(self.draws.taken),
        }

    def rotate(self) -> None:
        self.key = _create_sender_key(
            GROUP_ID, self.alice, self.identity.public, self.draws, avoid_key_id=self.key.key_id
        )
        self.steps.append(self.key_step("rotate"))

    def distribute(self, names: list[str]) -> None:
        distribution = self.key.distribution()
        encoded = distribution.encode()
        for name in names:
            receiver = self.receivers.get(name)
            if receiver is None:
                receiver = SenderKeyReceiver.create(GROUP_ID, self.alice, self.identity.public)
                self.receivers[name] = receiver
            receiver.install(encoded)
        self.steps.append(
            {
                "op": "distribute",
                "to": names,
                "distribution": encoded.hex(),
                "parsed": distribution_json(distribution),
                "carrier_text": base64.b64encode(encoded).decode("ascii"),
                "key_ids_after": {name: list(self.receivers[name].key_ids) for name in names},
            }
        )

    def send(self, label: str, text: str) -> None:
        self.clock += 1000
        payload = GroupPayload(self.alice, Conversation.group(GROUP_ID), label, self.clock, text)
        core = self.key._core
        key_id, iteration, chain_key = core.key_id, core.iteration, core.chain_key
        message_key = primitives.kdf_ck(chain_key)[1]
        aead_key, aead_nonce = primitives.message_aead_key(
            message_key, info=primitives.GROUP_MESSAGE_KEY_INFO
        )
        signed = sign_group_payload(self.identity, payload)
        body = self.key.encrypt(payload, self.identity)
        parsed = parse_group_body(body)
        self.bodies[label] = body
        self.steps.append(
            {
                "op": "encrypt",
                "label": label,
                "payload": group_payload_json(payload),
                "payload_bytes": signed.encoded.hex(),
                "payload_signature": signed.signature.hex(),
                "plaintext": encode_plaintext(signed).hex(),
                "key_id": key_id,
                "iteration": iteration,
                "chain_key": chain_key.hex(),
                "message_key": message_key.hex(),
                "aead_key": aead_key.hex(),
                "aead_nonce": aead_nonce.hex(),
                "associated_data": group_associated_data(GROUP_ID, parsed.header).hex(),
                "header": parsed.header.hex(),
                "ciphertext": parsed.ciphertext.hex(),
                "body_signing_input": group_body_signing_input(GROUP_ID, parsed.signed_part).hex(),
                "body_signature": parsed.signature.hex(),
                "body": body.hex(),
            }
        )

    def receive(self, name: str, label: str, *, body: bytes | None = None, reason: str | None = None) -> None:
        data = self.bodies[label] if body is None else body
        step: Json = {"op": "decrypt", "by": name, "label": label}
        if body is not None:
            step["body"] = body.hex()
            step["reason"] = reason
        try:
            received = self.receivers[name].decrypt(
                data, delivered_by=self.alice, conversation=Conversation.group(GROUP_ID)
            )
        except CryptoError as error:
            step["error"] = error.code
        else:
            step["payload_bytes"] = received.encoded.hex()
            step["payload_signature"] = received.signature.hex()
        self.steps.append(step)


def group_vectors() -> Json:
    run = GroupScenario()
    run.distribute(["bob", "mallory"])
    run.send("m0", "Résultat de potassium : 6,8 mmol/L.")
    run.send("m1", "Qui peut rappeler le patient ?")
    run.distribute(["carol"])  # Carol joins at iteration 2
    run.send("m2", "Je m'en occupe.")
    run.send("m3", "Merci.")
    run.send("m4", "Contrôle demain à 8 h.")
    run.receive("bob", "m2")  # skips 0 and 1
    run.receive("bob", "m0")  # a skipped key
    run.receive("bob", "m0")  # replay
    run.receive("bob", "m1")
    run.receive("bob", "m4")  # skips 3
    run.receive("bob", "m3")
    run.receive("carol", "m0")  # before Carol's iteration
    run.receive("carol", "m2")
    run.receive("mallory", "m1")
    tampered = bytearray(run.bodies["m3"])
    tampered[-1] ^= 0x01
    run.receive("carol", "m3", body=bytes(tampered), reason="last byte of the signature flipped")
    tampered = bytearray(run.bodies["m3"])
    tampered[20] ^= 0x80
    run.receive("carol", "m3", body=bytes(tampered), reason="a ciphertext bit flipped")
    run.receive("carol", "m3")
    run.rotate()  # Mallory is removed: a new sender key, for Bob and Carol only
    run.distribute(["bob", "carol"])
    run.send("m5", "Mallory ne fait plus partie de l'équipe.")
    run.send("m6", "Nouvelle clé.")
    run.receive("bob", "m6")
    run.receive("bob", "m5")
    run.receive("mallory", "m5")  # unknown-sender-key
    run.rotate()  # another change: Carol's oldest key (the first) is dropped
    run.distribute(["carol"])
    run.receive("carol", "m4")  # sent under the first key, still in flight: gone now
    run.receive("carol", "m5")  # the previous key is kept
    signer = identity("group/payload-signer")
    body = run.bodies["m0"]
    rejected_bodies = {
        "empty": b"",
        "pairwise format 2": b"\x02" + body[1:],
        "legacy format 1": b"\x01" + body[1:],
        "unknown format 4": b"\x04" + body[1:],
        "one byte short of the minimum (88 bytes)": body[:88],
    }
    distribution = bytes.fromhex(next(s["distribution"] for s in run.steps if s["op"] == "distribute"))
    rejected_distributions = {
        "empty": b"",
        "version 3": b"\x03" + distribution[1:],
        "trailing byte": distribution + b"\x00",
        "truncated": distribution[:-1],
        "empty group id": distribution[:1] + b"\x00" + distribution[2 + distribution[1] :],
        "group id with a space": distribution[:2] + b" " + distribution[3:],
        "signing key of small order (identity point)": distribution[:-32] + (1).to_bytes(32, "little"),
        "signing key all zero": distribution[:-32] + bytes(32),
        "non-canonical signing key": distribution[:-32] + b"\xff" * 31 + b"\x7f",
    }
    return {
        "format": FORMAT,
        "schema": (
            "Sender keys (docs/protocol-group.md §3.17). 'sender': Alice's device, its identity, and its "
            "random draws in order (each with its size: a 4-byte key_id, a 32-byte chain key, a 32-byte "
            "Ed25519 seed per sender key; inject them as its randomness). Replay 'steps' in order: 'create' "
            "and 'rotate' make a sender key (the keys it must yield are listed); 'distribute' gives the "
            "current distribution (exact bytes, and carrier_text: the base64 text of the pairwise payload "
            "that carries it) to the named receivers, each holding a receiver for Alice's device (created "
            "empty the first time), and key_ids_after lists what each then holds; 'encrypt' signs and "
            "encrypts payload and must produce every intermediate value and 'body' exactly; 'decrypt': "
            "the receiver opens the body of the step labelled 'label' (or 'body' when given: a tampered "
            "copy), delivered by Alice's device in conversation group:<group_id>, yielding payload_bytes "
            "and payload_signature, or failing with 'error' (a §3.17.10 code) and leaving its state "
            "unchanged. group_payloads: encodings, signing inputs and identity signatures of group "
            "payloads, and validly signed bytes that verify_payload must refuse with 'error'. "
            "rejected_bodies and rejected_distributions: bytes a parser must refuse, with the code."
        ),
        "constants": {
            "group_format_version": GROUP_FORMAT_VERSION,
            "distribution_version": DISTRIBUTION_VERSION,
            "group_payload_version": GROUP_PAYLOAD_VERSION,
            "group_message_key_info": primitives.GROUP_MESSAGE_KEY_INFO.hex(),
            "group_ad_domain": GROUP_AD_DOMAIN.hex(),
            "group_body_signature_domain": GROUP_BODY_SIGNATURE_DOMAIN.hex(),
            "group_payload_signature_domain": GROUP_SIGNATURE_DOMAIN.hex(),
            "distribution_content_type": DISTRIBUTION_CONTENT_TYPE,
            "max_skip": DEFAULT_SENDER_KEY_LIMITS.max_skip,
            "max_skipped_keys": DEFAULT_SENDER_KEY_LIMITS.max_skipped_keys,
            "max_received_keys": MAX_RECEIVED_KEYS,
            "max_body_bytes": MAX_GROUP_BODY_BYTES,
        },
        "group_id": GROUP_ID,
        "sender": {
            "address": address_json(run.alice),
            "identity": identity_json(run.identity),
            "random": [{"size": len(value), "bytes": value.hex()} for value in run.draws.taken],
        },
        "receivers": {name: address_json(address) for name, address in run.addresses.items()},
        "steps": run.steps,
        "group_payloads": {"signer": identity_json(signer), **group_payload_vectors(signer)},
        "rejected_bodies": [
            {
                "reason": reason,
                "body": data.hex(),
                "error": error_code(lambda data=data: parse_group_body(data)),
            }
            for reason, data in rejected_bodies.items()
        ],
        "rejected_distributions": [
            {
                "reason": reason,
                "distribution": data.hex(),
                "error": error_code(lambda data=data: SenderKeyDistribution.decode(data)),
            }
            for reason, data in rejected_distributions.items()
        ],
    }


def build_vectors() -> dict[str, Json]:
    session = session_vectors()
    return {
        "kdf.json": kdf_vectors(),
        "x3dh.json": x3dh_vectors(),
        "payload.json": payload_vectors(),
        "session.json": session,
        "body.json": body_vectors(session),
        "safety.json": safety_vectors(),
        "group.json": group_vectors(),
    }


def render(data: Json) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    changed = []
    VECTORS_DIR.mkdir(parents=True, exist_ok=True)
    for name, data in build_vectors().items():
        path = VECTORS_DIR / name
        text = render(data)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        changed.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    for name in changed:
        print(f"{'differs' if args.check else 'wrote'}: tests/vectors/{name}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
