// errors.js has the classes, the tree and the stable codes of lien/crypto/errors.py (docs/protocol-crypto.md §3.9).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import * as errors from '../src/crypto/errors.js';

/** `[{name, base, code}]` read from the Python module's source. */
function pythonErrors() {
  const source = readFileSync(new URL('../../lien/crypto/errors.py', import.meta.url), 'utf8');
  const found = [];
  for (const match of source.matchAll(/^class (\w+)\((\w+)\):[\s\S]*?^\s+code(?:: ClassVar\[str\])? = "([a-z-]+)"/gm)) {
    found.push({ name: match[1], base: match[2], code: match[3] });
  }
  return found;
}

test('every Python error class exists here with the same base and code', () => {
  const python = pythonErrors();
  assert.equal(python.length, 28);
  for (const { name, base, code } of python) {
    const type = errors[name];
    assert.ok(type, `${name} is missing`);
    assert.equal(type.code, code, name);
    if (base !== 'Exception') assert.equal(Object.getPrototypeOf(type), errors[base], `${name} extends ${base}`);
    const instance = new type();
    assert.equal(instance.code, code);
    assert.equal(instance.name, name);
    assert.equal(instance.message, type.publicMessage);
    assert.ok(instance instanceof errors.CryptoError && instance instanceof Error);
  }
  const here = Object.keys(errors).sort();
  assert.deepEqual(here, python.map((entry) => entry.name).sort());
});

test('the §3.9 table: decryption failures are DecryptionFailed, signature checks are not', () => {
  for (const name of ['MalformedMessage', 'ReplayedMessage', 'TooManySkipped', 'UnknownPrekey', 'NoSession',
    'SessionMismatch', 'MalformedPayload']) {
    assert.ok(new errors[name]() instanceof errors.DecryptionFailed, name);
  }
  for (const name of ['BadSignature', 'SenderMismatch', 'WrongRecipient', 'ConversationMismatch', 'IdentityMismatch']) {
    assert.ok(!(new errors[name]() instanceof errors.DecryptionFailed), name);
  }
  assert.ok(new errors.SessionStateCorrupt() instanceof errors.KeystoreCorrupt);
  assert.equal(new errors.DecryptionFailed('custom').message, 'custom');
});
