// payload.json (docs/protocol-crypto.md §3.8): canonical encoding, signature, padded plaintext; rejections.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { concat, u32 } from '../src/crypto/bytes.js';
import {
  Conversation, DeviceAddress, Payload, SIGNATURE_DOMAIN, decodePlaintext, encodePlaintext, signPayload,
  signingInput, verifyPayload,
} from '../src/crypto/payload.js';
import { errorCode, h, hex, identityFrom, loadVectors, payloadFrom } from '../test-support/vectors.js';

const data = loadVectors('payload.json');
const signer = identityFrom(data.signer);

test('the signature domain is "lien-payload-v2\\0"', () => {
  assert.equal(hex(SIGNATURE_DOMAIN), data.signature_domain);
});

test('payload cases: encoding, signing input, signature and plaintext byte for byte', () => {
  assert.equal(data.cases.length, 3);
  for (const c of data.cases) {
    const signed = signPayload(signer, payloadFrom(c.payload));
    assert.equal(hex(signed.encoded), c.encoded);
    assert.equal(hex(signingInput(signed.encoded)), c.signing_input);
    assert.equal(hex(signed.signature), c.signature);
    assert.equal(hex(encodePlaintext(signed)), c.plaintext);
    const [payloadBytes, signature] = decodePlaintext(h(c.plaintext));
    assert.deepEqual([hex(payloadBytes), hex(signature)], [c.encoded, c.signature]);
    const decoded = verifyPayload(h(c.encoded), h(c.signature), signer.public.signingKey);
    assert.equal(hex(decoded.encode()), c.encoded);
    assert.equal(decoded.text, c.payload.text);
    assert.equal(decoded.sentAtMs, BigInt(c.payload.sent_at_ms));
    assert.equal(decoded.sender.device, BigInt(c.payload.sender.device));
  }
});

test('64-bit fields keep every bit (BigInt)', () => {
  const c = data.cases[2];
  assert.equal(c.payload.sender.device, String(2n ** 62n));
  assert.equal(c.payload.sent_at_ms, String(2n ** 63n - 1n));
  const big = payloadFrom(c.payload);
  assert.equal(hex(big.encode()), c.encoded);
  const decoded = Payload.decode(big.encode());
  assert.equal(decoded.sender.device, big.sender.device);
  assert.equal(decoded.sentAtMs, big.sentAtMs);
  const max = new Payload({ ...big, sender: new DeviceAddress('alice', 2n ** 62n), sentAtMs: 2n ** 63n - 1n });
  assert.equal(Payload.decode(max.encode()).sentAtMs, 2n ** 63n - 1n);
  assert.throws(() => new DeviceAddress('alice', 2n ** 62n + 1n), RangeError);
  assert.throws(() => new DeviceAddress('alice', 0), RangeError);
  assert.throws(() => new DeviceAddress('alice', 2 ** 53), RangeError); // unsafe Number: pass a BigInt
  assert.throws(() => new Payload({ ...big, sentAtMs: 2n ** 63n }), RangeError);
});

test('rejected payloads: validly signed bytes that are not canonical', () => {
  assert.equal(data.rejected.length, 5);
  for (const c of data.rejected) {
    assert.equal(errorCode(() => verifyPayload(h(c.encoded), h(c.signature), signer.public.signingKey)), c.error, c.reason);
  }
});

test('a flipped bit in the payload or the signature, or another signer, is bad-signature', () => {
  const c = data.cases[0];
  const encoded = h(c.encoded);
  const signature = h(c.signature);
  for (let index = 0; index < encoded.length; index += 7) {
    const flipped = Uint8Array.from(encoded);
    flipped[index] ^= 0x10;
    assert.equal(errorCode(() => verifyPayload(flipped, signature, signer.public.signingKey)), 'bad-signature');
  }
  const flippedSignature = Uint8Array.from(signature);
  flippedSignature[5] ^= 1;
  assert.equal(errorCode(() => verifyPayload(encoded, flippedSignature, signer.public.signingKey)), 'bad-signature');
  assert.equal(errorCode(() => verifyPayload(encoded, signature, h(data.signer.exchange_key))), 'bad-signature');
  assert.equal(errorCode(() => verifyPayload(encoded, signature.slice(1), signer.public.signingKey)), 'bad-signature');
  assert.equal(errorCode(() => verifyPayload(encoded, signature, new Uint8Array(31))), 'bad-signature');
});

