/**
 * The bytes of a format-2 message body: the one place that encodes and parses them
 * (docs/protocol-crypto.md §3.7).
 *
 *     ratchet message = 0x02 || 0x01 || header (40) || ciphertext (≥ 16)
 *     prekey message  = 0x02 || 0x02 || x3dh (105) || header (40) || ciphertext (≥ 16)
 *     header          = ratchet_key (32) || uint32 PN || uint32 N
 *     x3dh            = IKs_A (32) || IKx_A (32) || EK_A (32) || uint32 signed_prekey_id
 *                       || uint8 has_one_time_prekey || uint32 one_time_prekey_id (0 when absent)
 *
 * Everything before the ciphertext is the *prefix*: it is authenticated as AEAD
 * associated data (§3.7.4), so no byte of a body can change unnoticed.
 */
import { concat, equalBytes, isBytes, readU32, u32, u8 } from './bytes.js';
import { InvalidKey, MalformedMessage, UnsupportedFormat } from './errors.js';
import { PREKEY_ID_MAX, PublicIdentity, checkPrekeyId, isPrekeyId } from './keys.js';
import { AEAD_TAG_SIZE, isCanonicalExchangeKey } from './primitives.js';

/** Byte 0 of every body of this format; 0x01 is the legacy sealed-box format. */
export const FORMAT_VERSION = 0x02;
export const TYPE_RATCHET = 0x01;
export const TYPE_PREKEY = 0x02;
export const HEADER_SIZE = 40;
export const X3DH_DATA_SIZE = 105;
/** Largest PN or N (uint32). */
export const MAX_COUNTER = 2 ** 32 - 1;
/** Largest body the server stores for one device (`limits.MAX_COPY_BYTES`). */
export const MAX_BODY_BYTES = 65_536;

function checkCounter(value) {
  if (!Number.isInteger(value) || value < 0 || value > MAX_COUNTER) {
    throw new RangeError('header counters are integers from 0 to 2^32 − 1');
  }
  return value;
}

/** The Double Ratchet header (§3.7.2): sender's ratchet key, PN and N. */
export class RatchetHeader {
  constructor(ratchetKey, previousChainLength, messageNumber) {
    if (!isCanonicalExchangeKey(ratchetKey)) {
      throw new InvalidKey('The ratchet key is not a canonical X25519 public key.');
    }
    /** @readonly */ this.ratchetKey = Uint8Array.from(ratchetKey);
    /** @readonly */ this.previousChainLength = checkCounter(previousChainLength);
    /** @readonly */ this.messageNumber = checkCounter(messageNumber);
    Object.freeze(this);
  }

  encode() {
    return concat(this.ratchetKey, u32(this.previousChainLength), u32(this.messageNumber));
  }

  /** @param {Uint8Array} data exactly 40 bytes */
  static decode(data) {
    return new RatchetHeader(data.subarray(0, 32), readU32(data, 32), readU32(data, 36));
  }
}

/** What a prekey message tells the responder so it can run X3DH (§3.7.3). */
export class X3dhData {
  /**
   * @param {PublicIdentity} sender the initiator's identity
   * @param {Uint8Array} ephemeralKey EK_A
   * @param {number} signedPrekeyId
   * @param {number | null} oneTimePrekeyId
   */
  constructor(sender, ephemeralKey, signedPrekeyId, oneTimePrekeyId) {
    if (!(sender instanceof PublicIdentity)) throw new TypeError('sender must be a PublicIdentity');
    if (!isCanonicalExchangeKey(ephemeralKey)) {
      throw new InvalidKey('The ephemeral key is not a canonical X25519 public key.');
    }
    /** @readonly */ this.sender = sender;
    /** @readonly */ this.ephemeralKey = Uint8Array.from(ephemeralKey);
    /** @readonly */ this.signedPrekeyId = checkPrekeyId(signedPrekeyId);
    /** @readonly */ this.oneTimePrekeyId = oneTimePrekeyId === null ? null : checkPrekeyId(oneTimePrekeyId);
    Object.freeze(this);
  }

