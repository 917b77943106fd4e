"""Checking a proof bundle offline and saying plainly what it proves (docs/protocol.md §10.5).

A bundle joins three kinds of evidence, each checked on its own:

* the server's ledger: entries chained by hashes up to a head the server
  signed, so the server cannot later change or reorder what it recorded;
* receipts signed by the recipient devices (delivered, decrypted, read);
* the signed payload the recipient decrypted, signed by the sender device.

The identity keys used for the signatures come from the ledger's own device
entries, which the signed head covers too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lien.crypto.errors import CryptoError
from lien.crypto.payload import ConversationKind, GroupPayload, verify_payload
from lien.ledger import (
    DeviceRegistered,
    MessageAccepted,
    MessageResent,
    Proof,
    ReceiptRecorded,
    Verdict,
    receipt_signing_input,
    verify_head,
    verify_segment,
    verify_signature,
)

NOT_PROVEN = (
    "What a bundle cannot prove: that a device was in its owner's hands when it signed, or that a person "
    "read a message a device reported as read."
)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def verify_proof(proof: Proof, trusted_keys: set[str] | None = None) -> Verdict:
    """Check every part of ``proof``; each finding says what was checked and whether it holds.

    A head carries its own public key, so its signature alone only shows
    that *someone* signed it. ``trusted_keys`` (key ids published by the server,
    ``GET /v1/ledger/keys``) makes the check that it was the server: without
    it, the verdict holds on the condition that the key ids printed are the
    server's (see :attr:`Verdict.unchecked_keys`).
    """
    verdict = Verdict()
    if not verdict.check(bool(proof.segments), "The bundle holds ledger entries."):
        return verdict
    for segment in proof.segments:
        head = segment.head
        if trusted_keys is not None:
            verdict.check(
                head.key_id in trusted_keys, f"The key {head.key_id} is one the server published as its own."
            )
        else:
            verdict.unchecked_keys.add(head.key_id)
        verdict.check(
            verify_head(head),
            f"The ledger head #{head.seq} is signed by the server key {head.key_id} "
            f"on {_when(head.signed_at)}.",
        )
        seqs = ", ".join(f"#{item.seq}" for item in segment.entries)
        verdict.check(
            verify_segment(segment),
            f"Entries {seqs} chain to that head with no entry changed, removed, added or reordered.",
        )
    devices = {
        (item.entry.user, item.entry.device): item.entry
        for item in proof.entries
        if isinstance(item.entry, DeviceRegistered)
    }
    accepted = [
        item.entry
        for item in proof.entries
        if isinstance(item.entry, MessageAccepted) and item.entry.message == proof.message
    ]
    if not verdict.check(
        len(accepted) == 1, f"The ledger records the acceptance of message {proof.message}."
    ):
        return verdict
    message = accepted[0]
    to = message.recipient if message.group is None else f"the group {message.group}"
    verdict.check(
        (message.sender, message.sender_device) in devices,
        f"The server accepted it on {_when(message.at)}, from {message.sender} "
        f"(device {message.sender_device}) for {to}, and stored {len(message.copies)} ciphertext copies.",
    )
    copies: dict[tuple[str, int], set[str]] = {}
    for copy in message.copies:
        copies.setdefault((copy.user, copy.device), set()).add(copy.sha256)
    for item in proof.entries:
        resent = item.entry
        if isinstance(resent, MessageResent) and resent.message == proof.message:
            # A repaired copy (after decrypt-failed) is as valid a ciphertext for its device.
            for copy in resent.copies:
                copies.setdefault((copy.user, copy.device), set()).add(copy.sha256)
    for item in proof.entries:
        receipt = item.entry
        if not isinstance(receipt, ReceiptRecorded) or receipt.message != proof.message:
            continue
        _check_receipt(verdict, receipt, devices, copies)
    if proof.evidence is not None:
        _check_evidence(verdict, proof, message, devices)
    return verdict


def _check_receipt(
    verdict: Verdict,
    receipt: ReceiptRecorded,
    devices: dict[tuple[str, int], DeviceRegistered],
    copies: dict[tuple[str, int], set[str]],
) -> None:
    device = devices.get((receipt.by, receipt.by_device))
    signed = device is not None and verify_signature(
        device.signing_key,
        receipt_signing_input(
            message=receipt.message,
            kind=receipt.kind,
            ciphertext_sha256=bytes.fromhex(receipt.sha256),
            device_time=receipt.device_time,
            by=receipt.by,
            by_device=receipt.by_device,
        ),
        receipt.signature,
    )
    expected = copies.get((receipt.by, receipt.by_device), set())
    verdict.check(
        signed and receipt.sha256 in expected,
        f"{receipt.kind.capitalize()} by {receipt.by} (device {receipt.by_device}) on {_when(receipt.at)}, "
        "a receipt signed by that device over the very ciphertext stored for it.",
    )


def _check_evidence(
    verdict: Verdict, proof: Proof, message: MessageAccepted, devices: dict[tuple[str, int], DeviceRegistered]
) -> None:
    evidence = proof.evidence
    assert evidence is not None
    sender = devices.get((message.sender, message.sender_device))
    if not verdict.check(
        sender is not None and sender.signing_key == evidence.signer_key,
        f"The text is signed with the identity key the ledger holds for {message.sender}'s device "
        f"{message.sender_device}.",
    ):
        return
    try:
        payload = verify_payload(evidence.payload, evidence.signature, evidence.signer_key)
    except CryptoError:
        verdict.check(False, "The sender's signature matches the text presented.")
        return
    if isinstance(payload, GroupPayload):
        same_conversation = message.group == payload.group_id
        audience = f"the group {payload.group_id}"
    else:
        conversation = payload.conversation
        same_conversation = (
            conversation.kind is ConversationKind.USER and conversation.id == message.recipient
        )
        audience = conversation.id
    verdict.check(
        (payload.sender.user, payload.sender.device) == (message.sender, message.sender_device)
        and payload.client_message_id == message.client_id
        and same_conversation,
        f"{message.sender} signed this text for {audience}, as message {message.client_id} "
        f"written on {_when(payload.sent_at_ms)} (sender's clock): «{payload.text}»",
    )