test('plaintext framing: the fewest zero bytes to a multiple of 256, nothing else', () => {
  const c = data.cases[0];
  const plaintext = h(c.plaintext);
  assert.equal(plaintext.length % 256, 0);
  const withNonZeroPadding = Uint8Array.from(plaintext);
  withNonZeroPadding[plaintext.length - 1] = 1;
  assert.equal(errorCode(() => decodePlaintext(withNonZeroPadding)), 'malformed-payload');
  assert.equal(errorCode(() => decodePlaintext(concat(plaintext, new Uint8Array(256)))), 'malformed-payload');
  assert.equal(errorCode(() => decodePlaintext(plaintext.slice(0, plaintext.length - 1))), 'malformed-payload');
  const tooLong = Uint8Array.from(plaintext);
  tooLong.set(u32(plaintext.length), 0);
  assert.equal(errorCode(() => decodePlaintext(tooLong)), 'malformed-payload');
  assert.equal(errorCode(() => decodePlaintext(new Uint8Array(0))), 'malformed-payload');
  // a framed payload that ends exactly on a block boundary takes no padding
  const exact = concat(u32(256 - 4 - 64), new Uint8Array(256 - 4));
  assert.equal(decodePlaintext(exact)[0].length, 188);
});

test('fields are validated as in §3.8.1', () => {
  const base = payloadFrom(data.cases[0].payload);
  const make = (fields) => () => new Payload({ ...base, ...fields });
  assert.throws(() => new DeviceAddress('Alice', 1n), RangeError);
  assert.throws(() => new DeviceAddress('al', 1n), RangeError);
  assert.throws(() => new DeviceAddress('a'.repeat(33), 1n), RangeError);
  assert.throws(() => new DeviceAddress('-alice', 1n), RangeError);
  assert.throws(() => new DeviceAddress('alice\n', 1n), RangeError);
  assert.throws(make({ clientMessageId: '' }), RangeError);
  assert.throws(make({ clientMessageId: 'x'.repeat(65) }), RangeError);
  assert.throws(make({ clientMessageId: 'a b' }), RangeError);
  assert.throws(make({ contentType: 'Text/plain' }), RangeError);
  assert.throws(make({ contentType: '.text/plain' }), RangeError);
  assert.throws(make({ contentType: `text/${'x'.repeat(60)}` }), RangeError);
  assert.throws(make({ text: 'é'.repeat(30_001) }), RangeError);
  assert.throws(make({ text: 'lone \uD800 surrogate' }), RangeError);
  assert.throws(() => new Conversation(3, 'bob'), RangeError);
  assert.throws(() => Conversation.group('a group'), RangeError);
  new Payload({ ...base, text: 'é'.repeat(30_000) }); // exactly 60,000 bytes
  new Payload({ ...base, text: '\uFEFFbom and 🩺' });
});

test('a text starting with a BOM, NULs or astral characters is kept as given', () => {
  const base = payloadFrom(data.cases[0].payload);
  for (const text of ['\uFEFFavec BOM', 'a\0b', '🩺 Kaliémie', '', 'e\u0301']) {
    const payload = new Payload({ ...base, text });
    assert.equal(Payload.decode(payload.encode()).text, text);
  }
});

test('a group conversation encodes kind 2', () => {
  const base = payloadFrom(data.cases[0].payload);
  const payload = new Payload({ ...base, conversation: Conversation.group('care-team:42') });
  const decoded = Payload.decode(payload.encode());
  assert.ok(decoded.conversation.equals(Conversation.group('care-team:42')));
});

test('invalid UTF-8 inside a payload is malformed-payload', () => {
  const base = payloadFrom(data.cases[0].payload);
  const encoded = new Payload({ ...base, text: 'ab' }).encode();
  const broken = Uint8Array.from(encoded);
  broken[broken.length - 1] = 0xff;
  const signed = signer.sign(signingInput(broken));
  assert.equal(errorCode(() => verifyPayload(broken, signed, signer.public.signingKey)), 'malformed-payload');
});

test('a payload never shows its text in strings or JSON', () => {
  const payload = new Payload({ ...payloadFrom(data.cases[0].payload), text: 'secret potassium value' });
  assert.ok(!String(payload).includes('potassium'));
  assert.ok(!JSON.stringify({ payload }).includes('potassium'));
});
