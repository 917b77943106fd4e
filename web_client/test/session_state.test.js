// Stored sessions (docs/protocol-crypto.md §3.6.6, §3.6.7): round trips, corrupt states, forward secrecy, no leaks.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { test } from 'node:test';

import { fromBase64, toHex, utf8 } from '../src/crypto/bytes.js';
import { DecryptionFailed } from '../src/crypto/errors.js';
import { aeadDecrypt, kdfCk } from '../src/crypto/primitives.js';
import { RatchetLimits } from '../src/crypto/ratchet.js';
import { Session, initiateSession } from '../src/crypto/session.js';
import { parseBody } from '../src/crypto/wire.js';
import { Device, decryptFails, openPair, payload, receive, send, skippedCount } from '../test-support/pair.js';

const codeOf = (action) => {
  try {
    action();
  } catch (error) {
    return error.code;
  }
  return null;
};

test('a session round-trips through toDict/fromDict and toBytes/fromBytes, and keeps working', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const bodies = Array.from({ length: 3 }, (_, i) => send(aliceSession, alice, bob, `n${i}`));
  receive(bobSession, bodies[2], alice, bob);
  const dict = bobSession.toDict();
  assert.deepEqual(JSON.parse(JSON.stringify(dict)), dict, 'JSON-safe');
  const restored = Session.fromBytes(bobSession.toBytes());
  assert.deepEqual(restored.toDict(), dict);
  const fromDict = Session.fromDict(structuredClone(dict));
  assert.deepEqual(fromDict.toDict(), dict);
  assert.equal(receive(restored, bodies[0], alice, bob).payload.text, 'n0');
  assert.equal(receive(fromDict, bodies[1], alice, bob).payload.text, 'n1');
  const reply = send(restored, bob, alice, 'after restart');
  assert.equal(receive(Session.fromBytes(aliceSession.toBytes()), reply, bob, alice).payload.text, 'after restart');
  assert.equal(dict.own_device, '2');
  assert.equal(dict.role, 'responder');
});

test('an initiator still awaiting a reply round-trips and keeps sending prekey messages', () => {
  const alice = new Device('alice', 1);
  const bob = new Device('bob', 2);
  const waiting = initiateSession(alice.identity, alice.address, bob.address, bob.bundle());
  const restored = Session.fromDict(JSON.parse(JSON.stringify(waiting.toDict())));
  assert.equal(restored.awaitingReply, true);
  const body = send(restored, alice, bob, 'après redémarrage');
  assert.equal(body[1], 0x02);
  assert.equal(bob.accept(body, alice).message.payload.text, 'après redémarrage');
});

for (const change of [
  { format: 2 },
  { role: 'observer' },
  { root_key: 'AAAA' },
  { root_key: 'not base64!' },
  { sending_length: -1 },
  { sending_length: 2 ** 32 + 1 },
  { sending_length: 1.5 },
  { receiving_key: null },
  { confirmed: false },
  { confirmed: 'yes' },
  { peer_user: 'Not A User' },
  { peer_device: '0' },
  { peer_device: 2 },
  { peer_device: String(2n ** 62n + 1n) },
  { peer_exchange_key: `${'7'.repeat(43)}=` },
  { peer_exchange_key: Buffer.from(new Uint8Array(32).fill(0xff)).toString('base64') },
  { signed_prekey_id: 2 ** 31 },
  { one_time_prekey_id: -1 },
  { skipped: 'none' },
  { skipped: [[1, 2, 3]] },
  { previous_receiving_keys: [Buffer.from(new Uint8Array(32).fill(0xff)).toString('base64')] },
  { unexpected: 1 },
]) {
  test(`a state with ${JSON.stringify(change)} is session-state-corrupt`, () => {
    const { bobSession } = openPair();
    const data = { ...bobSession.toDict(), ...change };
    assert.equal(codeOf(() => Session.fromDict(data)), 'session-state-corrupt');
  });
}

test('a state missing a field, or not an object, is session-state-corrupt', () => {
  const { bobSession } = openPair();
  const data = bobSession.toDict();
  delete data.skipped;
  assert.equal(codeOf(() => Session.fromDict(data)), 'session-state-corrupt');
  for (const value of [null, [], 'state', 42]) assert.equal(codeOf(() => Session.fromDict(value)), 'session-state-corrupt');
});

test('inconsistent skipped keys are refused', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const bodies = Array.from({ length: 3 }, () => send(aliceSession, alice, bob));
  receive(bobSession, bodies[2], alice, bob);
  let data = bobSession.toDict();
  data.skipped = [data.skipped[0], data.skipped[0]];
  assert.equal(codeOf(() => Session.fromDict(data)), 'session-state-corrupt');
  data = bobSession.toDict();
  data.skipped[0][3] = data.receive_steps + 1;
  assert.equal(codeOf(() => Session.fromDict(data)), 'session-state-corrupt');
});

