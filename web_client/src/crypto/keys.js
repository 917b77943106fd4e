/**
 * A device's long-term keys and prekeys (docs/protocol-crypto.md §3.1 to §3.3).
 *
 * Every device has an *identity*: an Ed25519 signing key pair and an X25519
 * key-exchange key pair, generated independently (neither is converted from the
 * other). It publishes a *signed prekey* (§3.2) and *one-time prekeys* (§3.3).
 *
 * Private keys live in private class fields: they never show in `console.log`,
 * `JSON.stringify` or an inspector's summary. Public keys are raw 32-byte
 * Uint8Arrays, validated whenever a typed object is built from them.
 */
import { sodium } from './sodium.js';
import { concat, equalBytes, isBytes, toHex, u32, utf8 } from './bytes.js';
import { InvalidKey } from './errors.js';
import { EXCHANGE_KEY_SIZE, isCanonicalExchangeKey, randomBytes, x25519Public } from './primitives.js';

export const SIGNING_SEED_SIZE = 32;
export const SIGNING_KEY_SIZE = 32;
export const SIGNATURE_SIZE = 64;
export const EXCHANGE_PRIVATE_SIZE = 32;
/** Prekey ids are 0 … 2^31 − 1, signed as uint32 (§3.2). */
export const PREKEY_ID_MAX = 2 ** 31 - 1;
/** Prefix of the message an identity key signs to vouch for a prekey (§3.2). */
export const SIGNED_PREKEY_DOMAIN = utf8('lien-signed-prekey-v1\0');

/** Whether `prekeyId` is an integer 0 … 2^31 − 1. */
export function isPrekeyId(prekeyId) {
  return Number.isInteger(prekeyId) && prekeyId >= 0 && prekeyId <= PREKEY_ID_MAX;
}

/** @param {number} prekeyId */
export function checkPrekeyId(prekeyId) {
  if (!isPrekeyId(prekeyId)) throw new RangeError(`prekey ids are integers from 0 to ${PREKEY_ID_MAX}`);
  return prekeyId;
}

function exchangePrivate(privateKey) {
  if (!isBytes(privateKey, EXCHANGE_PRIVATE_SIZE)) {
    throw new InvalidKey(`An X25519 private key is ${EXCHANGE_PRIVATE_SIZE} bytes.`);
  }
  return Uint8Array.from(privateKey);
}

function short(key) {
  return `${toHex(key.subarray(0, 8))}…`;
}

/** Ed25519 verification that never throws: false for a bad size, point or signature. */
export function verifyEd25519(signingKey, message, signature) {
  if (!isBytes(signingKey, SIGNING_KEY_SIZE) || !isBytes(signature, SIGNATURE_SIZE)) return false;
  try {
    return sodium.crypto_sign_verify_detached(signature, message, signingKey) === true;
  } catch {
    return false;
  }
}

// --- identity (§3.1)

/** A device's public identity: Ed25519 `signingKey` and X25519 `exchangeKey` (both validated). */
export class PublicIdentity {
  /** @param {Uint8Array} signingKey @param {Uint8Array} exchangeKey */
  constructor(signingKey, exchangeKey) {
    if (!isBytes(signingKey, SIGNING_KEY_SIZE)) {
      throw new InvalidKey(`An Ed25519 public key is ${SIGNING_KEY_SIZE} bytes.`);
    }
    if (!isCanonicalExchangeKey(exchangeKey)) {
      throw new InvalidKey('The X25519 public key is not a canonical 32-byte encoding.');
    }
    /** @readonly */ this.signingKey = Uint8Array.from(signingKey);
    /** @readonly */ this.exchangeKey = Uint8Array.from(exchangeKey);
    Object.freeze(this);
  }

  /** @param {PublicIdentity} other */
  equals(other) {
    return other instanceof PublicIdentity
      && equalBytes(this.signingKey, other.signingKey)
      && equalBytes(this.exchangeKey, other.exchangeKey);
  }

  /** Whether `signature` is this identity's Ed25519 signature of `message`; never throws. */
  verify(message, signature) {
    return verifyEd25519(this.signingKey, message, signature);
  }

  toString() {
    return `PublicIdentity(signingKey=${short(this.signingKey)}, exchangeKey=${short(this.exchangeKey)})`;
  }
}

/** A device's private identity: an Ed25519 signing key and an X25519 private key. */
export class IdentityKeyPair {
  #signingSeed;
  #signingSecret;
  #exchangePrivate;

