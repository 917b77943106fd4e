"""The implementation reproduces tests/vectors/group.json byte for byte (docs/protocol-group.md §3.17.11).

Reads only the JSON file, the way the JavaScript tests will: keys come from
the file, randomness is the file's list of draws. (That regenerating the
file changes nothing is checked with the other files in test_crypto_vectors.py.)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lien.crypto import primitives
from lien.crypto.errors import CryptoError
from lien.crypto.group import DISTRIBUTION_CONTENT_TYPE, SenderKey, SenderKeyReceiver, _create
from lien.crypto.group_chain import DEFAULT_SENDER_KEY_LIMITS, MAX_RECEIVED_KEYS
from lien.crypto.group_wire import (
    GROUP_AD_DOMAIN,
    GROUP_BODY_SIGNATURE_DOMAIN,
    MAX_GROUP_BODY_BYTES,
    SenderKeyDistribution,
    group_associated_data,
    group_body_signing_input,
    parse_group_body,
)
from lien.crypto.keys import IdentityKeyPair
from lien.crypto.payload import (
    GROUP_SIGNATURE_DOMAIN,
    Conversation,
    ConversationKind,
    DeviceAddress,
    GroupPayload,
    decode_plaintext,
    encode_plaintext,
    group_signing_input,
    sign_group_payload,
    verify_group_payload,
    verify_payload,
)

VECTORS = Path(__file__).resolve().parent / "vectors"


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "group.json").read_text(encoding="utf-8"))
    assert data["format"] == 1
    return data


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def identity(data: dict[str, str]) -> IdentityKeyPair:
    pair = IdentityKeyPair.from_secret_bytes(h(data["signing_seed"]), h(data["exchange_private"]))
    assert pair.public.signing_key.hex() == data["signing_key"]
    return pair


def address(data: dict[str, str]) -> DeviceAddress:
    return DeviceAddress(data["user"], int(data["device"]))


def group_payload(data: dict[str, Any]) -> GroupPayload:
    assert data["conversation"]["kind"] == "group"
    return GroupPayload(
        address(data["sender"]),
        Conversation(ConversationKind.GROUP, data["conversation"]["id"]),
        data["client_message_id"],
        int(data["sent_at_ms"]),
        data["text"],
        data["content_type"],
    )


def error_code(action: Any) -> str | None:
    try:
        action()
    except CryptoError as error:
        return error.code
    return None


def test_constants() -> None:
    constants = load()["constants"]
    assert h(constants["group_message_key_info"]) == b"Lien Group Message Keys v1"
    assert h(constants["group_ad_domain"]) == GROUP_AD_DOMAIN == b"lien-group-message-v1\x00"
    assert (
        h(constants["group_body_signature_domain"])
        == GROUP_BODY_SIGNATURE_DOMAIN
        == b"lien-group-body-v1\x00"
    )
    assert (
        h(constants["group_payload_signature_domain"])
        == GROUP_SIGNATURE_DOMAIN
        == b"lien-group-payload-v1\x00"
    )
    assert (constants["group_format_version"], constants["distribution_version"]) == (3, 1)
    assert constants["group_payload_version"] == 3
    assert constants["distribution_content_type"] == DISTRIBUTION_CONTENT_TYPE
    assert (constants["max_skip"], constants["max_skipped_keys"]) == (1000, 2000)
    assert constants["max_skip"] == DEFAULT_SENDER_KEY_LIMITS.max_skip
    assert constants["max_received_keys"] == MAX_RECEIVED_KEYS == 2
    assert constants["max_body_bytes"] == MAX_GROUP_BODY_BYTES == 65_536


class Sender:
    def __init__(self, data: dict[str, Any]) -> None:
        self.address = address(data["address"])
        self.identity = identity(data["identity"])
        self._draws: Iterator[dict[str, Any]] = iter(data["random"])
        self.drawn = 0
        self.key: SenderKey | None = None

    def draw(self, size: int) -> bytes:
        expected = next(self._draws)
        assert expected["size"] == size
        self.drawn += 1
        return h(expected["bytes"])


def test_group_conversation_replays_byte_for_byte() -> None:
    data = load()
    group_id = data["group_id"]
    sender = Sender(data["sender"])
    receivers: dict[str, SenderKeyReceiver] = {}
    bodies: dict[str, bytes] = {}
    outcomes = {"ok": 0, "error": 0}
    for step in data["steps"]:
        if step["op"] in ("create", "rotate"):
            avoid = None if sender.key is None else sender.key.key_id
            assert (step["op"] == "create") == (sender.key is None)
            sender.key = _create(
                group_id, sender.address, sender.identity.public, sender.draw, avoid_key_id=avoid
            )
            assert sender.drawn == step["draws_so_far"]
            core = sender.key._core
            assert core.key_id == step["key_id"] and core.iteration == 0
            assert core.chain_key.hex() == step["chain_key"]
            assert core.signing_key.seed_bytes().hex() == step["signing_seed"]
            assert sender.key.signing_public_key.hex() == step["signing_key"]
        elif step["op"] == "distribute":
            assert sender.key is not None
            distribution = sender.key.distribution()
            assert distribution.encode().hex() == step["distribution"]
            parsed = SenderKeyDistribution.decode(h(step["distribution"]))
            assert parsed.chain_key.hex() == step["parsed"]["chain_key"]
            assert (parsed.group_id, parsed.key_id, parsed.iteration) == (
                step["parsed"]["group_id"],
                step["parsed"]["key_id"],
                step["parsed"]["iteration"],
            )
            assert parsed.signing_key.hex() == step["parsed"]["signing_key"]
            assert base64.b64decode(step["carrier_text"]) == h(step["distribution"])
            for name in step["to"]:
                if name not in receivers:
                    receivers[name] = SenderKeyReceiver.create(
                        group_id, sender.address, sender.identity.public
                    )
                assert receivers[name].install(h(step["distribution"])) is True
                assert list(receivers[name].key_ids) == step["key_ids_after"][name]
        elif step["op"] == "encrypt":
            assert sender.key is not None
            payload = group_payload(step["payload"])
            signed = sign_group_payload(sender.identity, payload)
            assert signed.encoded.hex() == step["payload_bytes"]
            assert signed.signature.hex() == step["payload_signature"]
            assert encode_plaintext(signed).hex() == step["plaintext"]
            assert (sender.key.key_id, sender.key.iteration) == (step["key_id"], step["iteration"])
            assert sender.key._core.chain_key.hex() == step["chain_key"]
            chain_key, message_key = primitives.kdf_ck(h(step["chain_key"]))
            assert message_key.hex() == step["message_key"]
            key, nonce = primitives.message_aead_key(message_key, info=primitives.GROUP_MESSAGE_KEY_INFO)
            assert (key.hex(), nonce.hex()) == (step["aead_key"], step["aead_nonce"])
            body = sender.key.encrypt(payload, sender.identity)
            assert body.hex() == step["body"], step["label"]
            assert sender.key._core.chain_key == chain_key
            parsed_body = parse_group_body(body)
            assert parsed_body.header.hex() == step["header"]
            assert group_associated_data(group_id, parsed_body.header).hex() == step["associated_data"]
            assert parsed_body.ciphertext.hex() == step["ciphertext"]
            signing_input = group_body_signing_input(group_id, parsed_body.signed_part)
            assert signing_input.hex() == step["body_signing_input"]
            assert parsed_body.signature.hex() == step["body_signature"]
            assert primitives.ed25519_verify(
                sender.key.signing_public_key, signing_input, parsed_body.signature
            )
            opened = primitives.aead_decrypt(
                message_key,
                parsed_body.ciphertext,
                h(step["associated_data"]),
                info=primitives.GROUP_MESSAGE_KEY_INFO,
            )
            assert opened.hex() == step["plaintext"]
            bodies[step["label"]] = body
        else:
            assert step["op"] == "decrypt"
            receiver = receivers[step["by"]]
            body = h(step["body"]) if "body" in step else bodies[step["label"]]
            before = receiver.to_bytes()
            try:
                received = receiver.decrypt(
                    body, delivered_by=sender.address, conversation=Conversation.group(group_id)
                )
            except CryptoError as error:
                assert error.code == step.get("error"), (step["by"], step["label"])
                assert receiver.to_bytes() == before
                outcomes["error"] += 1
            else:
                assert "error" not in step, (step["by"], step["label"])
                assert received.encoded.hex() == step["payload_bytes"]
                assert received.signature.hex() == step["payload_signature"]
                assert decode_plaintext(encode_plaintext(received)) == (received.encoded, received.signature)
                outcomes["ok"] += 1
    assert outcomes == {"ok": 11, "error": 6}
    assert sender.drawn == len(data["sender"]["random"])


def test_group_payloads() -> None:
    vectors = load()["group_payloads"]
    signer = identity(vectors["signer"])
    for case in vectors["cases"]:
        signed = sign_group_payload(signer, group_payload(case["payload"]))
        assert signed.encoded.hex() == case["encoded"]
        assert group_signing_input(signed.encoded).hex() == case["signing_input"]
        assert signed.signature.hex() == case["signature"]
        assert encode_plaintext(signed).hex() == case["plaintext"]
        assert (
            verify_payload(h(case["encoded"]), h(case["signature"]), signer.public.signing_key)
            == signed.payload
        )
    assert len(vectors["rejected"]) >= 5
    for case in vectors["rejected"]:
        check = verify_group_payload if case.get("group_only") else verify_payload
        code = error_code(
            lambda case=case, check=check: check(
                h(case["encoded"]), h(case["signature"]), signer.public.signing_key
            )
        )
        assert code == case["error"], case["reason"]


def test_rejected_bodies_and_distributions() -> None:
    data = load()
    assert {case["error"] for case in data["rejected_bodies"]} == {"malformed-message", "unsupported-format"}
    for case in data["rejected_bodies"]:
        assert error_code(lambda case=case: parse_group_body(h(case["body"]))) == case["error"], case[
            "reason"
        ]
    assert {case["error"] for case in data["rejected_distributions"]} == {"invalid-distribution"}
    for case in data["rejected_distributions"]:
        code = error_code(lambda case=case: SenderKeyDistribution.decode(h(case["distribution"])))
        assert code == case["error"], case["reason"]
