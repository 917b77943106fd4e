/**
 * What can go wrong when a device opens a message or its keystore (docs/protocol-crypto.md §3.9).
 *
 * Each class has the same stable `code` as `lien/crypto/errors.py` and a plain-words
 * `publicMessage`; the class tree is the same too (`MalformedMessage` is a
 * `DecryptionFailed`, `SessionStateCorrupt` a `KeystoreCorrupt`, …). None carries key
 * material, plaintext or library error details.
 *
 * Misuse by the calling code (a payload addressed to another device than the
 * session's, a signer that is not the session's own identity) throws a plain
 * `TypeError` or `RangeError`: programming errors are not dressed up as protocol errors.
 */

export class CryptoError extends Error {
  static code = 'crypto-error';
  static publicMessage = 'A cryptographic check failed.';

  /** @param {string} [message] defaults to the class's public message */
  constructor(message) {
    const type = /** @type {typeof CryptoError} */ (new.target);
    super(message ?? type.publicMessage);
    this.name = type.name;
  }

  /** The stable code, e.g. `decryption-failed`. */
  get code() {
    return /** @type {typeof CryptoError} */ (this.constructor).code;
  }
}

// --- keys

export class InvalidKey extends CryptoError {
  static code = 'invalid-key';
  static publicMessage = 'A public key is not valid.';
}

// --- messages (§3.7, §3.8)

export class UnsupportedFormat extends CryptoError {
  static code = 'unsupported-format';
  static publicMessage = 'The message uses a format this version cannot read.';
}

export class DecryptionFailed extends CryptoError {
  static code = 'decryption-failed';
  static publicMessage = 'The message could not be decrypted.';
}

export class MalformedPayload extends DecryptionFailed {
  static code = 'malformed-payload';
  static publicMessage = 'The message decrypted to something that is not a valid message.';
}

export class BadSignature extends CryptoError {
  static code = 'bad-signature';
  static publicMessage = "The message signature is not valid for the sender's device.";
}

export class SenderMismatch extends CryptoError {
  static code = 'sender-mismatch';
  static publicMessage = 'The message claims a different sender than the one that delivered it.';
}

export class WrongRecipient extends CryptoError {
  static code = 'wrong-recipient';
  static publicMessage = 'The message was not addressed to this device.';
}

export class MessageTooLarge extends CryptoError {
  static code = 'message-too-large';
  static publicMessage = 'The message is too long to send.';
}

// --- sessions: X3DH and Double Ratchet (§3.5 to §3.7)

export class MalformedMessage extends DecryptionFailed {
  static code = 'malformed-message';
  static publicMessage = 'The message is damaged and cannot be read.';
}

export class ReplayedMessage extends DecryptionFailed {
  static code = 'replayed-message';
  static publicMessage = 'This message was already received, or is too old to be decrypted.';
}

export class TooManySkipped extends DecryptionFailed {
  static code = 'too-many-skipped';
  static publicMessage = 'Too many messages were lost before this one; it cannot be decrypted.';
}

export class UnknownPrekey extends DecryptionFailed {
  static code = 'unknown-prekey';
  static publicMessage = 'The message was encrypted to a key this device no longer has.';
}

export class NoSession extends DecryptionFailed {
  static code = 'no-session';
  static publicMessage = 'The message belongs to a conversation key this device does not have.';
}

export class SessionMismatch extends DecryptionFailed {
  static code = 'session-mismatch';
  static publicMessage = 'The message belongs to another encrypted session.';
}

export class IdentityMismatch extends CryptoError {
  static code = 'identity-mismatch';
  static publicMessage = "The sender's device keys differ from the ones on record.";
}

export class BadPrekeySignature extends CryptoError {
  static code = 'bad-prekey-signature';
  static publicMessage = "The recipient's published keys are not validly signed.";
}

export class ConversationMismatch extends CryptoError {
  static code = 'conversation-mismatch';
  static publicMessage = 'The message claims a different conversation than the one that delivered it.';
}

export class SessionExhausted extends CryptoError {
  static code = 'session-exhausted';
  static publicMessage = 'This encrypted session is used up; a new one must be set up.';
}

// --- groups (docs/protocol-group.md §3.17): the classes and codes only, for now; the group
// crypto itself comes to the browser in a later version.

export class UnknownSenderKey extends DecryptionFailed {
  static code = 'unknown-sender-key';
  static publicMessage = 'The message was encrypted with a group key this device has not received.';
}

export class InvalidDistribution extends CryptoError {
  static code = 'invalid-distribution';
  static publicMessage = "A group key received from a member's device is not valid.";
}

// --- keystore

export class KeystoreError extends CryptoError {
  static code = 'keystore-error';
  static publicMessage = 'The local keystore cannot be used.';
}

export class KeystoreLocked extends KeystoreError {
  static code = 'keystore-locked';
  static publicMessage = 'The local keystore is locked.';
}

export class WrongPassword extends KeystoreLocked {
  static code = 'wrong-password';
  static publicMessage = 'The password does not unlock the local keystore.';
}

export class KeystoreCorrupt extends KeystoreError {
  static code = 'keystore-corrupt';
  static publicMessage = 'The local keystore file is damaged.';
}

export class SessionStateCorrupt extends KeystoreCorrupt {
  static code = 'session-state-corrupt';
  static publicMessage = 'A stored encrypted session is damaged.';
}

export class KeystoreExists extends KeystoreError {
  static code = 'keystore-exists';
  static publicMessage = 'A keystore already exists in this place.';
}

export class GroupStateCorrupt extends KeystoreCorrupt {
  static code = 'group-state-corrupt';
  static publicMessage = 'A stored group key is damaged.';
}
