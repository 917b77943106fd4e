"""The tamper-evident ledger: entries, the hash chain, signed heads and proofs (docs/protocol.md §10).

I/O-free: the server appends with :func:`chain_hash`, signs heads with
:func:`sign_head`; anyone checks a proof bundle offline with
:func:`verify_proof`. No entry holds plaintext: only who, when, and the
SHA-256 of ciphertexts.

Chain (§10.2)::

    digest_n = SHA-256(canonical JSON of entry n)
    hash_n   = SHA-256(b"lien-ledger-v1\\x00" || hash_{n-1} || digest_n),   hash_0 = 32 zero bytes

A proof gives the entries of one message in full and, for every other entry
between the first of them and a signed head, only its digest: the chain can be
recomputed without revealing anyone else's metadata.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

import msgspec
import nacl.exceptions
import nacl.signing

LEDGER_DOMAIN: Final = b"lien-ledger-v1\x00"
HEAD_DOMAIN: Final = b"lien-ledger-head-v1\x00"
RECEIPT_DOMAIN: Final = b"lien-receipt-v1\x00"
GENESIS: Final = bytes(32)
PROOF_VERSION: Final = 1


# --- entries (§10.1) --------------------------------------------------------


class CopyHash(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One device a message was stored for, and the SHA-256 of the ciphertext stored for it."""

    user: str
    device: int
    sha256: str


class Entry(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=True):
    """Base of ledger entries; ``at`` is the server's time (ms since the epoch)."""


class DeviceRegistered(Entry, frozen=True, tag="device", kw_only=True):
    """A device and its public identity keys, as the server accepted them (base64 keys)."""

    user: str
    device: int
    signing_key: bytes
    exchange_key: bytes
    at: int


class DeviceRemoved(Entry, frozen=True, tag="device-removed", kw_only=True):
    user: str
    device: int
    at: int


class MessageAccepted(Entry, frozen=True, tag="accepted", kw_only=True):
    """An envelope durably stored: by whom, for whom, and the hash of every copy."""

    message: str
    client_id: str
    sender: str
    sender_device: int
    recipient: str | None = None
    group: str | None = None
    copies: list[CopyHash]
    at: int


class MessageResent(Entry, frozen=True, tag="resent", kw_only=True):
    """New copies of an accepted message, after a ``decrypt-failed`` receipt (a repaired session)."""

    message: str
    sender: str
    sender_device: int
    copies: list[CopyHash]
    at: int


class ReceiptRecorded(Entry, frozen=True, tag="receipt", kw_only=True):
    """A receipt, signed by the device that received the message (§10.4)."""

    message: str
    kind: str
    by: str
    by_device: int
    sha256: str
    """SHA-256 of the ciphertext that device received."""
    device_time: int
    signature: bytes
    at: int


LedgerEntry = DeviceRegistered | DeviceRemoved | MessageAccepted | MessageResent | ReceiptRecorded

_encoder = msgspec.json.Encoder()
_entry_decoder = msgspec.json.Decoder(LedgerEntry)


def encode_entry(entry: LedgerEntry) -> bytes:
    """The canonical bytes of an entry: msgspec JSON, fields in definition order, no spaces."""
    return _encoder.encode(entry)


def decode_entry(data: bytes) -> LedgerEntry:
    entry: LedgerEntry = _entry_decoder.decode(data)
    return entry