  /** Use {@link IdentityKeyPair.generate} or {@link IdentityKeyPair.fromSecretBytes}. */
  constructor(signingSeed, exchangePrivateKey) {
    if (!isBytes(signingSeed, SIGNING_SEED_SIZE)) {
      throw new InvalidKey(`An Ed25519 seed is ${SIGNING_SEED_SIZE} bytes.`);
    }
    this.#exchangePrivate = exchangePrivate(exchangePrivateKey);
    this.#signingSeed = Uint8Array.from(signingSeed);
    const signing = sodium.crypto_sign_seed_keypair(this.#signingSeed);
    this.#signingSecret = signing.privateKey;
    /** @readonly */
    this.public = new PublicIdentity(signing.publicKey, x25519Public(this.#exchangePrivate));
    Object.freeze(this);
  }

  /** Two fresh, independent key pairs from libsodium's random source. */
  static generate() {
    return new IdentityKeyPair(randomBytes(SIGNING_SEED_SIZE), randomBytes(EXCHANGE_PRIVATE_SIZE));
  }

  /** Rebuild from what {@link IdentityKeyPair#secretBytes} returned. */
  static fromSecretBytes(signingSeed, exchangePrivateKey) {
    return new IdentityKeyPair(signingSeed, exchangePrivateKey);
  }

  /** `[signingSeed, exchangePrivate]`, for the keystore only; handle with care. */
  secretBytes() {
    return [Uint8Array.from(this.#signingSeed), Uint8Array.from(this.#exchangePrivate)];
  }

  /** The X25519 private key, for X3DH (§3.5). */
  exchangePrivateBytes() {
    return Uint8Array.from(this.#exchangePrivate);
  }

  /** The 64-byte Ed25519 signature of `message` (`crypto_sign_detached`). */
  sign(message) {
    return sodium.crypto_sign_detached(message, this.#signingSecret);
  }

  toString() {
    return `IdentityKeyPair(public=${this.public})`;
  }
}

// --- signed prekey (§3.2)

/** `"lien-signed-prekey-v1\0" || uint32(id) || prekey` (58 bytes): what the identity key signs. */
export function signedPrekeyMessage(prekeyId, prekey) {
  checkPrekeyId(prekeyId);
  if (!isBytes(prekey, EXCHANGE_KEY_SIZE)) {
    throw new InvalidKey(`A prekey is a ${EXCHANGE_KEY_SIZE}-byte X25519 public key.`);
  }
  return concat(SIGNED_PREKEY_DOMAIN, u32(prekeyId), prekey);
}

/**
 * Whether `signature` vouches for `prekey` under `prekeyId` (§3.2). Never throws:
 * false for an id out of range, a non-canonical prekey, wrong sizes or a bad signature.
 */
export function verifySignedPrekey(identitySigningKey, prekeyId, prekey, signature) {
  if (!isPrekeyId(prekeyId) || !isCanonicalExchangeKey(prekey)) return false;
  return verifyEd25519(identitySigningKey, signedPrekeyMessage(prekeyId, prekey), signature);
}

/** An X25519 prekey with its id and the identity key's signature over both (§3.2). */
export class SignedPrekeyPair {
  #privateKey;

  /** Use {@link SignedPrekeyPair.generate}, `fromSecretBytes` or `fromPrivateBytes`. */
  constructor(prekeyId, privateKey, signature) {
    if (!isBytes(signature, SIGNATURE_SIZE)) throw new InvalidKey(`A signature is ${SIGNATURE_SIZE} bytes.`);
    /** @readonly */ this.prekeyId = checkPrekeyId(prekeyId);
    this.#privateKey = exchangePrivate(privateKey);
    /** @readonly */ this.publicKey = x25519Public(this.#privateKey);
    /** @readonly */ this.signature = Uint8Array.from(signature);
    Object.freeze(this);
  }

  /** A fresh signed prekey, signed by `identity`. */
  static generate(prekeyId, identity) {
    return SignedPrekeyPair.fromPrivateBytes(prekeyId, randomBytes(EXCHANGE_PRIVATE_SIZE), identity);
  }

  /** Rebuild from the keystore: id, private key and the stored signature. */
  static fromSecretBytes(prekeyId, privateKey, signature) {
    return new SignedPrekeyPair(prekeyId, privateKey, signature);
  }

  /** From a given private key, signed now by `identity` (Ed25519 is deterministic). */
  static fromPrivateBytes(prekeyId, privateKey, identity) {
    const message = signedPrekeyMessage(prekeyId, x25519Public(exchangePrivate(privateKey)));
    return new SignedPrekeyPair(prekeyId, privateKey, identity.sign(message));
  }

  /** The raw X25519 private key, for the keystore and X3DH only. */
  privateBytes() {
    return Uint8Array.from(this.#privateKey);
  }

  toString() {
    return `SignedPrekeyPair(prekeyId=${this.prekeyId}, publicKey=${short(this.publicKey)})`;
  }
}

// --- one-time prekeys (§3.3)

/** An X25519 prekey the server hands to at most one peer (§3.3). */
export class OneTimePrekeyPair {
  #privateKey;

  constructor(prekeyId, privateKey) {
    /** @readonly */ this.prekeyId = checkPrekeyId(prekeyId);
    this.#privateKey = exchangePrivate(privateKey);
    /** @readonly */ this.publicKey = x25519Public(this.#privateKey);
    Object.freeze(this);
  }

  static generate(prekeyId) {
    return new OneTimePrekeyPair(prekeyId, randomBytes(EXCHANGE_PRIVATE_SIZE));
  }

  /** `count` fresh prekeys with ids `startId` … `startId + count − 1`. */
  static generateBatch(startId, count) {
    if (!Number.isInteger(count) || count < 0) throw new RangeError('count must be a non-negative integer');
    checkPrekeyId(startId);
    if (count) checkPrekeyId(startId + count - 1);
    return Array.from({ length: count }, (_, offset) => OneTimePrekeyPair.generate(startId + offset));
  }

  static fromPrivateBytes(prekeyId, privateKey) {
    return new OneTimePrekeyPair(prekeyId, privateKey);
  }

  /** The raw X25519 private key, for the keystore and X3DH only. */
  privateBytes() {
    return Uint8Array.from(this.#privateKey);
  }

  toString() {
    return `OneTimePrekeyPair(prekeyId=${this.prekeyId}, publicKey=${short(this.publicKey)})`;
  }
}
