/**
 * The primitives and key-derivation functions of message format 2 (docs/protocol-crypto.md §3.4).
 *
 * | primitive          | libsodium-wrappers-sumo                                  |
 * | ------------------ | -------------------------------------------------------- |
 * | X25519             | `crypto_scalarmult`, `crypto_scalarmult_base`            |
 * | HMAC-SHA-256       | `crypto_auth_hmacsha256` (`_init/_update/_final` for keys other than 32 bytes) |
 * | HKDF-SHA-256       | RFC 5869 written here over HMAC-SHA-256 (0.8.x binds no `crypto_kdf_hkdf_sha256_*`) |
 * | XChaCha20-Poly1305 | `crypto_aead_xchacha20poly1305_ietf_*`                   |
 * | SHA-512            | `crypto_hash_sha512`                                     |
 *
 * Every function takes and returns Uint8Array of checked sizes; a wrong size is a
 * RangeError (a programming error), a bad public key an `InvalidKey`.
 */
import { sodium } from './sodium.js';
import { concat, equalBytes, isBytes, utf8 } from './bytes.js';
import { DecryptionFailed, InvalidKey } from './errors.js';

/** Root keys, chain keys, message keys, X3DH secrets and AEAD keys are 32 bytes. */
export const KEY_SIZE = 32;
/** SHA-256 output size, and the size of the all-zero salt. */
export const HASH_SIZE = 32;
export const EXCHANGE_KEY_SIZE = 32;
export const AEAD_NONCE_SIZE = 24;
export const AEAD_TAG_SIZE = 16;
export const ZERO_SALT = new Uint8Array(HASH_SIZE);

/** HKDF info of the X3DH shared secret (§3.5.3). */
export const X3DH_INFO = utf8('Lien X3DH v2');
/** HKDF info of KDF_RK (§3.4.3). */
export const ROOT_KDF_INFO = utf8('Lien Ratchet v2');
/** HKDF info of the message-key expansion (§3.4.5). */
export const MESSAGE_KEY_INFO = utf8('Lien Message Keys v2');
/**
 * HKDF info of the same expansion for group (sender-key) messages (docs/protocol-group.md §3.17.3):
 * a different string, so a group message key and a pairwise one never give the same AEAD key and nonce.
 */
export const GROUP_MESSAGE_KEY_INFO = utf8('Lien Group Message Keys v1');
/** KDF_CK input giving the next chain key (§3.4.4). */
export const CHAIN_KEY_CONSTANT = Uint8Array.of(0x02);
/** KDF_CK input giving the message key (§3.4.4). */
export const MESSAGE_KEY_CONSTANT = Uint8Array.of(0x01);

const HKDF_MAX_OUTPUT = 255 * HASH_SIZE;
/** 2^255 − 19, little-endian: 0xed, 30 × 0xff, 0x7f. */
const FIELD_PRIME_LE = concat(Uint8Array.of(0xed), new Uint8Array(30).fill(0xff), Uint8Array.of(0x7f));

function checkKey(name, key, size = KEY_SIZE) {
  if (!isBytes(key, size)) throw new RangeError(`${name} must be ${size} bytes`);
}

// --- §3.4.1 HMAC and HKDF

/** HMAC-SHA-256 (RFC 2104) of `message` under `key` (any length). */
export function hmacSha256(key, message) {
  if (key.length === sodium.crypto_auth_hmacsha256_KEYBYTES) return sodium.crypto_auth_hmacsha256(message, key);
  const state = sodium.crypto_auth_hmacsha256_init(key);
  sodium.crypto_auth_hmacsha256_update(state, message);
  return sodium.crypto_auth_hmacsha256_final(state);
}

/**
 * HKDF-SHA-256 (RFC 5869): `PRK = HMAC(salt, ikm)`, `T(i) = HMAC(PRK, T(i−1) || info || uint8(i))`,
 * the first `length` bytes of `T(1) || T(2) || …`.
 * @param {Uint8Array} ikm
 * @param {{salt: Uint8Array, info: Uint8Array, length: number}} options
 */
export function hkdfSha256(ikm, { salt, info, length }) {
  if (!Number.isInteger(length) || length <= 0 || length > HKDF_MAX_OUTPUT) {
    throw new RangeError(`HKDF-SHA-256 output is 1 to ${HKDF_MAX_OUTPUT} bytes`);
  }
  const prk = hmacSha256(salt, ikm);
  const output = new Uint8Array(Math.ceil(length / HASH_SIZE) * HASH_SIZE);
  let block = new Uint8Array(0);
  for (let counter = 1; (counter - 1) * HASH_SIZE < length; counter++) {
    block = hmacSha256(prk, concat(block, info, Uint8Array.of(counter)));
    output.set(block, (counter - 1) * HASH_SIZE);
  }
  return output.slice(0, length);
}

// --- §3.4.2 X25519

/**
 * Whether `key` is a canonical X25519 public key: 32 bytes whose little-endian
 * integer is below 2^255 − 19 (§3.4.2). libsodium does not check this.
 */
