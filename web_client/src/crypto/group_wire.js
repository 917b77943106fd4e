/**
 * The bytes of group messages and sender-key distributions: the one place that encodes
 * and parses them (docs/protocol-group.md §3.17.4, §3.17.5; `lien/crypto/group_wire.py`).
 *
 *     distribution = uint8 version (0x01) || str8 group_id || uint32 key_id || uint32 iteration
 *                    || chain_key (32) || signing_key (32, Ed25519 public)
 *     header       = 0x03 || uint32 key_id || uint32 iteration                          (9 bytes)
 *     body         = header || ciphertext (≥ 16) || signature (64)
 *     AEAD ad      = "lien-group-message-v1\0" || str8 group_id || header
 *     signed       = "lien-group-body-v1\0" || str8 group_id || header || ciphertext
 *
 * The group id is bound twice (AEAD and signature), so a body cannot be moved to another
 * group. The signature is by the sender key's own Ed25519 key, not the identity key.
 */
import { concat, equalBytes, isBytes, readU32, u32, u8, utf8 } from './bytes.js';
import { InvalidDistribution, MalformedMessage, UnsupportedFormat } from './errors.js';
import { SIGNATURE_SIZE } from './keys.js';
import { AEAD_TAG_SIZE, KEY_SIZE, isValidEd25519Public } from './primitives.js';
import { MAX_BODY_BYTES } from './wire.js';

/** Byte 0 of a group body; 0x02 is a pairwise body, 0x01 the legacy format (§3.7.1). */
export const GROUP_FORMAT_VERSION = 0x03;
/** Byte 0 of a sender-key distribution (§3.17.4). */
export const DISTRIBUTION_VERSION = 0x01;
export const GROUP_AD_DOMAIN = utf8('lien-group-message-v1\0');
export const GROUP_BODY_SIGNATURE_DOMAIN = utf8('lien-group-body-v1\0');
/** Content type of the pairwise payload carrying a distribution, as standard base64 text (§3.17.4.3). */
export const DISTRIBUTION_CONTENT_TYPE = 'application/vnd.lien.sender-key';
export const GROUP_HEADER_SIZE = 9;
export const MIN_GROUP_BODY_BYTES = GROUP_HEADER_SIZE + AEAD_TAG_SIZE + SIGNATURE_SIZE;
export const MAX_GROUP_BODY_BYTES = MAX_BODY_BYTES;
export const MAX_KEY_ID = 2 ** 32 - 1;
/** Largest iteration a body can carry; a sender key that used it must be replaced. */
export const MAX_ITERATION = 2 ** 32 - 1;

const GROUP_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const DISTRIBUTION_TAIL = 4 + 4 + KEY_SIZE + 32;

/** Whether `groupId` is 1 to 64 characters of `[A-Za-z0-9_.:-]` (the group conversation id of §3.8.1). */
export function isGroupId(groupId) {
  return typeof groupId === 'string' && GROUP_ID.test(groupId);
}

/** @param {string} groupId @returns {string} the same id; RangeError if it is not one */
export function checkGroupId(groupId) {
  if (!isGroupId(groupId)) throw new RangeError('not a valid group id');
  return groupId;
}

/** @param {number} value */
export function checkU32(name, value) {
  if (!Number.isInteger(value) || value < 0 || value > MAX_KEY_ID) throw new RangeError(`${name} is an integer from 0 to 2^32 − 1`);
  return value;
}

function str8(groupId) {
  const data = utf8(checkGroupId(groupId));
  return concat(u8(data.length), data);
}

// --- distribution (§3.17.4)

/**
 * What a sender device gives each member device so it can read its group messages.
 * `chainKey` is the chain key *at* `iteration`: the receiver can derive the keys of that
 * iteration and later ones, never earlier ones. It is a secret: `toString` leaves it out.
 */
export class SenderKeyDistribution {
  /**
   * @param {{groupId: string, keyId: number, iteration: number, chainKey: Uint8Array, signingKey: Uint8Array}} fields
   */
  constructor({ groupId, keyId, iteration, chainKey, signingKey }) {
    /** @readonly */ this.groupId = checkGroupId(groupId);
    /** @readonly */ this.keyId = checkU32('keyId', keyId);
    /** @readonly */ this.iteration = checkU32('iteration', iteration);
    if (!isBytes(chainKey, KEY_SIZE)) throw new RangeError('a chain key is 32 bytes');
    if (!isValidEd25519Public(signingKey)) throw new RangeError('not a valid Ed25519 public key');
    /** @readonly */ this.chainKey = Uint8Array.from(chainKey);
    /** @readonly The Ed25519 public key of this sender key: it verifies every body made with it. */
    this.signingKey = Uint8Array.from(signingKey);
    Object.freeze(this);
  }

