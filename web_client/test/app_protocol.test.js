// The browser client's protocol core (app/protocol.js), without a socket: frames in, events out.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LienError } from '../app/errors.js';
import { toHex } from '../src/crypto/bytes.js';
import {
  Backoff, ClientProtocol, decodeServerFrame, newClientId, receiptSigningInput, sendFrame, wsUrl,
} from '../app/protocol.js';

const ready = { type: 'ready', v: 1, user: 'alice', device: 1, server_time: 1, prekeys: 100, replenish: false };
const deliver = (seq) => ({
  type: 'message', seq, message: `m${seq}`, sender: 'bob', sender_device: 2, to: 'alice', group: null,
  body: 'AQ==', key: null, at: 5,
});

test('auth first, with the version and the token, never a URL', () => {
  const protocol = new ClientProtocol();
  assert.deepEqual(JSON.parse(protocol.auth('tok')), { type: 'auth', v: 1, token: 'tok' });
  assert.equal(wsUrl('http://127.0.0.1:8000'), 'ws://127.0.0.1:8000/ws');
  assert.equal(wsUrl('https://lien.example/'), 'wss://lien.example/ws');
});

test('unaccepted sends are kept in first-sent order and resent under the same id', () => {
  const protocol = new ClientProtocol();
  protocol.send(sendFrame('a1', 'bob', [{ device: 2, body: 'AQ==' }]));
  protocol.send(sendFrame('b2', 'bob', [{ device: 2, body: 'Ag==' }]));
  assert.deepEqual(protocol.pendingSends().map((data) => JSON.parse(data).id), ['a1', 'b2']);
  const event = protocol.receive(JSON.stringify({ type: 'accepted', id: 'a1', message: 'S1', at: 9, duplicate: true }));
  assert.equal(event.kind, 'accepted');
  assert.deepEqual(protocol.pendingSends().map((data) => JSON.parse(data).id), ['b2']);
});

test('an error naming a pending send refuses it; others are plain errors', () => {
  const protocol = new ClientProtocol();
  protocol.send(sendFrame('c3', 'bob', [{ device: 2, body: 'AQ==' }]));
  const refused = protocol.receive(JSON.stringify({
    type: 'error', code: 'devices-mismatch', message: 'refresh', ref: 'c3', retry_after: null, details: { missing: [4], extra: [] },
  }));
  assert.equal(refused.kind, 'refused');
  assert.equal(refused.error.code, 'devices-mismatch');
  assert.deepEqual(refused.error.details.missing, [4]);
  const other = protocol.receive(JSON.stringify({
    type: 'error', code: 'not-a-contact', message: 'no', ref: null, retry_after: null, details: { users: ['eve'] },
  }));
  assert.equal(other.kind, 'error');
  assert.ok(other.error instanceof LienError);
});

test('acks cover handled entries only, up to what was saved, and restart at ready', () => {
  const protocol = new ClientProtocol();
  protocol.receive(JSON.stringify(ready));
  for (const seq of [1, 2, 3]) assert.equal(protocol.receive(JSON.stringify(deliver(seq))).kind, 'inbox');
  assert.equal(protocol.ack(), null);
  protocol.handled(1);
  protocol.handled(2);
  const savedUpTo = protocol.handledSeq;
  protocol.handled(3); // handled while the keystore was being saved
  assert.deepEqual(JSON.parse(protocol.ack(savedUpTo)), { type: 'ack', up_to: 2 });
  assert.equal(protocol.unacked, 1);
  assert.deepEqual(JSON.parse(protocol.ack()), { type: 'ack', up_to: 3 });
  assert.equal(protocol.ack(), null);
  protocol.receive(JSON.stringify(ready));
  assert.equal(protocol.handledSeq, 0);
  assert.equal(protocol.ack(), null);
});

test('server frames are checked: bad JSON, unknown types and bad fields are refused', () => {
  assert.throws(() => decodeServerFrame('{'), (error) => error.code === 'malformed-frame');
  assert.throws(() => decodeServerFrame('{"type":"nope"}'), (error) => error.code === 'unknown-frame-type');
  assert.throws(() => decodeServerFrame(JSON.stringify({ ...deliver(1), seq: 'x' })), (error) => error.code === 'malformed-frame');
  assert.equal(decodeServerFrame(JSON.stringify({ type: 'presence', user: 'bob', online: true })).online, true);
});

test('client ids are 24 hex characters; sends are validated', () => {
  assert.match(newClientId(), /^[0-9a-f]{24}$/);
  assert.throws(() => sendFrame('a b', 'bob', [{ device: 1, body: 'AQ==' }]), RangeError);
  assert.throws(() => sendFrame('ok', 'Bob', [{ device: 1, body: 'AQ==' }]), RangeError);
  assert.throws(() => sendFrame('ok', 'bob', []), RangeError);
});

test('backoff doubles to its cap, with jitter, and resets', () => {
  const backoff = new Backoff({ min: 100, max: 5000, random: () => 0.5 });
  const delays = Array.from({ length: 8 }, () => backoff.next());
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  backoff.reset();
  assert.equal(backoff.next(), 100);
  const jittered = new Backoff({ random: () => 0 });
  assert.equal(jittered.next(), 50);
});

test('the receipt signing input is the bytes lien.ledger.receipt_signing_input gives', () => {
  const input = receiptSigningInput({
    message: '018f00aa', kind: 'read', ciphertextSha256: Uint8Array.from({ length: 32 }, (_, index) => index),
    deviceTime: 1795530237503, by: 'dr.martin', byDevice: 7,
  });
  // Printed by: python -c "from lien import ledger; print(ledger.receipt_signing_input(message='018f00aa',
  //   kind='read', ciphertext_sha256=bytes(range(32)), device_time=1795530237503, by='dr.martin', by_device=7).hex())"
  assert.equal(toHex(input), '6c69656e2d726563656970742d7631000830313866303061610472656164000102030405060708090a0b0c0d'
    + '0e0f101112131415161718191a1b1c1d1e1f000001a20df1263f0964722e6d617274696e0000000000000007');
});
