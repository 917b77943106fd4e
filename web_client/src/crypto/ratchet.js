/**
 * The Double Ratchet state machine, without the AEAD and without I/O (docs/protocol-crypto.md §3.6).
 *
 * Signal's Double Ratchet with the KDFs of §3.4 and Lien's bounds on skipped
 * message keys (§3.6.4):
 * - one message may make the receiver skip at most `maxSkip` keys in one chain
 *   (else `TooManySkipped`);
 * - at most `maxSkippedKeys` keys are stored; the oldest go first;
 * - a skipped key is dropped once `skippedKeyMaxSteps` receiving DH ratchet steps
 *   happened after it was stored; as many past receiving ratchet keys are remembered
 *   to report replays.
 *
 * A message key leaves the state as soon as it is handed out. Callers that must be
 * able to roll back (a message that then fails to authenticate) work on `copy()`
 * and keep it only on success (§3.6.6).
 */
import { equalBytes, toHex } from './bytes.js';
import { DecryptionFailed, ReplayedMessage, SessionExhausted, TooManySkipped } from './errors.js';
import { KEY_SIZE, kdfCk, kdfRk, x25519, x25519Public } from './primitives.js';
import { MAX_COUNTER, RatchetHeader } from './wire.js';

/** @typedef {(size: number) => Uint8Array} RandomSource */

export const MAX_SKIP = 1000;
export const MAX_SKIPPED_KEYS = 2000;
export const SKIPPED_KEY_MAX_STEPS = 20;
/** No configured bound may exceed this: the stored state stays small. */
export const LIMITS_CEILING = 100_000;

/** Bounds on skipped message keys (§3.6.4): the receiver's local policy, not wire format. */
export class RatchetLimits {
  constructor({ maxSkip = MAX_SKIP, maxSkippedKeys = MAX_SKIPPED_KEYS, skippedKeyMaxSteps = SKIPPED_KEY_MAX_STEPS } = {}) {
    for (const value of [maxSkip, maxSkippedKeys, skippedKeyMaxSteps]) {
      if (!Number.isInteger(value) || value < 0 || value > LIMITS_CEILING) {
        throw new RangeError(`ratchet limits are integers from 0 to ${LIMITS_CEILING}`);
      }
    }
    if (maxSkippedKeys < maxSkip) throw new RangeError('maxSkippedKeys must be at least maxSkip');
    /** Keys one message may make the receiver skip in one chain. @readonly */
    this.maxSkip = maxSkip;
    /** Skipped keys kept in all; the oldest are dropped beyond this. @readonly */
    this.maxSkippedKeys = maxSkippedKeys;
    /** Receiving DH steps after which a skipped key is dropped; also past ratchet keys remembered. @readonly */
    this.skippedKeyMaxSteps = skippedKeyMaxSteps;
    Object.freeze(this);
  }
}

export const DEFAULT_LIMITS = new RatchetLimits();

/**
 * One stored skipped message key (an entry of MKSKIPPED).
 * @typedef {object} SkippedKey
 * @property {Uint8Array} ratchetKey
 * @property {number} messageNumber
 * @property {Uint8Array} messageKey
 * @property {number} storedAtStep value of `receiveSteps` when it was stored
 */

/** The MKSKIPPED map key of `(ratchet public key, N)`. */
export function skippedIndex(ratchetKey, messageNumber) {
  return `${toHex(ratchetKey)}:${messageNumber}`;
}

/**
 * One side of a Double Ratchet (§3.6.1). Field names spell out the specification's:
 * DHs = `sendingPrivate`/`sendingPublic`, DHr = `receivingKey`, RK = `rootKey`,
 * CKs/CKr = `sendingChainKey`/`receivingChainKey`, Ns/Nr/PN = `sendingLength`/
 * `receivingLength`/`previousSendingLength`, MKSKIPPED = `skipped` (insertion order),
 * previous_DHr = `previousReceivingKeys` (oldest first).
 */
export class RatchetState {
  /**
   * @param {object} fields
   * @param {Uint8Array} fields.rootKey
   * @param {Uint8Array} fields.sendingPrivate
   * @param {Uint8Array} [fields.sendingPublic] its public key, when already known (a copy)
   * @param {Uint8Array | null} fields.receivingKey
   * @param {Uint8Array | null} fields.sendingChainKey
   * @param {Uint8Array | null} fields.receivingChainKey
   * @param {number} [fields.sendingLength]
   * @param {number} [fields.receivingLength]
   * @param {number} [fields.previousSendingLength]
   * @param {number} [fields.receiveSteps]
   * @param {Uint8Array[]} [fields.previousReceivingKeys]
   * @param {Map<string, SkippedKey>} [fields.skipped]
   */
  constructor(fields) {
    this.rootKey = fields.rootKey;
    this.sendingPrivate = fields.sendingPrivate;
    this.sendingPublic = fields.sendingPublic ?? x25519Public(fields.sendingPrivate);
    this.receivingKey = fields.receivingKey;
    this.sendingChainKey = fields.sendingChainKey;
    this.receivingChainKey = fields.receivingChainKey;
    this.sendingLength = fields.sendingLength ?? 0;
    this.receivingLength = fields.receivingLength ?? 0;
    this.previousSendingLength = fields.previousSendingLength ?? 0;
    this.receiveSteps = fields.receiveSteps ?? 0;
    this.previousReceivingKeys = [...(fields.previousReceivingKeys ?? [])];
    this.skipped = new Map(fields.skipped ?? []);
  }

  // --- initialisation (§3.6.2)

