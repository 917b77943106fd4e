// session.json (docs/protocol-crypto.md §3.5 to §3.8, §3.11): a whole conversation, byte for byte.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CryptoError } from '../src/crypto/errors.js';
import { OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair } from '../src/crypto/keys.js';
import { Conversation } from '../src/crypto/payload.js';
import { DEFAULT_LIMITS } from '../src/crypto/ratchet.js';
import { _acceptWithRandom, _initiateWithRandom } from '../src/crypto/session.js';
import { parseBody } from '../src/crypto/wire.js';
import { OneTimePrekeyPublic, PrekeyBundle } from '../src/crypto/x3dh.js';
import { addressFrom, h, hex, identityFrom, loadVectors, payloadFrom } from '../test-support/vectors.js';

const data = loadVectors('session.json');

/** One party: keys from the file, randomness = the file's list of draws, in order. */
class Party {
  constructor(vector) {
    this.identity = identityFrom(vector.identity);
    this.address = addressFrom(vector.address);
    this.draws = vector.random.map(h);
    this.drawn = 0;
    this.session = null;
    this.draw = (size) => {
      assert.equal(size, 32);
      assert.ok(this.drawn < this.draws.length, 'more random draws than the vectors list');
      return this.draws[this.drawn++];
    };
  }
}

function bundleFrom(vector) {
  return new PrekeyBundle(
    new PublicIdentity(h(vector.identity_signing_key), h(vector.identity_exchange_key)),
    vector.signed_prekey.id, h(vector.signed_prekey.key), h(vector.signed_prekey.signature),
    new OneTimePrekeyPublic(vector.one_time_prekey.id, h(vector.one_time_prekey.key)),
  );
}

test('the session.json conversation replays byte for byte, failures leaving the session unchanged', () => {
  const parties = { alice: new Party(data.alice), bob: new Party(data.bob) };
  const { alice, bob } = parties;
  const spk = SignedPrekeyPair.fromSecretBytes(data.bob_signed_prekey.id, h(data.bob_signed_prekey.private),
    h(data.bob_signed_prekey.signature));
  assert.equal(hex(spk.publicKey), data.bob_signed_prekey.public);
  const opk = OneTimePrekeyPair.fromPrivateBytes(data.bob_one_time_prekey.id, h(data.bob_one_time_prekey.private));
  assert.equal(hex(opk.publicKey), data.bob_one_time_prekey.public);
  alice.session = _initiateWithRandom(alice.identity, alice.address, bob.address, bundleFrom(data.bundle),
    DEFAULT_LIMITS, alice.draw);
  assert.equal(hex(alice.session.associatedData), data.associated_data);
  assert.equal(alice.session.awaitingReply, true);

  const bodies = new Map();
  const outcomes = { ok: 0, error: 0, encrypt: 0 };
  for (const step of data.steps) {
    const me = parties[step.by];
    const other = step.by === 'alice' ? bob : alice;
    if (step.op === 'encrypt') {
      const body = me.session.encrypt(payloadFrom(step.payload), me.identity);
      assert.equal(hex(body), step.body, step.label);
      assert.equal(hex(parseBody(body).prefix), step.parsed.prefix);
      bodies.set(step.label, body);
      outcomes.encrypt += 1;
      continue;
    }
    const body = 'body' in step ? h(step.body) : bodies.get(step.label);
    const conversation = Conversation.user(me.address.user);
    const before = me.session === null ? null : JSON.stringify(me.session.toDict());
    let received;
    try {
      if (step.accept) {
        assert.equal(me.session, null);
        const accepted = _acceptWithRandom(me.identity, me.address, body, {
          deliveredBy: other.address,
          senderIdentity: other.identity.public,
          conversation,
          signedPrekeys: (keyId) => (keyId === spk.prekeyId ? spk : null),
          oneTimePrekeys: (keyId) => (keyId === opk.prekeyId ? opk : null),
        }, me.draw);
        assert.equal(accepted.usedOneTimePrekeyId, step.used_one_time_prekey_id);
        me.session = accepted.session;
        received = accepted.message;
      } else {
        received = me.session.decrypt(body, { deliveredBy: other.address, conversation });
      }
    } catch (error) {
      if (!(error instanceof CryptoError)) throw error;
      assert.equal(error.code, step.error, `${step.label}: ${error.code}`);
      assert.equal(JSON.stringify(me.session.toDict()), before, `${step.label} changed the session`);
      outcomes.error += 1;
      continue;
    }
    assert.ok(!('error' in step), `${step.label} should have failed with ${step.error}`);
    assert.equal(hex(received.encoded), step.payload_bytes, step.label);
    assert.equal(hex(received.signature), step.signature, step.label);
    assert.equal(hex(received.signer), hex(other.identity.public.signingKey));
    outcomes.ok += 1;
  }
  assert.deepEqual(outcomes, { ok: 7, error: 3, encrypt: 7 });
  assert.equal(alice.drawn, data.alice.random.length);
  assert.equal(bob.drawn, data.bob.random.length);
  assert.equal(alice.session.awaitingReply, false);
});

test('the replay covers prekey and ratchet messages, out-of-order delivery and both DH directions', () => {
  const types = data.steps.filter((s) => s.op === 'encrypt').map((s) => `${s.by}:${s.parsed.type}`);
  assert.deepEqual(new Set(types), new Set(['alice:prekey', 'bob:ratchet', 'alice:ratchet']));
  const codes = data.steps.filter((s) => s.error).map((s) => s.error);
  assert.deepEqual(codes, ['replayed-message', 'replayed-message', 'decryption-failed']);
});