export function isCanonicalExchangeKey(key) {
  if (!isBytes(key, EXCHANGE_KEY_SIZE)) return false;
  for (let index = EXCHANGE_KEY_SIZE - 1; index >= 0; index--) {
    if (key[index] !== FIELD_PRIME_LE[index]) return key[index] < FIELD_PRIME_LE[index];
  }
  return false; // equal to p
}

/** The X25519 public key of a 32-byte private key (`crypto_scalarmult_base`). */
export function x25519Public(privateKey) {
  checkKey('an X25519 private key', privateKey);
  return sodium.crypto_scalarmult_base(privateKey);
}

/**
 * `DH(private, public)` (§3.4.2): refuses a non-canonical public key and an all-zero
 * output (a point of small order) with `InvalidKey`.
 */
export function x25519(privateKey, publicKey) {
  checkKey('an X25519 private key', privateKey);
  if (!isCanonicalExchangeKey(publicKey)) {
    throw new InvalidKey('The X25519 public key is not a canonical 32-byte encoding.');
  }
  let shared;
  try {
    shared = sodium.crypto_scalarmult(privateKey, publicKey);
  } catch {
    throw new InvalidKey('The X25519 public key is of small order.');
  }
  if (equalBytes(shared, new Uint8Array(EXCHANGE_KEY_SIZE))) {
    throw new InvalidKey('The X25519 public key is of small order.'); // libsodium checks too
  }
  return shared;
}

// --- §3.4.3 to §3.4.5 Double Ratchet KDFs

/**
 * KDF_RK (§3.4.3): `HKDF(ikm = dh_output, salt = RK, info = "Lien Ratchet v2", 64)` split 32 | 32.
 * @returns {[Uint8Array, Uint8Array]} `[newRootKey, chainKey]`
 */
export function kdfRk(rootKey, dhOutput) {
  checkKey('a root key', rootKey);
  checkKey('a DH output', dhOutput);
  const output = hkdfSha256(dhOutput, { salt: rootKey, info: ROOT_KDF_INFO, length: 2 * KEY_SIZE });
  return [output.slice(0, KEY_SIZE), output.slice(KEY_SIZE)];
}

/**
 * KDF_CK (§3.4.4): `(HMAC(CK, 0x02), HMAC(CK, 0x01))`.
 * @returns {[Uint8Array, Uint8Array]} `[nextChainKey, messageKey]`
 */
export function kdfCk(chainKey) {
  checkKey('a chain key', chainKey);
  return [hmacSha256(chainKey, CHAIN_KEY_CONSTANT), hmacSha256(chainKey, MESSAGE_KEY_CONSTANT)];
}

/**
 * Message key expansion (§3.4.5): `HKDF(ikm = MK, salt = 0^32, info = "Lien Message Keys v2", 56)`;
 * group messages pass `info = GROUP_MESSAGE_KEY_INFO` (§3.17.3).
 * The nonce is derived, not random: each message key encrypts exactly one message.
 * @param {Uint8Array} messageKey
 * @param {Uint8Array} [info]
 * @returns {[Uint8Array, Uint8Array]} `[aeadKey, aeadNonce]` (32 and 24 bytes)
 */
export function messageAeadKey(messageKey, info = MESSAGE_KEY_INFO) {
  checkKey('a message key', messageKey);
  const output = hkdfSha256(messageKey, {
    salt: ZERO_SALT, info, length: KEY_SIZE + AEAD_NONCE_SIZE,
  });
  return [output.slice(0, KEY_SIZE), output.slice(KEY_SIZE)];
}

// --- §3.4.6 AEAD

/**
 * XChaCha20-Poly1305-IETF under the key and nonce derived from `messageKey`: `ciphertext || tag`.
 * `info` selects the expansion (pairwise by default, {@link GROUP_MESSAGE_KEY_INFO} for groups).
 */
export function aeadEncrypt(messageKey, plaintext, associatedData, info = MESSAGE_KEY_INFO) {
  const [key, nonce] = messageAeadKey(messageKey, info);
  return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, associatedData, null, nonce, key);
}

/** Inverse of {@link aeadEncrypt}; throws `DecryptionFailed`. */
export function aeadDecrypt(messageKey, ciphertext, associatedData, info = MESSAGE_KEY_INFO) {
  if (ciphertext.length < AEAD_TAG_SIZE) throw new DecryptionFailed();
  const [key, nonce] = messageAeadKey(messageKey, info);
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ciphertext, associatedData, nonce, key);
  } catch {
    throw new DecryptionFailed();
  }
}

/**
 * Whether `key` is a canonical Ed25519 point of prime order (`crypto_core_ed25519_is_valid_point`):
 * every key `crypto_sign_keypair` makes passes; the identity, small-order points and
 * non-canonical encodings do not (§3.17.4.2).
 */
export function isValidEd25519Public(key) {
  return isBytes(key, 32) && sodium.crypto_core_ed25519_is_valid_point(key) === true;
}

/** SHA-512 (§3.10). */
export function sha512(data) {
  return sodium.crypto_hash_sha512(data);
}

/** `size` random bytes from libsodium (`randombytes_buf`): the production random source. */
export function randomBytes(size) {
  return sodium.randombytes_buf(size);
}
