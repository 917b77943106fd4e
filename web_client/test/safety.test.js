// safety.json (docs/protocol-crypto.md §3.10): per-user fingerprints and 60-digit safety numbers.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PublicIdentity } from '../src/crypto/keys.js';
import { safetyNumber, userFingerprint } from '../src/crypto/safety.js';
import { h, loadVectors } from '../test-support/vectors.js';

const data = loadVectors('safety.json');
const users = new Map(data.users.map((user) => [
  user.username,
  user.devices.map((device) => new PublicIdentity(h(device.signing_key), h(device.exchange_key))),
]));

test('user fingerprints, whatever the order of the devices', () => {
  for (const user of data.users) {
    const devices = users.get(user.username);
    assert.equal(userFingerprint(user.username, devices), user.fingerprint);
    assert.equal(userFingerprint(user.username, [...devices].reverse()), user.fingerprint);
    assert.equal(userFingerprint(user.username, [...devices, devices[0]]), user.fingerprint); // a set
  }
});

test('safety numbers are the same either way round', () => {
  assert.ok(data.pairs.length >= 2);
  for (const pair of data.pairs) {
    const [first, second] = pair.users;
    const number = safetyNumber(first, users.get(first), second, users.get(second));
    assert.equal(number.digits, pair.safety_number);
    assert.match(number.digits, /^\d{60}$/);
    assert.equal(safetyNumber(second, users.get(second), first, users.get(first)).digits, number.digits);
    assert.equal(number.groups().length, 12);
    assert.equal(String(number).split(' ').join(''), number.digits);
  }
});

test('a changed device set changes the fingerprint; bad input is refused', () => {
  const [user] = data.users;
  const devices = users.get(user.username);
  assert.notEqual(userFingerprint(user.username, devices.slice(1)), user.fingerprint);
  assert.throws(() => userFingerprint(user.username, []), RangeError);
  assert.throws(() => userFingerprint('', devices), RangeError);
  assert.throws(() => safetyNumber(user.username, devices, user.username, devices), RangeError);
});
