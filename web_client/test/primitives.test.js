// kdf.json (docs/protocol-crypto.md §3.4): HKDF, HMAC, KDF_RK, KDF_CK, message keys, AEAD, X25519.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { utf8 } from '../src/crypto/bytes.js';
import {
  CHAIN_KEY_CONSTANT, MESSAGE_KEY_CONSTANT, MESSAGE_KEY_INFO, ROOT_KDF_INFO, X3DH_INFO, aeadDecrypt, aeadEncrypt,
  hkdfSha256, hmacSha256, isCanonicalExchangeKey, kdfCk, kdfRk, messageAeadKey, x25519, x25519Public,
} from '../src/crypto/primitives.js';
import { errorCode, h, hex, loadVectors } from '../test-support/vectors.js';

const data = loadVectors('kdf.json');

test('constants are the ones of §3.4.7', () => {
  assert.equal(hex(X3DH_INFO), data.constants.x3dh_info);
  assert.equal(hex(ROOT_KDF_INFO), data.constants.root_kdf_info);
  assert.equal(hex(MESSAGE_KEY_INFO), data.constants.message_key_info);
  assert.equal(hex(CHAIN_KEY_CONSTANT), data.constants.chain_key_constant);
  assert.equal(hex(MESSAGE_KEY_CONSTANT), data.constants.message_key_constant);
  assert.equal(hex(X3DH_INFO), hex(utf8('Lien X3DH v2')));
});

test('HKDF-SHA-256 reproduces RFC 5869 A.1 to A.3', () => {
  assert.equal(data.hkdf_sha256.length, 3);
  // A.1, written out independently of the file
  assert.equal(data.hkdf_sha256[0].okm,
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
  for (const c of data.hkdf_sha256) {
    assert.equal(hex(hkdfSha256(h(c.ikm), { salt: h(c.salt), info: h(c.info), length: c.length })), c.okm);
  }
});

test('HMAC-SHA-256 vectors', () => {
  for (const c of data.hmac_sha256) assert.equal(hex(hmacSha256(h(c.key), h(c.message))), c.mac);
});

test('KDF_RK chain (§3.4.3)', () => {
  let previous = null;
  for (const c of data.kdf_rk) {
    if (previous) assert.equal(c.root_key, previous.new_root_key);
    const [root, chain] = kdfRk(h(c.root_key), h(c.dh_output));
    assert.deepEqual([hex(root), hex(chain)], [c.new_root_key, c.chain_key]);
    previous = c;
  }
});

test('KDF_CK chain (§3.4.4)', () => {
  let previous = null;
  for (const c of data.kdf_ck) {
    if (previous) assert.equal(c.chain_key, previous.next_chain_key);
    const [chain, messageKey] = kdfCk(h(c.chain_key));
    assert.deepEqual([hex(chain), hex(messageKey)], [c.next_chain_key, c.message_key]);
    previous = c;
  }
});

test('message key expansion (§3.4.5) and AEAD (§3.4.6)', () => {
  for (const c of data.message_key) {
    const [key, nonce] = messageAeadKey(h(c.message_key));
    assert.deepEqual([hex(key), hex(nonce)], [c.aead_key, c.aead_nonce]);
  }
  for (const c of data.aead) {
    const ciphertext = aeadEncrypt(h(c.message_key), h(c.plaintext), h(c.associated_data));
    assert.equal(hex(ciphertext), c.ciphertext);
    assert.equal(hex(aeadDecrypt(h(c.message_key), ciphertext, h(c.associated_data))), c.plaintext);
    for (const index of [0, ciphertext.length - 1]) {
      const flipped = Uint8Array.from(ciphertext);
      flipped[index] ^= 1;
      assert.equal(errorCode(() => aeadDecrypt(h(c.message_key), flipped, h(c.associated_data))), 'decryption-failed');
    }
    assert.equal(errorCode(() => aeadDecrypt(h(c.message_key), ciphertext.slice(0, 15), h(c.associated_data))),
      'decryption-failed');
  }
});

test('X25519 vectors (§3.4.2)', () => {
  for (const c of data.x25519) {
    assert.equal(hex(x25519Public(h(c.private))), c.public);
    assert.equal(hex(x25519(h(c.private), h(c.peer_public))), c.shared);
  }
});

test('X25519 refuses small-order and non-canonical keys with invalid-key', () => {
  assert.ok(data.x25519_rejected.length >= 6);
  const privateKey = Uint8Array.from({ length: 32 }, (_, i) => i);
  for (const publicKey of data.x25519_rejected) {
    assert.equal(errorCode(() => x25519(privateKey, h(publicKey))), 'invalid-key', publicKey);
  }
  assert.equal(errorCode(() => x25519(privateKey, new Uint8Array(31))), 'invalid-key');
});

test('canonical X25519 encodings: below 2^255 − 19 only', () => {
  const p = h('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
  const pMinusOne = h('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
  assert.equal(isCanonicalExchangeKey(p), false);
  assert.equal(isCanonicalExchangeKey(pMinusOne), true);
  assert.equal(isCanonicalExchangeKey(h(data.x25519[0].public)), true);
  const topBit = h(data.x25519[0].public);
  topBit[31] |= 0x80;
  assert.equal(isCanonicalExchangeKey(topBit), false);
  assert.equal(isCanonicalExchangeKey(new Uint8Array(33)), false);
  assert.equal(isCanonicalExchangeKey('x'.repeat(32)), false);
});
