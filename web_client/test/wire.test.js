// body.json and the 'parsed' parts of session.json (docs/protocol-crypto.md §3.7).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { concat } from '../src/crypto/bytes.js';
import { PublicIdentity } from '../src/crypto/keys.js';
import { MAX_BODY_BYTES, RatchetHeader, X3dhData, encodePrefix, parseBody } from '../src/crypto/wire.js';
import { errorCode, h, hex, loadVectors } from '../test-support/vectors.js';

const bodies = loadVectors('body.json');
const session = loadVectors('session.json');

test('every rejected body of body.json fails with its code', () => {
  assert.deepEqual(new Set(bodies.rejected.map((c) => c.error)), new Set(['malformed-message', 'unsupported-format']));
  assert.equal(bodies.rejected.length, 11);
  for (const c of bodies.rejected) assert.equal(errorCode(() => parseBody(h(c.body))), c.error, c.reason);
});

test('every body of session.json splits into the parts it lists, and re-encodes', () => {
  const encrypted = session.steps.filter((step) => step.op === 'encrypt');
  assert.ok(encrypted.length >= 6);
  for (const step of encrypted) {
    const parsed = parseBody(h(step.body));
    const expected = step.parsed;
    assert.equal(parsed.x3dh === null ? 'ratchet' : 'prekey', expected.type);
    assert.equal(hex(parsed.prefix), expected.prefix);
    assert.equal(hex(parsed.ciphertext), expected.ciphertext);
    assert.equal(hex(parsed.header.ratchetKey), expected.header.ratchet_key);
    assert.equal(parsed.header.previousChainLength, expected.header.previous_chain_length);
    assert.equal(parsed.header.messageNumber, expected.header.message_number);
    assert.equal(parsed.prefix.length, parsed.x3dh === null ? 42 : 147);
    if (parsed.x3dh !== null) {
      assert.equal(hex(parsed.x3dh.sender.signingKey), expected.x3dh.sender_signing_key);
      assert.equal(hex(parsed.x3dh.sender.exchangeKey), expected.x3dh.sender_exchange_key);
      assert.equal(hex(parsed.x3dh.ephemeralKey), expected.x3dh.ephemeral_key);
      assert.equal(parsed.x3dh.signedPrekeyId, expected.x3dh.signed_prekey_id);
      assert.equal(parsed.x3dh.oneTimePrekeyId, expected.x3dh.one_time_prekey_id);
    }
    assert.equal(hex(encodePrefix(parsed.x3dh, parsed.header)), expected.prefix);
  }
});

test('size limits: a body of 65,536 bytes parses, one more byte does not', () => {
  const prefix = h(session.steps.find((step) => step.parsed?.type === 'ratchet').parsed.prefix);
  const largest = concat(prefix, new Uint8Array(MAX_BODY_BYTES - prefix.length));
  assert.equal(parseBody(largest).ciphertext.length, MAX_BODY_BYTES - 42);
  assert.equal(errorCode(() => parseBody(concat(largest, new Uint8Array(1)))), 'malformed-message');
  assert.equal(errorCode(() => parseBody(concat(prefix, new Uint8Array(15)))), 'malformed-message');
  assert.equal(parseBody(concat(prefix, new Uint8Array(16))).ciphertext.length, 16);
  assert.throws(() => parseBody('02'), TypeError);
});

test('X3DH data: flag 0 encodes id 0; ids up to 2^31 − 1 round-trip', () => {
  const key = h(session.alice.identity.exchange_key);
  const sender = new PublicIdentity(h(session.alice.identity.signing_key), key);
  for (const [signed, oneTime] of [[0, null], [2 ** 31 - 1, 0], [5, 2 ** 31 - 1]]) {
    const data = new X3dhData(sender, key, signed, oneTime);
    const encoded = data.encode();
    assert.equal(encoded.length, 105);
    assert.equal(encoded[100], oneTime === null ? 0 : 1);
    assert.ok(X3dhData.decode(encoded).equals(data));
  }
  const header = new RatchetHeader(key, 2 ** 32 - 1, 0);
  assert.deepEqual(RatchetHeader.decode(header.encode()), header);
  assert.throws(() => new RatchetHeader(key, 2 ** 32, 0), RangeError);
});