  /** Same set-up: same identity, ephemeral key and prekey ids. */
  equals(other) {
    return other instanceof X3dhData
      && this.sender.equals(other.sender)
      && equalBytes(this.ephemeralKey, other.ephemeralKey)
      && this.signedPrekeyId === other.signedPrekeyId
      && this.oneTimePrekeyId === other.oneTimePrekeyId;
  }

  encode() {
    const hasOneTime = this.oneTimePrekeyId === null ? 0 : 1;
    return concat(
      this.sender.signingKey, this.sender.exchangeKey, this.ephemeralKey,
      u32(this.signedPrekeyId), u8(hasOneTime), u32(this.oneTimePrekeyId ?? 0),
    );
  }

  /** @param {Uint8Array} data exactly 105 bytes; throws `MalformedMessage` or `InvalidKey` */
  static decode(data) {
    const signedPrekeyId = readU32(data, 96);
    const hasOneTime = data[100];
    const oneTimePrekeyId = readU32(data, 101);
    if ((hasOneTime !== 0 && hasOneTime !== 1) || (hasOneTime === 0 && oneTimePrekeyId !== 0)) {
      throw new MalformedMessage();
    }
    if (!isPrekeyId(signedPrekeyId) || oneTimePrekeyId > PREKEY_ID_MAX) throw new MalformedMessage();
    const sender = new PublicIdentity(data.subarray(0, 32), data.subarray(32, 64));
    return new X3dhData(sender, data.subarray(64, 96), signedPrekeyId, hasOneTime ? oneTimePrekeyId : null);
  }
}

/**
 * A parsed body.
 * @typedef {object} Body
 * @property {X3dhData | null} x3dh present in a prekey message
 * @property {RatchetHeader} header
 * @property {Uint8Array} ciphertext ciphertext and tag
 * @property {Uint8Array} prefix every byte before the ciphertext
 */

/** Version, type, X3DH data when present, and header: the bytes before the ciphertext. */
export function encodePrefix(x3dh, header) {
  if (x3dh === null) return concat(u8(FORMAT_VERSION), u8(TYPE_RATCHET), header.encode());
  return concat(u8(FORMAT_VERSION), u8(TYPE_PREKEY), x3dh.encode(), header.encode());
}

/**
 * Split a body into its parts, checking every length and encoding (§3.7.5).
 * Throws `UnsupportedFormat` for another format's byte 0, `MalformedMessage` for anything else.
 * @param {Uint8Array} body
 * @returns {Body}
 */
export function parseBody(body) {
  if (!isBytes(body)) throw new TypeError('a body is a Uint8Array');
  if (body.length === 0) throw new MalformedMessage();
  if (body[0] !== FORMAT_VERSION) throw new UnsupportedFormat();
  if (body.length > MAX_BODY_BYTES || body.length < 2) throw new MalformedMessage();
  let x3dhSize;
  if (body[1] === TYPE_RATCHET) x3dhSize = 0;
  else if (body[1] === TYPE_PREKEY) x3dhSize = X3DH_DATA_SIZE;
  else throw new MalformedMessage();
  const headerStart = 2 + x3dhSize;
  const ciphertextStart = headerStart + HEADER_SIZE;
  if (body.length < ciphertextStart + AEAD_TAG_SIZE) throw new MalformedMessage();
  try {
    const x3dh = x3dhSize ? X3dhData.decode(body.subarray(2, headerStart)) : null;
    const header = RatchetHeader.decode(body.subarray(headerStart, ciphertextStart));
    return {
      x3dh,
      header,
      ciphertext: body.slice(ciphertextStart),
      prefix: body.slice(0, ciphertextStart),
    };
  } catch (error) {
    if (error instanceof InvalidKey) throw new MalformedMessage();
    throw error;
  }
}
