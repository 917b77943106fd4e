/**
 * Byte helpers shared by the crypto modules: concatenation, big-endian integers,
 * strict UTF-8, hex and base64, constant-time comparison.
 *
 * Conventions of docs/protocol-crypto.md: `uint8`…`uint64` are big-endian;
 * 64-bit values are BigInt here, never Number.
 */
import { sodium } from './sodium.js';

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** @param {...Uint8Array} parts */
export function concat(...parts) {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** @param {number} value 0 … 255 */
export function u8(value) {
  return Uint8Array.of(value);
}

/** @param {number} value 0 … 2^16 − 1 */
export function u16(value) {
  return Uint8Array.of(value >>> 8, value & 0xff);
}

/** @param {number} value 0 … 2^32 − 1 */
export function u32(value) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** @param {bigint} value 0 … 2^64 − 1 */
export function u64(value) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value);
  return out;
}

/** @param {Uint8Array} data @param {number} offset */
export function readU32(data, offset) {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(offset);
}

/** @param {Uint8Array} data @param {number} offset */
export function readU64(data, offset) {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(offset);
}

/** Whether `text` is a string that UTF-8 can encode (no lone surrogate). */
export function isWellFormed(text) {
  return typeof text === 'string' && !LONE_SURROGATE.test(text);
}

/** UTF-8 bytes of a well-formed string; a lone surrogate is a RangeError, never a silent U+FFFD. */
export function utf8(text) {
  if (!isWellFormed(text)) throw new RangeError('text is not encodable as UTF-8');
  return utf8Encoder.encode(text);
}

/** Strict UTF-8 decoding: invalid bytes throw TypeError, a leading BOM is kept. */
export function fromUtf8(data) {
  return utf8Decoder.decode(data);
}

/** @param {Uint8Array} data */
export function toHex(data) {
  return sodium.to_hex(data);
}

/** @param {string} text lowercase or uppercase hex */
export function fromHex(text) {
  if (typeof text !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(text)) throw new TypeError('not hex');
  return sodium.from_hex(text);
}

/** Standard base64 with padding (the server's JSON encoding of bytes). */
export function toBase64(data) {
  return sodium.to_base64(data, sodium.base64_variants.ORIGINAL);
}

/** Strict standard base64 with padding. */
export function fromBase64(text) {
  if (typeof text !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    throw new TypeError('not standard base64');
  }
  try {
    return sodium.from_base64(text, sodium.base64_variants.ORIGINAL);
  } catch {
    throw new TypeError('not standard base64'); // e.g. non-zero trailing bits
  }
}

/** Whether `value` is a Uint8Array of exactly `size` bytes. */
export function isBytes(value, size) {
  return value instanceof Uint8Array && (size === undefined || value.length === size);
}

/** Constant-time equality of two byte strings (their lengths are not secret). */
export function equalBytes(a, b) {
  return a.length === b.length && (a.length === 0 || sodium.memcmp(a, b));
}