def digest(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def chain_hash(previous: bytes, entry_digest: bytes) -> bytes:
    """``hash_n`` from ``hash_{n-1}`` and ``digest_n`` (§10.2)."""
    return hashlib.sha256(LEDGER_DOMAIN + previous + entry_digest).digest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- receipts (§10.4) -------------------------------------------------------


def _str8(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > 255:
        raise ValueError("field longer than 255 bytes")
    return bytes([len(data)]) + data


def receipt_signing_input(
    *, message: str, kind: str, ciphertext_sha256: bytes, device_time: int, by: str, by_device: int
) -> bytes:
    """What a device signs for a receipt (§10.4).

    ``domain || str8(message) || str8(kind) || sha256 (32) || u64(device_time) || str8(by) || u64(by_device)``
    """
    if len(ciphertext_sha256) != 32:
        raise ValueError("a ciphertext hash is 32 bytes")
    return b"".join(
        (
            RECEIPT_DOMAIN,
            _str8(message),
            _str8(kind),
            ciphertext_sha256,
            device_time.to_bytes(8, "big"),
            _str8(by),
            by_device.to_bytes(8, "big"),
        )
    )


# --- signed heads (§10.3) ---------------------------------------------------


class SignedHead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seq: int
    hash: bytes
    signed_at: int
    key_id: str
    """Hex of the first 8 bytes of SHA-256 of the server's Ed25519 public key."""
    public_key: bytes
    signature: bytes


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).digest()[:8].hex()


def head_signing_input(seq: int, head_hash: bytes, signed_at: int, head_key_id: str) -> bytes:
    """``domain || u64(seq) || hash (32) || u64(signed_at) || key id (8)`` (§10.3)."""
    return (
        HEAD_DOMAIN
        + seq.to_bytes(8, "big")
        + head_hash
        + signed_at.to_bytes(8, "big")
        + bytes.fromhex(head_key_id)
    )


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519, never raising for bad input."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def verify_head(head: SignedHead) -> bool:
    if len(head.public_key) != 32 or key_id(head.public_key) != head.key_id or len(head.hash) != 32:
        return False
    return verify_signature(
        head.public_key, head_signing_input(head.seq, head.hash, head.signed_at, head.key_id), head.signature
    )


# --- proofs (§10.5) -------------------------------------------------------------


class ProvenEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seq: int
    entry: LedgerEntry


class ChainLink(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Another entry of the chain, by its digest only."""

    seq: int
    digest: bytes


class Evidence(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the recipient holds: the signed payload it decrypted (docs/protocol-crypto.md §3.8.5)."""

    payload: bytes
    signature: bytes
    signer_key: bytes


class Segment(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A stretch of the chain from just before some entries to the first signed head after them."""

    start_hash: bytes
    """``hash`` of the entry before the first one of the segment."""
    entries: list[ProvenEntry]
    """The entries the proof is about, in full."""
    chain: list[ChainLink]
    """Every other entry of the stretch, by digest."""
    head: SignedHead


class Proof(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    version: int = PROOF_VERSION
    message: str
    segments: list[Segment]
    evidence: Evidence | None = None

    @property
    def entries(self) -> list[ProvenEntry]:
        return [entry for segment in self.segments for entry in segment.entries]


proof_decoder = msgspec.json.Decoder(Proof)


@dataclass
class Finding:
    ok: bool
    statement: str


@dataclass
class Verdict:
    """What a proof establishes; ``proven`` only when every check passed."""

    findings: list[Finding] = field(default_factory=list)
    unchecked_keys: set[str] = field(default_factory=set)
    """Head key ids nobody said were the server's: compare them with ``GET /v1/ledger/keys``."""

    @property
    def proven(self) -> bool:
        return bool(self.findings) and all(finding.ok for finding in self.findings)

    def check(self, ok: bool, statement: str) -> bool:
        self.findings.append(Finding(ok, statement))
        return ok


def verify_segment(segment: Segment) -> bool:
    """Recompute the chain from ``start_hash``: it must reach the signed head's hash with no gap."""
    digests: dict[int, bytes] = {link.seq: link.digest for link in segment.chain}
    for proven in segment.entries:
        if proven.seq in digests:
            return False
        digests[proven.seq] = digest(encode_entry(proven.entry))
    if not digests:
        return False
    first, last = min(digests), max(digests)
    if last != segment.head.seq or len(digests) != last - first + 1:
        return False
    current = segment.start_hash
    for seq in range(first, last + 1):
        current = chain_hash(current, digests[seq])
    return current == segment.head.hash