  /** A: `DHs` fresh, `DHr = SPK_B`, `RK, CKs = KDF_RK(SK, DH(DHs, DHr))`. */
  static forInitiator(sharedSecret, peerRatchetKey, ownRatchetPrivate) {
    const [rootKey, sendingChainKey] = kdfRk(sharedSecret, x25519(ownRatchetPrivate, peerRatchetKey));
    return new RatchetState({
      rootKey, sendingPrivate: ownRatchetPrivate, receivingKey: peerRatchetKey,
      sendingChainKey, receivingChainKey: null,
    });
  }

  /** B: `DHs = SPK_B`, `RK = SK`, no chains until A's first message. */
  static forResponder(sharedSecret, signedPrekeyPrivate) {
    return new RatchetState({
      rootKey: sharedSecret, sendingPrivate: signedPrekeyPrivate, receivingKey: null,
      sendingChainKey: null, receivingChainKey: null,
    });
  }

  /**
   * A working copy: byte arrays are never changed in place, so sharing them is safe. Every
   * message makes one, so the sending public key is copied, not derived again (an X25519
   * base-point multiplication per message otherwise).
   */
  copy() {
    return new RatchetState(this);
  }

  // --- sending (§3.6.3)

  get canSend() {
    return this.sendingChainKey !== null;
  }

  /**
   * `header = (DHs, PN, Ns); CKs, MK = KDF_CK(CKs); Ns += 1`.
   * @returns {[RatchetHeader, Uint8Array]} the header and the message key
   */
  nextSendingKey() {
    if (this.sendingChainKey === null) {
      throw new Error('this side cannot send before it has received the first message');
    }
    if (this.sendingLength > MAX_COUNTER) throw new SessionExhausted();
    const header = new RatchetHeader(this.sendingPublic, this.previousSendingLength, this.sendingLength);
    const [chainKey, messageKey] = kdfCk(this.sendingChainKey);
    this.sendingChainKey = chainKey;
    this.sendingLength += 1;
    return [header, messageKey];
  }

  // --- receiving (§3.6.4, §3.6.5)

  /**
   * The message key for `header`, after any skip and DH ratchet step it needs (§3.6.5).
   * Throws `ReplayedMessage`, `TooManySkipped`, `DecryptionFailed`, or `InvalidKey` for
   * a small-order ratchet key. The state may be half-updated when it throws: work on a copy.
   * @param {RatchetHeader} header
   * @param {RandomSource} randomSource
   * @param {RatchetLimits} limits
   */
  messageKeyFor(header, randomSource, limits) {
    const index = skippedIndex(header.ratchetKey, header.messageNumber);
    const stored = this.skipped.get(index);
    if (stored !== undefined) {
      this.skipped.delete(index);
      return stored.messageKey;
    }
    if (this.receivingKey !== null && equalBytes(header.ratchetKey, this.receivingKey)) {
      if (this.receivingChainKey === null) throw new DecryptionFailed(); // SPK_B never sends
      if (header.messageNumber < this.receivingLength) throw new ReplayedMessage();
    } else if (this.previousReceivingKeys.some((key) => equalBytes(key, header.ratchetKey))) {
      throw new ReplayedMessage();
    } else {
      this.#skipUntil(header.previousChainLength, limits);
      this.#dhRatchet(header.ratchetKey, randomSource, limits);
    }
    this.#skipUntil(header.messageNumber, limits);
    const [chainKey, messageKey] = kdfCk(/** @type {Uint8Array} */ (this.receivingChainKey));
    this.receivingChainKey = chainKey;
    this.receivingLength += 1;
    return messageKey;
  }

  /** SKIP(until) of §3.6.5. */
  #skipUntil(until, limits) {
    if (this.receivingChainKey === null || this.receivingKey === null) return;
    if (until - this.receivingLength > limits.maxSkip) throw new TooManySkipped();
    let chainKey = this.receivingChainKey;
    while (this.receivingLength < until) {
      const [nextChainKey, messageKey] = kdfCk(chainKey);
      chainKey = nextChainKey;
      this.skipped.set(skippedIndex(this.receivingKey, this.receivingLength), {
        ratchetKey: this.receivingKey,
        messageNumber: this.receivingLength,
        messageKey,
        storedAtStep: this.receiveSteps,
      });
      this.receivingLength += 1;
    }
    this.receivingChainKey = chainKey;
    for (const oldest of this.skipped.keys()) {
      if (this.skipped.size <= limits.maxSkippedKeys) break;
      this.skipped.delete(oldest);
    }
  }

  /** The DH ratchet step of §3.6.5, on a new ratchet key from the peer. */
  #dhRatchet(ratchetKey, randomSource, limits) {
    if (this.receivingKey !== null) {
      this.previousReceivingKeys.push(this.receivingKey);
      const excess = this.previousReceivingKeys.length - limits.skippedKeyMaxSteps;
      if (excess > 0) this.previousReceivingKeys.splice(0, excess);
    }
    this.previousSendingLength = this.sendingLength;
    this.sendingLength = 0;
    this.receivingLength = 0;
    this.receivingKey = ratchetKey;
    [this.rootKey, this.receivingChainKey] = kdfRk(this.rootKey, x25519(this.sendingPrivate, ratchetKey));
    this.sendingPrivate = randomSource(KEY_SIZE);
    this.sendingPublic = x25519Public(this.sendingPrivate);
    [this.rootKey, this.sendingChainKey] = kdfRk(this.rootKey, x25519(this.sendingPrivate, ratchetKey));
    this.receiveSteps += 1;
    for (const [index, key] of this.skipped) {
      if (this.receiveSteps - key.storedAtStep > limits.skippedKeyMaxSteps) this.skipped.delete(index);
    }
  }

  toString() {
    return `RatchetState(Ns=${this.sendingLength}, Nr=${this.receivingLength}, `
      + `PN=${this.previousSendingLength}, steps=${this.receiveSteps}, skipped=${this.skipped.size})`;
  }
}
