// Trust on first use and device changes (app/directory.js), with a fake API and keystore.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { toBase64 } from '../src/crypto/bytes.js';
import { IdentityKeyPair } from '../src/crypto/keys.js';
import { Directory, compare, decodeIdentities, encodeIdentities } from '../app/directory.js';
import { IdentityNotAccepted } from '../app/e2e.js';

const listing = (devices) => ({
  devices: [...devices].map(([device, identity]) => ({
    device,
    identity_signing_key: toBase64(identity.public.signingKey),
    identity_exchange_key: toBase64(identity.public.exchangeKey),
  })),
});

function setUp() {
  const devices = new Map([[3, IdentityKeyPair.generate()]]);
  const api = { devices: async () => listing(devices) };
  const keystore = { username: 'me', data: { trusted: {}, identity_changes: {} } };
  keystore.trusted = (user) => keystore.data.trusted[user] ?? null;
  keystore.setTrusted = (user, encoded) => { keystore.data.trusted[user] = encoded; };
  const reports = [];
  return { devices, directory: new Directory(api, keystore, (event) => reports.push(event)), reports };
}

test('identity sets encode as the SDK does and compare by device', () => {
  const a = IdentityKeyPair.generate().public;
  const b = IdentityKeyPair.generate().public;
  const encoded = encodeIdentities(new Map([[9, b], [2, a]]));
  const decoded = decodeIdentities(encoded);
  assert.deepEqual([...decoded.keys()], [2, 9]);
  assert.ok(decoded.get(2).equals(a));
  assert.deepEqual(compare(new Map([[2, a]]), new Map([[2, b], [5, a]])), { added: [5], removed: [], replaced: [2] });
});

test('first sight is trusted; an added device waits for the user; accepting clears it', async () => {
  const { devices, directory, reports } = setUp();
  await directory.devices('bob');
  directory.checkAccepted('bob');
  devices.set(8, IdentityKeyPair.generate());
  await directory.devices('bob', { refresh: true });
  assert.deepEqual(directory.pendingChange('bob').added, [8]);
  assert.throws(() => directory.checkAccepted('bob'), IdentityNotAccepted);
  assert.equal(reports.length, 1);
  await directory.accept('bob');
  assert.equal(directory.pendingChange('bob'), null);
  directory.checkAccepted('bob');
});

test('a removed device needs no check', async () => {
  const { devices, directory } = setUp();
  devices.set(4, IdentityKeyPair.generate());
  await directory.devices('bob');
  devices.delete(4);
  await directory.devices('bob', { refresh: true });
  assert.equal(directory.pendingChange('bob'), null);
});
