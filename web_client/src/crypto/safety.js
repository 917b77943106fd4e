/**
 * Safety numbers: what two users compare to know they see each other's real devices
 * (docs/protocol-crypto.md §3.10).
 *
 *     keys_U = sort_bytewise(distinct IKs || IKx of each of U's devices)        (64 bytes each)
 *     d      = SHA-512(uint16 1 || uint8 len(username) || username || uint16 count || keys_U...)
 *     repeat 5200 times: d = SHA-512(d || keys_U...)
 *     fp_U   = for i in 0..5: uint40(d[5i .. 5i+4]) mod 100000, 5 digits zero-padded   (30 digits)
 *     number = min(fp_A, fp_B) || max(fp_A, fp_B)                              (60 digits)
 */
import { concat, fromHex, toHex, u16, u8, utf8 } from './bytes.js';
import { PublicIdentity } from './keys.js';
import { sha512 } from './primitives.js';

export const SAFETY_NUMBER_VERSION = 1;
export const ITERATIONS = 5200;
export const MAX_DEVICES_PER_USER = 10;
const CHUNKS = 6;
const CHUNK_BYTES = 5;

/** The distinct `IKs || IKx` of the devices, sorted bytewise (lowercase hex sorts the same way). */
function keyMaterial(devices) {
  const keys = new Set();
  for (const device of devices) {
    if (!(device instanceof PublicIdentity)) throw new TypeError('devices are PublicIdentity');
    keys.add(toHex(concat(device.signingKey, device.exchangeKey)));
  }
  if (keys.size === 0) throw new RangeError('a user has at least one device');
  if (keys.size > MAX_DEVICES_PER_USER) throw new RangeError(`a user has at most ${MAX_DEVICES_PER_USER} devices`);
  return [...keys].sort();
}

/**
 * The 30 digits of one user: their username and the identity keys of all their devices.
 * @param {string} username
 * @param {Iterable<PublicIdentity>} devices
 */
export function userFingerprint(username, devices) {
  const name = utf8(username);
  if (name.length === 0 || name.length > 255) throw new RangeError('username must be 1 to 255 bytes of UTF-8');
  const keys = keyMaterial(devices);
  const joined = fromHex(keys.join(''));
  let digest = sha512(concat(u16(SAFETY_NUMBER_VERSION), u8(name.length), name, u16(keys.length), joined));
  for (let round = 0; round < ITERATIONS; round++) digest = sha512(concat(digest, joined));
  let digits = '';
  for (let index = 0; index < CHUNKS; index++) {
    let chunk = 0;
    for (const byte of digest.subarray(index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES)) chunk = chunk * 256 + byte;
    digits += String(chunk % 100_000).padStart(5, '0'); // uint40 < 2^53: exact as a Number
  }
  return digits;
}

/** 60 digits, the same for both users of a pair. */
export class SafetyNumber {
  constructor(digits) {
    /** @readonly */ this.digits = digits;
    Object.freeze(this);
  }

  /** Twelve groups of five digits, for display. */
  groups() {
    return this.digits.match(/\d{5}/g) ?? [];
  }

  toString() {
    return this.groups().join(' ');
  }
}

/** The safety number of two different users; swapping them gives the same number. */
export function safetyNumber(userA, devicesA, userB, devicesB) {
  if (userA === userB) throw new RangeError('a safety number is between two different users');
  const [first, second] = [userFingerprint(userA, devicesA), userFingerprint(userB, devicesB)].sort();
  return new SafetyNumber(first + second);
}