  /** The 74 + len(group_id) bytes of §3.17.4.1. */
  encode() {
    return concat(u8(DISTRIBUTION_VERSION), str8(this.groupId), u32(this.keyId), u32(this.iteration),
      this.chainKey, this.signingKey);
  }

  /** Parse a distribution (§3.17.4.2); `InvalidDistribution` if anything is wrong. */
  static decode(data) {
    if (!isBytes(data)) throw new TypeError('a distribution is a Uint8Array');
    if (data.length < 2 || data[0] !== DISTRIBUTION_VERSION) throw new InvalidDistribution();
    const endOfId = 2 + data[1];
    if (data.length !== endOfId + DISTRIBUTION_TAIL) throw new InvalidDistribution();
    const idBytes = data.subarray(2, endOfId);
    if (idBytes.some((byte) => byte > 0x7f)) throw new InvalidDistribution();
    const chainStart = endOfId + 8;
    try {
      return new SenderKeyDistribution({
        groupId: String.fromCharCode(...idBytes),
        keyId: readU32(data, endOfId),
        iteration: readU32(data, endOfId + 4),
        chainKey: data.subarray(chainStart, chainStart + KEY_SIZE),
        signingKey: data.subarray(chainStart + KEY_SIZE),
      });
    } catch (error) {
      if (error instanceof RangeError) throw new InvalidDistribution();
      throw error;
    }
  }

  /** Same bytes (constant-time). */
  equals(other) {
    return other instanceof SenderKeyDistribution && equalBytes(this.encode(), other.encode());
  }

  toString() {
    return `SenderKeyDistribution(groupId=${this.groupId}, keyId=${this.keyId}, iteration=${this.iteration})`;
  }

  toJSON() {
    return this.toString();
  }
}

// --- group body (§3.17.5)

/** `0x03 || uint32 key_id || uint32 iteration`. */
export function encodeGroupHeader(keyId, iteration) {
  return concat(u8(GROUP_FORMAT_VERSION), u32(checkU32('keyId', keyId)), u32(checkU32('iteration', iteration)));
}

/** The AEAD associated data: `"lien-group-message-v1\0" || str8 group_id || header`. */
export function groupAssociatedData(groupId, header) {
  return concat(GROUP_AD_DOMAIN, str8(groupId), header);
}

/** What the sender key signs: `"lien-group-body-v1\0" || str8 group_id || header || ciphertext`. */
export function groupBodySigningInput(groupId, signedPart) {
  return concat(GROUP_BODY_SIGNATURE_DOMAIN, str8(groupId), signedPart);
}

/**
 * A parsed group body.
 * @typedef {object} GroupBody
 * @property {number} keyId
 * @property {number} iteration
 * @property {Uint8Array} header the first 9 bytes
 * @property {Uint8Array} ciphertext ciphertext and tag
 * @property {Uint8Array} signature the last 64 bytes
 * @property {Uint8Array} signedPart `header || ciphertext`
 */

/**
 * Split a group body, checking the version and every length (§3.17.5.3); nothing is verified.
 * `UnsupportedFormat` when byte 0 is not 0x03, `MalformedMessage` for an empty, short or oversized body.
 * @param {Uint8Array} body
 * @returns {GroupBody}
 */
export function parseGroupBody(body) {
  if (!isBytes(body)) throw new TypeError('a body is a Uint8Array');
  if (body.length === 0) throw new MalformedMessage();
  if (body[0] !== GROUP_FORMAT_VERSION) throw new UnsupportedFormat();
  if (body.length < MIN_GROUP_BODY_BYTES || body.length > MAX_GROUP_BODY_BYTES) throw new MalformedMessage();
  const signatureStart = body.length - SIGNATURE_SIZE;
  return {
    keyId: readU32(body, 1),
    iteration: readU32(body, 5),
    header: body.slice(0, GROUP_HEADER_SIZE),
    ciphertext: body.slice(GROUP_HEADER_SIZE, signatureStart),
    signature: body.slice(signatureStart),
    signedPart: body.slice(0, signatureStart),
  };
}

/** The `key_id` a group body names, e.g. to ask its sender for that key after `unknown-sender-key`. */
export function groupBodyKeyId(body) {
  return parseGroupBody(body).keyId;
}