test('truncated or garbage state bytes are refused', () => {
  const { bobSession } = openPair();
  const data = bobSession.toBytes();
  for (let size = 0; size < data.length; size += 7) {
    assert.equal(codeOf(() => Session.fromBytes(data.slice(0, size))), 'session-state-corrupt');
  }
  assert.equal(codeOf(() => Session.fromBytes(new Uint8Array(64))), 'session-state-corrupt');
  assert.equal(codeOf(() => Session.fromBytes(Uint8Array.of(0xff, 0xfe))), 'session-state-corrupt');
  assert.equal(codeOf(() => Session.fromBytes(utf8('{"format": 1}'))), 'session-state-corrupt');
});

test('tighter limits on restore trim the skipped keys, oldest first', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const bodies = Array.from({ length: 10 }, () => send(aliceSession, alice, bob));
  receive(bobSession, bodies[9], alice, bob);
  assert.equal(skippedCount(bobSession), 9);
  const tight = new RatchetLimits({ maxSkip: 4, maxSkippedKeys: 4, skippedKeyMaxSteps: 2 });
  const restored = Session.fromBytes(bobSession.toBytes(), { limits: tight });
  assert.equal(skippedCount(restored), 4);
  assert.ok(receive(restored, bodies[8], alice, bob));
  assert.equal(decryptFails(restored, bodies[0], alice.address, 'bob'), 'replayed-message');
});

/** Every 32-byte secret a stored state holds, and the next 50 keys of each chain. */
function stateSecrets(session) {
  const data = session.toDict();
  const secrets = [data.root_key, data.sending_private, ...data.skipped.map((record) => record[2])].map(fromBase64);
  for (const chain of [data.sending_chain_key, data.receiving_chain_key]) {
    if (chain === null) continue;
    let chainKey = fromBase64(chain);
    secrets.push(chainKey);
    for (let i = 0; i < 50; i++) {
      const [next, messageKey] = kdfCk(chainKey);
      secrets.push(next, messageKey);
      chainKey = next;
    }
  }
  return secrets;
}

const opens = (key, parsed, ad) => {
  try {
    aeadDecrypt(key, parsed.ciphertext, Buffer.concat([ad, parsed.prefix]));
    return true;
  } catch (error) {
    assert.ok(error instanceof DecryptionFailed);
    return false;
  }
};

test('forward secrecy: no key in either state opens a decrypted message (§3.6.6)', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const bodies = Array.from({ length: 4 }, (_, i) => send(aliceSession, alice, bob, `n${i}`));
  receive(bobSession, bodies[2], alice, bob); // n0 and n1 skipped, their keys stored
  receive(bobSession, bodies[0], alice, bob);
  const candidates = [...stateSecrets(bobSession), ...stateSecrets(aliceSession)];
  assert.ok(candidates.length > 100);
  const ad = bobSession.associatedData;
  for (const candidate of candidates) assert.equal(opens(candidate, parseBody(bodies[0]), ad), false);
  const usable = stateSecrets(bobSession).filter((key) => opens(key, parseBody(bodies[1]), ad));
  assert.equal(usable.length, 1, 'the skipped key of n1 is in the state until n1 arrives');
});

test('no secret shows in strings, JSON or inspection of sessions, keys and payloads', () => {
  const { alice, bob, bobSession } = openPair();
  const state = bobSession.toDict();
  const secrets = [state.root_key, state.sending_private, state.sending_chain_key, state.receiving_chain_key]
    .map((value) => toHex(fromBase64(value)));
  secrets.push(...alice.identity.secretBytes().map(toHex), toHex(bob.signedPrekey.privateBytes()));
  const texts = [
    String(bobSession), JSON.stringify(bobSession), inspect(bobSession, { depth: 10, showHidden: true }),
    String(alice.identity), JSON.stringify(alice.identity), inspect(alice.identity, { depth: 10, showHidden: true }),
    String(bob.signedPrekey), inspect(bob.signedPrekey, { depth: 10, showHidden: true }),
    inspect(bob.bundle(), { depth: 10 }), String(new DecryptionFailed()),
  ];
  const numbers = (hex) => Buffer.from(hex, 'hex').join(',');
  for (const text of texts) {
    for (const secret of secrets) {
      assert.ok(!text.includes(secret) && !text.includes(secret.slice(0, 16)), text);
      assert.ok(!text.replaceAll(' ', '').includes(numbers(secret).slice(0, 40)), text);
    }
  }
  assert.match(String(bobSession), /alice/);
  const message = payload(alice, bob, 'Kaliémie confidentielle');
  assert.ok(!String(message).includes('confidentielle'));
  assert.ok(!JSON.stringify({ message }).includes('confidentielle'));
});
