"""What can go wrong when a device opens a message or its keystore (protocol-crypto §3.9, protocol §8.2).

Specified in docs/protocol-crypto.md §3.9 and docs/protocol-group.md §3.17.10; listed in
docs/protocol.md §8.2.

These errors happen on the device, never on the server: the server only
routes ciphertext. Each type has a stable ``code`` that the SDK can record
(for instance to explain why a message could not be shown) and a plain-words
``public_message``. None of them carries key material, plaintext or a
password, and their messages never include library error details.

The codes are distinct from the server's error codes in
:mod:`lien.protocol.errors`, so one table can hold both.
"""

from __future__ import annotations

from typing import ClassVar


class CryptoError(Exception):
    """Base of every end-to-end encryption and keystore failure."""

    code: ClassVar[str] = "crypto-error"
    public_message: ClassVar[str] = "A cryptographic check failed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.public_message
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


# --- keys ----------------------------------------------------------------


class InvalidKey(CryptoError):
    """A public key has the wrong size, a non-canonical encoding, or is of small order."""

    code = "invalid-key"
    public_message = "A public key is not valid."


# --- messages (format 2: §3.7, §3.8) ------------------------------------------


class UnsupportedFormat(CryptoError):
    """The body's first byte names a message format this version does not know."""

    code = "unsupported-format"
    public_message = "The message uses a format this version cannot read."


class DecryptionFailed(CryptoError):
    """The body is empty, truncated, too large, or was altered (the MAC does not verify)."""

    code = "decryption-failed"
    public_message = "The message could not be decrypted."


class MalformedPayload(DecryptionFailed):
    """The body decrypted, but the plaintext is not a valid signed payload.

    Anyone can encrypt to a device's public key, so this means a broken or
    hostile sender, not transport damage. It is a kind of
    :class:`DecryptionFailed` so that code handling "could not read" catches it.
    """

    code = "malformed-payload"
    public_message = "The message decrypted to something that is not a valid message."


class BadSignature(CryptoError):
    """The Ed25519 signature inside does not verify with the sender device's identity key."""

    code = "bad-signature"
    public_message = "The message signature is not valid for the sender's device."


class SenderMismatch(CryptoError):
    """The signed sender or sender device differs from the one the server reported."""

    code = "sender-mismatch"
    public_message = "The message claims a different sender than the one that delivered it."


class WrongRecipient(CryptoError):
    """The signed payload is addressed to another user or another device."""

    code = "wrong-recipient"
    public_message = "The message was not addressed to this device."


class MessageTooLarge(CryptoError):
    """Raised when sealing: the body would exceed ``limits.MAX_COPY_BYTES``."""

    code = "message-too-large"
    public_message = "The message is too long to send."


# --- sessions: X3DH and Double Ratchet (docs/protocol-crypto.md §3.5 to §3.9) ---


class MalformedMessage(DecryptionFailed):
    """A format-2 body does not parse: unknown type, wrong length, a non-canonical key, trailing bytes."""

    code = "malformed-message"
    public_message = "The message is damaged and cannot be read."


class ReplayedMessage(DecryptionFailed):
    """The message's key was already used (the message was already decrypted) or has been discarded."""

    code = "replayed-message"
    public_message = "This message was already received, or is too old to be decrypted."


class TooManySkipped(DecryptionFailed):
    """Decrypting the message would need more skipped message keys than the session allows."""

    code = "too-many-skipped"
    public_message = "Too many messages were lost before this one; it cannot be decrypted."


class UnknownPrekey(DecryptionFailed):
    """A prekey message names a signed or one-time prekey this device no longer has (or never had)."""

    code = "unknown-prekey"
    public_message = "The message was encrypted to a key this device no longer has."


class NoSession(DecryptionFailed):
    """A normal ratchet message arrived for which this device holds no session."""

    code = "no-session"
    public_message = "The message belongs to a conversation key this device does not have."


class SessionMismatch(DecryptionFailed):
    """A prekey message was given to a session it does not belong to (another session set-up)."""

    code = "session-mismatch"
    public_message = "The message belongs to another encrypted session."


class IdentityMismatch(CryptoError):
    """A prekey message carries identity keys other than the ones listed for the sending device."""

    code = "identity-mismatch"
    public_message = "The sender's device keys differ from the ones on record."


class BadPrekeySignature(CryptoError):
    """A peer's key bundle holds a signed prekey whose signature does not verify (§3.2)."""

    code = "bad-prekey-signature"
    public_message = "The recipient's published keys are not validly signed."


class ConversationMismatch(CryptoError):
    """The signed payload names another conversation than the one the server delivered it in."""

    code = "conversation-mismatch"
    public_message = "The message claims a different conversation than the one that delivered it."


class SessionExhausted(CryptoError):
    """A chain reached its largest message number (2**32 - 1); a new session is needed."""

    code = "session-exhausted"
    public_message = "This encrypted session is used up; a new one must be set up."


# --- keystore (§3.16) -----------------------------------------------------


class KeystoreError(CryptoError):
    """Base of the local keystore's failures."""

    code = "keystore-error"
    public_message = "The local keystore cannot be used."


class KeystoreLocked(KeystoreError):
    """The keystore is not unlocked: it was closed, or the password was wrong."""

    code = "keystore-locked"
    public_message = "The local keystore is locked."


class WrongPassword(KeystoreLocked):
    """The password does not unlock the keystore.

    An authenticated-encryption failure cannot tell a wrong password from a
    ciphertext that was altered on disk; both end up here.
    """

    code = "wrong-password"
    public_message = "The password does not unlock the local keystore."


class KeystoreCorrupt(KeystoreError):
    """The keystore file is damaged, of an unknown version, or inconsistent."""

    code = "keystore-corrupt"
    public_message = "The local keystore file is damaged."


class SessionStateCorrupt(KeystoreCorrupt):
    """A stored session state does not decode or is inconsistent (docs/protocol-crypto.md §3.6.7)."""

    code = "session-state-corrupt"
    public_message = "A stored encrypted session is damaged."


class KeystoreExists(KeystoreError):
    """A keystore already exists where a new one was to be created."""

    code = "keystore-exists"
    public_message = "A keystore already exists in this place."


# --- groups: sender keys (docs/protocol-group.md §3.17) ---------------------------


class UnknownSenderKey(DecryptionFailed):
    """A group message names a sender key (``key_id``) this device does not hold for its sender device.

    The distribution has not arrived yet, was lost, or the key was rotated
    out; the SDK may ask the sender device to send its current one again.
    """

    code = "unknown-sender-key"
    public_message = "The message was encrypted with a group key this device has not received."


class InvalidDistribution(CryptoError):
    """A sender-key distribution does not parse, or conflicts with a key already held under its id."""

    code = "invalid-distribution"
    public_message = "A group key received from a member's device is not valid."


class GroupStateCorrupt(KeystoreCorrupt):
    """A stored sender-key state does not decode or is inconsistent (docs/protocol-group.md §3.17.8)."""

    code = "group-state-corrupt"
    public_message = "A stored group key is damaged."
