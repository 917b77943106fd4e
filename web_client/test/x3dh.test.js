// x3dh.json (docs/protocol-crypto.md §3.2, §3.5): keys, DH1–DH4, SK and AD on both sides; bad bundles.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair, signedPrekeyMessage } from '../src/crypto/keys.js';
import { x25519Public } from '../src/crypto/primitives.js';
import { OneTimePrekeyPublic, PrekeyBundle, initiate, respond } from '../src/crypto/x3dh.js';
import { errorCode, h, hex, identityFrom, loadVectors } from '../test-support/vectors.js';

const data = loadVectors('x3dh.json');

for (const c of data.cases) {
  test(`X3DH case ${c.name}: same DH values, SK and AD on both sides`, () => {
    const alice = identityFrom(c.initiator);
    const bob = identityFrom(c.responder);
    const spk = SignedPrekeyPair.fromSecretBytes(c.signed_prekey.id, h(c.signed_prekey.private), h(c.signed_prekey.signature));
    assert.equal(hex(spk.publicKey), c.signed_prekey.public);
    assert.equal(hex(signedPrekeyMessage(spk.prekeyId, spk.publicKey)), c.signed_prekey_message);
    assert.ok(bob.public.verify(h(c.signed_prekey_message), spk.signature));
    // Ed25519 is deterministic: signing again gives the vector's signature
    assert.equal(hex(SignedPrekeyPair.fromPrivateBytes(c.signed_prekey.id, h(c.signed_prekey.private), bob).signature),
      c.signed_prekey.signature);
    let opk = null;
    if (c.one_time_prekey !== null) {
      opk = OneTimePrekeyPair.fromPrivateBytes(c.one_time_prekey.id, h(c.one_time_prekey.private));
      assert.equal(hex(opk.publicKey), c.one_time_prekey.public);
    }
    const bundle = new PrekeyBundle(bob.public, spk.prekeyId, spk.publicKey, spk.signature,
      opk === null ? null : new OneTimePrekeyPublic(opk.prekeyId, opk.publicKey));
    const ephemeral = h(c.ephemeral.private);
    assert.equal(hex(x25519Public(ephemeral)), c.ephemeral.public);
    const sent = initiate(alice, bundle, ephemeral);
    const received = respond(bob, spk, opk, alice.public, h(c.ephemeral.public));
    for (const secret of [sent, received]) {
      assert.deepEqual(secret.dhOutputs.map(hex), c.dh);
      assert.equal(hex(secret.sharedSecret), c.shared_secret);
      assert.equal(hex(secret.associatedData), c.associated_data);
    }
    assert.equal(c.dh.length, opk ? 4 : 3);
  });
}

test('both cases are covered: with and without a one-time prekey', () => {
  assert.deepEqual(data.cases.map((c) => c.one_time_prekey === null), [false, true]);
});

test('a bundle whose signature is altered is refused with bad-prekey-signature', () => {
  assert.ok(data.rejected_bundles.length >= 1);
  for (const c of data.rejected_bundles) {
    const identity = new PublicIdentity(h(c.identity_signing_key), Uint8Array.from({ length: 32 }, (_, i) => i));
    const code = errorCode(() => new PrekeyBundle(identity, c.signed_prekey_id, h(c.signed_prekey), h(c.signature)));
    assert.equal(code, c.error);
    assert.equal(code, 'bad-prekey-signature');
  }
});

test('a bundle is refused when its signature is for another id, or a key is not canonical', () => {
  const c = data.cases[0];
  const bob = identityFrom(c.responder);
  const spk = h(c.signed_prekey.public);
  const signature = h(c.signed_prekey.signature);
  assert.equal(errorCode(() => new PrekeyBundle(bob.public, c.signed_prekey.id + 1, spk, signature)), 'bad-prekey-signature');
  assert.equal(errorCode(() => new PrekeyBundle(bob.public, c.signed_prekey.id, spk, signature.slice(0, 63))),
    'bad-prekey-signature');
  const flipped = Uint8Array.from(spk);
  flipped[31] |= 0x80;
  assert.equal(errorCode(() => new PrekeyBundle(bob.public, c.signed_prekey.id, flipped, signature)), 'invalid-key');
  assert.equal(errorCode(() => new OneTimePrekeyPublic(1, flipped)), 'invalid-key');
  assert.equal(errorCode(() => new PublicIdentity(bob.public.signingKey, flipped)), 'invalid-key');
  assert.throws(() => new PrekeyBundle(bob.public, 2 ** 31, spk, signature), RangeError);
});

test('PrekeyBundle.fromApi reads the server JSON (standard base64)', () => {
  const c = data.cases[0];
  const b64 = (value) => Buffer.from(h(value)).toString('base64');
  const bundle = PrekeyBundle.fromApi({
    device: 7,
    identity_signing_key: b64(c.responder.signing_key),
    identity_exchange_key: b64(c.responder.exchange_key),
    signed_prekey: { id: c.signed_prekey.id, key: b64(c.signed_prekey.public), signature: b64(c.signed_prekey.signature) },
    prekey: { id: c.one_time_prekey.id, key: b64(c.one_time_prekey.public) },
  });
  assert.equal(bundle.oneTimePrekey.prekeyId, c.one_time_prekey.id);
  assert.equal(hex(bundle.signedPrekey), c.signed_prekey.public);
});
