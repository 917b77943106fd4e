"""The implementation reproduces tests/vectors/*.json byte for byte (docs/protocol-crypto.md §3.11).

Each test reads only the JSON file, the way the JavaScript tests will: keys
come from the file, randomness is the file's list of draws.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lien.crypto import primitives, x3dh
from lien.crypto.errors import CryptoError
from lien.crypto.keys import IdentityKeyPair, OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair
from lien.crypto.payload import (
    Conversation,
    ConversationKind,
    DeviceAddress,
    Payload,
    decode_plaintext,
    encode_plaintext,
    sign_payload,
    signing_input,
    verify_payload,
)
from lien.crypto.ratchet import DEFAULT_LIMITS
from lien.crypto.safety import safety_number, user_fingerprint
from lien.crypto.session import Session, _accept, _initiate
from lien.crypto.wire import encode_prefix, parse_body

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    assert data["format"] == 1
    return data


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def error_code(action: Any) -> str | None:
    try:
        action()
    except CryptoError as error:
        return error.code
    return None


def identity(data: dict[str, str]) -> IdentityKeyPair:
    pair = IdentityKeyPair.from_secret_bytes(h(data["signing_seed"]), h(data["exchange_private"]))
    assert pair.public.signing_key.hex() == data["signing_key"]
    assert pair.public.exchange_key.hex() == data["exchange_key"]
    return pair


def address(data: dict[str, str]) -> DeviceAddress:
    return DeviceAddress(data["user"], int(data["device"]))


def payload(data: dict[str, Any]) -> Payload:
    return Payload(
        address(data["sender"]),
        address(data["recipient"]),
        Conversation(ConversationKind[data["conversation"]["kind"].upper()], data["conversation"]["id"]),
        data["client_message_id"],
        int(data["sent_at_ms"]),
        data["text"],
        data["content_type"],
    )


# --- regeneration ----------------------------------------------------------------


def test_regenerating_gives_identical_files() -> None:
    spec = importlib.util.spec_from_file_location("make_vectors", ROOT / "scripts" / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build_vectors()
    assert sorted(built) == sorted(path.name for path in VECTORS.glob("*.json"))
    for name, data in built.items():
        assert module.render(data) == (VECTORS / name).read_text(encoding="utf-8"), name


# --- kdf.json ----------------------------------------------------------------------


def test_hkdf_matches_rfc5869_and_vectors() -> None:
    cases = load("kdf.json")["hkdf_sha256"]
    # RFC 5869 A.1, written out independently of the file
    assert cases[0]["okm"] == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    for case in cases:
        okm = primitives.hkdf_sha256(
            h(case["ikm"]), salt=h(case["salt"]), info=h(case["info"]), length=case["length"]
        )
        assert okm.hex() == case["okm"]


def test_kdf_chains() -> None:
    data = load("kdf.json")
    assert data["constants"]["x3dh_info"] == b"Lien X3DH v2".hex()
    for case in data["hmac_sha256"]:
        assert primitives.hmac_sha256(h(case["key"]), h(case["message"])).hex() == case["mac"]
    for previous, case in zip([None, *data["kdf_rk"]], data["kdf_rk"], strict=False):
        if previous is not None:
            assert case["root_key"] == previous["new_root_key"]
        root, chain = primitives.kdf_rk(h(case["root_key"]), h(case["dh_output"]))
        assert (root.hex(), chain.hex()) == (case["new_root_key"], case["chain_key"])
    for previous, case in zip([None, *data["kdf_ck"]], data["kdf_ck"], strict=False):
        if previous is not None:
            assert case["chain_key"] == previous["next_chain_key"]
        chain, message_key = primitives.kdf_ck(h(case["chain_key"]))
        assert (chain.hex(), message_key.hex()) == (case["next_chain_key"], case["message_key"])
    for case in data["message_key"]:
        key, nonce = primitives.message_aead_key(h(case["message_key"]))
        assert (key.hex(), nonce.hex()) == (case["aead_key"], case["aead_nonce"])
    for case in data["aead"]:
        ciphertext = primitives.aead_encrypt(
            h(case["message_key"]), h(case["plaintext"]), h(case["associated_data"])
        )
        assert ciphertext.hex() == case["ciphertext"]
        assert primitives.aead_decrypt(h(case["message_key"]), ciphertext, h(case["associated_data"])) == h(
            case["plaintext"]
        )


def test_x25519_vectors_and_rejections() -> None:
    data = load("kdf.json")
    for case in data["x25519"]:
        assert primitives.x25519_public(h(case["private"])).hex() == case["public"]
        assert primitives.x25519(h(case["private"]), h(case["peer_public"])).hex() == case["shared"]
    assert len(data["x25519_rejected"]) >= 6
    for public in data["x25519_rejected"]:
        assert (
            error_code(lambda public=public: primitives.x25519(bytes(range(32)), h(public))) == "invalid-key"
        )


# --- x3dh.json --------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1])
def test_x3dh_cases(index: int) -> None:
    case = load("x3dh.json")["cases"][index]
    alice, bob = identity(case["initiator"]), identity(case["responder"])
    spk = SignedPrekeyPair.from_secret_bytes(
        case["signed_prekey"]["id"],
        h(case["signed_prekey"]["private"]),
        h(case["signed_prekey"]["signature"]),
    )
    assert spk.public_key.hex() == case["signed_prekey"]["public"]
    assert bob.public.verify(h(case["signed_prekey_message"]), spk.signature)
    opk = None
    if case["one_time_prekey"] is not None:
        opk = OneTimePrekeyPair.from_private_bytes(
            case["one_time_prekey"]["id"], h(case["one_time_prekey"]["private"])
        )
        assert opk.public_key.hex() == case["one_time_prekey"]["public"]
    bundle = x3dh.PrekeyBundle(
        bob.public,
        spk.prekey_id,
        spk.public_key,
        spk.signature,
        None if opk is None else x3dh.OneTimePrekeyPublic(opk.prekey_id, opk.public_key),
    )
    ephemeral = h(case["ephemeral"]["private"])
    assert primitives.x25519_public(ephemeral).hex() == case["ephemeral"]["public"]
    sent = x3dh.initiate(alice, bundle, ephemeral)
    received = x3dh.respond(bob, spk, opk, alice.public, h(case["ephemeral"]["public"]))
    for secret in (sent, received):
        assert [value.hex() for value in secret.dh_outputs] == case["dh"]
        assert secret.shared_secret.hex() == case["shared_secret"]
        assert secret.associated_data.hex() == case["associated_data"]
    assert len(case["dh"]) == (4 if opk else 3)


def test_x3dh_rejected_bundles() -> None:
    for case in load("x3dh.json")["rejected_bundles"]:
        code = error_code(
            lambda case=case: x3dh.PrekeyBundle(
                PublicIdentity(h(case["identity_signing_key"]), bytes(range(32))),
                case["signed_prekey_id"],
                h(case["signed_prekey"]),
                h(case["signature"]),
            )
        )
        assert code == case["error"] == "bad-prekey-signature"


# --- payload.json -----------------------------------------------------------------


def test_payload_cases() -> None:
    data = load("payload.json")
    signer = identity(data["signer"])
    assert len(data["cases"]) == 3
    for case in data["cases"]:
        signed = sign_payload(signer, payload(case["payload"]))
        assert signed.encoded.hex() == case["encoded"]
        assert signing_input(signed.encoded).hex() == case["signing_input"]
        assert signed.signature.hex() == case["signature"]
        assert encode_plaintext(signed).hex() == case["plaintext"]
        assert decode_plaintext(h(case["plaintext"])) == (signed.encoded, signed.signature)
        assert (
            verify_payload(h(case["encoded"]), h(case["signature"]), signer.public.signing_key)
            == signed.payload
        )


def test_payload_rejections() -> None:
    data = load("payload.json")
    signer = identity(data["signer"])
    for case in data["rejected"]:
        code = error_code(
            lambda case=case: verify_payload(
                h(case["encoded"]), h(case["signature"]), signer.public.signing_key
            )
        )
        assert code == case["error"], case["reason"]


# --- body.json --------------------------------------------------------------------


def test_rejected_bodies() -> None:
    cases = load("body.json")["rejected"]
    assert {case["error"] for case in cases} == {"malformed-message", "unsupported-format"}
    for case in cases:
        assert error_code(lambda case=case: parse_body(h(case["body"]))) == case["error"], case["reason"]


# --- safety.json ------------------------------------------------------------------


def test_safety_numbers() -> None:
    data = load("safety.json")
    users = {}
    for user in data["users"]:
        devices = [PublicIdentity(h(d["signing_key"]), h(d["exchange_key"])) for d in user["devices"]]
        assert user_fingerprint(user["username"], devices) == user["fingerprint"]
        assert user_fingerprint(user["username"], list(reversed(devices))) == user["fingerprint"]
        users[user["username"]] = devices
    for pair in data["pairs"]:
        first, second = pair["users"]
        number = safety_number(first, users[first], second, users[second])
        assert number.digits == pair["safety_number"]
        assert len(number.digits) == 60 and number.digits.isdigit()
        assert safety_number(second, users[second], first, users[first]) == number


# --- session.json -----------------------------------------------------------------


class Replay:
    def __init__(self, data: dict[str, Any]) -> None:
        self.identity = identity(data["identity"])
        self.address = address(data["address"])
        self._draws: Iterator[bytes] = iter(h(value) for value in data["random"])
        self.session: Session | None = None
        self.drawn = 0

    def draw(self, size: int) -> bytes:
        assert size == 32
        self.drawn += 1
        return next(self._draws)


def test_session_conversation_replays_byte_for_byte() -> None:
    data = load("session.json")
    parties = {"alice": Replay(data["alice"]), "bob": Replay(data["bob"])}
    alice, bob = parties["alice"], parties["bob"]
    spk = SignedPrekeyPair.from_secret_bytes(
        data["bob_signed_prekey"]["id"],
        h(data["bob_signed_prekey"]["private"]),
        h(data["bob_signed_prekey"]["signature"]),
    )
    opk = OneTimePrekeyPair.from_private_bytes(
        data["bob_one_time_prekey"]["id"], h(data["bob_one_time_prekey"]["private"])
    )
    bundle = data["bundle"]
    prekey_bundle = x3dh.PrekeyBundle(
        PublicIdentity(h(bundle["identity_signing_key"]), h(bundle["identity_exchange_key"])),
        bundle["signed_prekey"]["id"],
        h(bundle["signed_prekey"]["key"]),
        h(bundle["signed_prekey"]["signature"]),
        x3dh.OneTimePrekeyPublic(bundle["one_time_prekey"]["id"], h(bundle["one_time_prekey"]["key"])),
    )
    alice.session = _initiate(
        alice.identity, alice.address, bob.address, prekey_bundle, DEFAULT_LIMITS, alice.draw
    )
    assert alice.session.associated_data.hex() == data["associated_data"]
    bodies: dict[str, bytes] = {}
    outcomes = {"ok": 0, "error": 0}
    for step in data["steps"]:
        me = parties[step["by"]]
        other = parties["bob" if step["by"] == "alice" else "alice"]
        if step["op"] == "encrypt":
            assert me.session is not None
            message = payload(step["payload"])
            body = me.session.encrypt(message, me.identity)
            assert body.hex() == step["body"], step["label"]
            parsed = parse_body(body)
            assert parsed.prefix.hex() == step["parsed"]["prefix"]
            assert encode_prefix(parsed.x3dh, parsed.header) == parsed.prefix
            assert parsed.header.message_number == step["parsed"]["header"]["message_number"]
            bodies[step["label"]] = body
            continue
        body = h(step["body"]) if "body" in step else bodies[step["label"]]
        conversation = Conversation.user(me.address.user)
        before = None if me.session is None else me.session.to_bytes()
        try:
            if step.get("accept"):
                assert me.session is None
                accepted = _accept(
                    me.identity,
                    me.address,
                    body,
                    delivered_by=other.address,
                    sender_identity=other.identity.public,
                    conversation=conversation,
                    signed_prekeys=lambda key_id: spk if key_id == spk.prekey_id else None,
                    one_time_prekeys=lambda key_id: opk if key_id == opk.prekey_id else None,
                    limits=DEFAULT_LIMITS,
                    random_source=me.draw,
                )
                assert accepted.used_one_time_prekey_id == step["used_one_time_prekey_id"]
                me.session = accepted.session
                received = accepted.message
            else:
                assert me.session is not None
                received = me.session.decrypt(body, delivered_by=other.address, conversation=conversation)
        except CryptoError as error:
            assert error.code == step.get("error"), step["label"]
            assert me.session is not None and me.session.to_bytes() == before
            outcomes["error"] += 1
        else:
            assert "error" not in step, step["label"]
            assert received.encoded.hex() == step["payload_bytes"]
            assert received.signature.hex() == step["signature"]
            outcomes["ok"] += 1
    assert outcomes == {"ok": 7, "error": 3}
    assert alice.drawn == len(data["alice"]["random"]) and bob.drawn == len(data["bob"]["random"])
