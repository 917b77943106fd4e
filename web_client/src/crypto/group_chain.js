/**
 * Sender-key chains and their bounds, without I/O (docs/protocol-group.md §3.17.2, §3.17.3,
 * §3.17.7; `lien/crypto/group_chain.py`).
 *
 * A sender key is one symmetric chain per (group, sender device), stepped with the KDF_CK
 * of §3.4.4: `message key = HMAC(CK, 0x01)`, `next CK = HMAC(CK, 0x02)`. The sender holds
 * the chain key of its next iteration and an Ed25519 key pair of its own
 * ({@link SenderSigningKey}); each member device holds a {@link ReceiverChain} per sender key
 * it was given, which only moves forward and keeps a bounded number of skipped message keys
 * ({@link SenderKeyLimits}).
 */
import { sodium } from './sodium.js';
import { isBytes, toHex } from './bytes.js';
import { InvalidKey, ReplayedMessage, TooManySkipped } from './errors.js';
import { verifyEd25519 } from './keys.js';
import { KEY_SIZE, kdfCk } from './primitives.js';

export const MAX_SKIP = 1000;
export const MAX_SKIPPED_KEYS = 2000;
/** No configured bound may exceed this: the stored state stays small. */
export const LIMITS_CEILING = 100_000;
/** Sender keys a member device keeps per sender device: the current one and the previous one (§3.17.9). */
export const MAX_RECEIVED_KEYS = 2;
/** Iteration of a chain whose last message (iteration 2^32 − 1) was used: nothing more can be sent. */
export const END_OF_CHAIN = 2 ** 32;

/** Bounds on a receiving chain (§3.17.7): the receiver's local policy, not wire format. */
export class SenderKeyLimits {
  constructor({ maxSkip = MAX_SKIP, maxSkippedKeys = MAX_SKIPPED_KEYS } = {}) {
    for (const value of [maxSkip, maxSkippedKeys]) {
      if (!Number.isInteger(value) || value < 0 || value > LIMITS_CEILING) {
        throw new RangeError(`sender-key limits are integers from 0 to ${LIMITS_CEILING}`);
      }
    }
    if (maxSkippedKeys < maxSkip) throw new RangeError('maxSkippedKeys must be at least maxSkip');
    /** Iterations one message may make the receiver skip. @readonly */
    this.maxSkip = maxSkip;
    /** Skipped message keys kept per sender key; the lowest iterations go first. @readonly */
    this.maxSkippedKeys = maxSkippedKeys;
    Object.freeze(this);
  }
}

export const DEFAULT_SENDER_KEY_LIMITS = new SenderKeyLimits();

/**
 * The Ed25519 key pair of one sender key, used for nothing else (§3.17.2). Every member
 * device learns the public half from the distribution and checks each body with it.
 * The seed and secret key live in private fields; `toString` shows the public key only.
 */
export class SenderSigningKey {
  #seed;
  #secret;

  /** @param {Uint8Array} seed 32 bytes (`crypto_sign_seed_keypair`) */
  constructor(seed) {
    if (!isBytes(seed, KEY_SIZE)) throw new InvalidKey('An Ed25519 seed is 32 bytes.');
    this.#seed = Uint8Array.from(seed);
    const pair = sodium.crypto_sign_seed_keypair(this.#seed);
    this.#secret = pair.privateKey;
    /** @readonly */ this.publicKey = pair.publicKey;
    Object.freeze(this);
  }

  /** The 32-byte seed, for the keystore only. */
  seedBytes() {
    return Uint8Array.from(this.#seed);
  }

  /** The 64-byte Ed25519 signature of `message`. */
  sign(message) {
    return sodium.crypto_sign_detached(message, this.#secret);
  }

  toString() {
    return `SenderSigningKey(publicKey=${toHex(this.publicKey.subarray(0, 8))}…)`;
  }

  toJSON() {
    return this.toString();
  }
}

/**
 * One sender key as a member device holds it (§3.17.7). `chainKey` is the chain key of
 * `iteration`, the next iteration not yet derived; `skipped` maps earlier iterations whose
 * messages have not arrived to their message keys, lowest first. Nothing here can derive
 * the key of an iteration below `iteration` that is not in `skipped`.
 */
export class ReceiverChain {
  /**
   * @param {{keyId: number, signingKey: Uint8Array, iteration: number, chainKey: Uint8Array,
   *   skipped?: Map<number, Uint8Array>}} fields
   */
  constructor({ keyId, signingKey, iteration, chainKey, skipped = new Map() }) {
    this.keyId = keyId;
    this.signingKey = signingKey;
    this.iteration = iteration;
    this.chainKey = chainKey;
    /** @type {Map<number, Uint8Array>} kept in increasing iteration order */
    this.skipped = new Map(skipped);
  }

  /** A working copy: byte arrays are never changed in place, so sharing them is safe. */
  copy() {
    return new ReceiverChain(this);
  }

  /** Whether `signature` is this sender key's signature of `message`. */
  verify(message, signature) {
    return verifyEd25519(this.signingKey, message, signature);
  }

  /**
   * The message key of `iteration`, skipping (and keeping) the keys of any iterations before
   * it. `ReplayedMessage` when that key was used or dropped (or lies before the iteration this
   * chain was installed at), `TooManySkipped` past `limits.maxSkip`. The chain may be
   * half-updated when this throws: work on a {@link ReceiverChain#copy}.
   * @param {number} iteration @param {SenderKeyLimits} limits
   */
  messageKeyFor(iteration, limits) {
    const stored = this.skipped.get(iteration);
    if (stored !== undefined) {
      this.skipped.delete(iteration);
      return stored;
    }
    if (iteration < this.iteration) throw new ReplayedMessage();
    if (iteration - this.iteration > limits.maxSkip) throw new TooManySkipped();
    let chainKey = this.chainKey;
    while (this.iteration < iteration) {
      const [next, messageKey] = kdfCk(chainKey);
      this.skipped.set(this.iteration, messageKey);
      chainKey = next;
      this.iteration += 1;
    }
    for (const lowest of this.skipped.keys()) {
      if (this.skipped.size <= limits.maxSkippedKeys) break;
      this.skipped.delete(lowest);
    }
    const [next, messageKey] = kdfCk(chainKey);
    this.chainKey = next;
    this.iteration += 1;
    return messageKey;
  }

  toString() {
    return `ReceiverChain(keyId=${this.keyId}, iteration=${this.iteration}, skipped=${this.skipped.size})`;
  }

  toJSON() {
    return this.toString();
  }
}
