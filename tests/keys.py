"""Device key material for tests, built straight from PyNaCl and docs/protocol.md §3.

Written independently of lien.crypto on purpose: the server is checked
against the specification, not against the SDK's own helpers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from lien.protocol.api import DeviceRegistration, OneTimePrekey, SignedPrekey
from lien.protocol.frames import Receipt


def sign_prekey(signing_key: SigningKey, prekey_id: int, prekey: bytes) -> bytes:
    message = b"lien-signed-prekey-v1\x00" + prekey_id.to_bytes(4, "big") + prekey
    return signing_key.sign(message).signature


@dataclass
class TestDevice:
    __test__ = False  # a helper, not a test class
    signing: SigningKey
    exchange: PrivateKey
    registration: DeviceRegistration


def new_device(*, prekeys: int = 5, name: str = "test") -> TestDevice:
    signing = SigningKey.generate()
    exchange = PrivateKey.generate()
    signed = PrivateKey.generate()
    spk = bytes(signed.public_key)
    registration = DeviceRegistration(
        name=name,
        identity_signing_key=bytes(signing.verify_key),
        identity_exchange_key=bytes(exchange.public_key),
        signed_prekey=SignedPrekey(id=1, key=spk, signature=sign_prekey(signing, 1, spk)),
        prekeys=[
            OneTimePrekey(id=n, key=bytes(PrivateKey.generate().public_key)) for n in range(1, prekeys + 1)
        ],
    )
    return TestDevice(signing=signing, exchange=exchange, registration=registration)


def signed_receipt(
    device: TestDevice, username: str, device_id: int, message: str, kind: str, body: bytes, *, at: int = 1
) -> Receipt:
    """A receipt as docs/protocol.md §10.4 asks: signed by the device over the hash of what it received."""
    digest = hashlib.sha256(body).digest()
    signed = (
        b"lien-receipt-v1\x00"
        + bytes([len(message)]) + message.encode()
        + bytes([len(kind)]) + kind.encode()
        + digest
        + at.to_bytes(8, "big")
        + bytes([len(username)]) + username.encode()
        + device_id.to_bytes(8, "big")
    )  # fmt: skip
    return Receipt(
        message=message,
        kind=kind,
        hash=digest,
        at=at,
        signature=device.signing.sign(signed).signature,  # type: ignore[arg-type]
    )
