/**
 * X3DH session set-up with separate Ed25519 and X25519 identity keys (docs/protocol-crypto.md §3.5).
 *
 * - The identity key in the DH computations is the X25519 one; the Ed25519 one only signs (§3.1).
 * - The signed prekey is verified over `"lien-signed-prekey-v1\0" || uint32(id) || SPK` (§3.2).
 * - `SK = HKDF(ikm = 0xFF*32 || DH1 || DH2 || DH3 [|| DH4], salt = 0^32, info = "Lien X3DH v2", 32)` (§3.5.3).
 * - `AD = IKs_A || IKx_A || IKs_B || IKx_B`, 128 bytes, initiator first (§3.5.4).
 *
 * This module only computes: no state, no I/O.
 */
import { concat, fromBase64 } from './bytes.js';
import { BadPrekeySignature, InvalidKey } from './errors.js';
import { PublicIdentity, checkPrekeyId, verifySignedPrekey } from './keys.js';
import { KEY_SIZE, X3DH_INFO, ZERO_SALT, hkdfSha256, isCanonicalExchangeKey, x25519 } from './primitives.js';

/** X3DH's F for X25519: 32 bytes of 0xFF before the DH outputs. */
export const X3DH_PAD = new Uint8Array(32).fill(0xff);
export const ASSOCIATED_DATA_SIZE = 128;

/** A peer's one-time prekey as handed out by the server (§3.3). */
export class OneTimePrekeyPublic {
  constructor(prekeyId, publicKey) {
    /** @readonly */ this.prekeyId = checkPrekeyId(prekeyId);
    if (!isCanonicalExchangeKey(publicKey)) {
      throw new InvalidKey('A one-time prekey is not a canonical X25519 public key.');
    }
    /** @readonly */ this.publicKey = Uint8Array.from(publicKey);
    Object.freeze(this);
  }
}

/**
 * What the initiator needs to open a session with one device (§3.5.1). A bundle
 * that exists has a signed prekey vouched for by `identity`: the constructor
 * throws `BadPrekeySignature` otherwise, and `InvalidKey` for a non-canonical key.
 */
export class PrekeyBundle {
  /**
   * @param {PublicIdentity} identity
   * @param {number} signedPrekeyId
   * @param {Uint8Array} signedPrekey
   * @param {Uint8Array} signedPrekeySignature
   * @param {OneTimePrekeyPublic | null} [oneTimePrekey]
   */
  constructor(identity, signedPrekeyId, signedPrekey, signedPrekeySignature, oneTimePrekey = null) {
    if (!(identity instanceof PublicIdentity)) throw new TypeError('identity must be a PublicIdentity');
    if (oneTimePrekey !== null && !(oneTimePrekey instanceof OneTimePrekeyPublic)) {
      throw new TypeError('oneTimePrekey must be a OneTimePrekeyPublic or null');
    }
    checkPrekeyId(signedPrekeyId);
    if (!isCanonicalExchangeKey(signedPrekey)) {
      throw new InvalidKey('The signed prekey is not a canonical X25519 public key.');
    }
    if (!verifySignedPrekey(identity.signingKey, signedPrekeyId, signedPrekey, signedPrekeySignature)) {
      throw new BadPrekeySignature();
    }
    /** @readonly */ this.identity = identity;
    /** @readonly */ this.signedPrekeyId = signedPrekeyId;
    /** @readonly */ this.signedPrekey = Uint8Array.from(signedPrekey);
    /** @readonly */ this.signedPrekeySignature = Uint8Array.from(signedPrekeySignature);
    /** @readonly */ this.oneTimePrekey = oneTimePrekey;
    Object.freeze(this);
  }

  /**
   * The bundle as the server's JSON returns it (`KeyBundle`: keys in standard base64).
   * @param {{device?: number, identity_signing_key: string, identity_exchange_key: string,
   *   signed_prekey: {id: number, key: string, signature: string},
   *   prekey: {id: number, key: string} | null}} bundle
   */
  static fromApi(bundle) {
    const oneTime = bundle.prekey == null
      ? null
      : new OneTimePrekeyPublic(bundle.prekey.id, fromBase64(bundle.prekey.key));
    return new PrekeyBundle(
      new PublicIdentity(fromBase64(bundle.identity_signing_key), fromBase64(bundle.identity_exchange_key)),
      bundle.signed_prekey.id,
      fromBase64(bundle.signed_prekey.key),
      fromBase64(bundle.signed_prekey.signature),
      oneTime,
    );
  }
}

/** `AD = IKs_A || IKx_A || IKs_B || IKx_B` (§3.5.4). */
export function associatedData(initiator, responder) {
  return concat(initiator.signingKey, initiator.exchangeKey, responder.signingKey, responder.exchangeKey);
}

function sharedSecret(dhOutputs) {
  return hkdfSha256(concat(X3DH_PAD, ...dhOutputs), { salt: ZERO_SALT, info: X3DH_INFO, length: KEY_SIZE });
}

/**
 * @typedef {object} X3dhSecret
 * @property {Uint8Array} sharedSecret SK (secret)
 * @property {Uint8Array} associatedData AD (public)
 * @property {Uint8Array[]} dhOutputs DH1 … DH4, for test vectors only
 */

/**
 * Initiator A (§3.5.2): `DH1 = DH(IKx_A, SPK_B)`, `DH2 = DH(EK_A, IKx_B)`,
 * `DH3 = DH(EK_A, SPK_B)`, `DH4 = DH(EK_A, OPK_B)` with a one-time prekey.
 * @param {import('./keys.js').IdentityKeyPair} own
 * @param {PrekeyBundle} bundle
 * @param {Uint8Array} ephemeralPrivate
 * @returns {X3dhSecret}
 */
export function initiate(own, bundle, ephemeralPrivate) {
  const dhOutputs = [
    x25519(own.exchangePrivateBytes(), bundle.signedPrekey),
    x25519(ephemeralPrivate, bundle.identity.exchangeKey),
    x25519(ephemeralPrivate, bundle.signedPrekey),
  ];
  if (bundle.oneTimePrekey !== null) dhOutputs.push(x25519(ephemeralPrivate, bundle.oneTimePrekey.publicKey));
  return {
    sharedSecret: sharedSecret(dhOutputs),
    associatedData: associatedData(own.public, bundle.identity),
    dhOutputs,
  };
}

/**
 * Responder B (§3.5.5 step 3): the same DH values from B's private keys.
 * @param {import('./keys.js').IdentityKeyPair} own
 * @param {import('./keys.js').SignedPrekeyPair} signedPrekey
 * @param {import('./keys.js').OneTimePrekeyPair | null} oneTimePrekey
 * @param {PublicIdentity} initiator
 * @param {Uint8Array} ephemeralPublic
 * @returns {X3dhSecret}
 */
export function respond(own, signedPrekey, oneTimePrekey, initiator, ephemeralPublic) {
  const signedPrekeyPrivate = signedPrekey.privateBytes();
  const dhOutputs = [
    x25519(signedPrekeyPrivate, initiator.exchangeKey),
    x25519(own.exchangePrivateBytes(), ephemeralPublic),
    x25519(signedPrekeyPrivate, ephemeralPublic),
  ];
  if (oneTimePrekey !== null) dhOutputs.push(x25519(oneTimePrekey.privateBytes(), ephemeralPublic));
  return {
    sharedSecret: sharedSecret(dhOutputs),
    associatedData: associatedData(initiator, own.public),
    dhOutputs,
  };
}
