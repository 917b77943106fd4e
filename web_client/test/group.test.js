// Sender keys (docs/protocol-group.md §3.17): distribution over a session, tampering, replay,
// unknown keys, bounds, rotation, all-or-nothing, stored state, misuse.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { concat, toBase64, u32 } from '../src/crypto/bytes.js';
import { CryptoError } from '../src/crypto/errors.js';
import { END_OF_CHAIN, SenderSigningKey } from '../src/crypto/group_chain.js';
import {
  SenderKey, SenderKeyLimits, SenderKeyReceiver, _createWithRandom, acceptDistribution, groupBodyKeyId, isDistribution,
} from '../src/crypto/group.js';
import {
  SenderKeyDistribution, encodeGroupHeader, groupAssociatedData, groupBodySigningInput,
} from '../src/crypto/group_wire.js';
import { IdentityKeyPair } from '../src/crypto/keys.js';
import {
  Conversation, DeviceAddress, GroupPayload, Payload, encodePlaintext, signPayload, verifyPayload,
} from '../src/crypto/payload.js';
import { GROUP_MESSAGE_KEY_INFO, aeadEncrypt, kdfCk, randomBytes } from '../src/crypto/primitives.js';
import { acceptPrekeyMessage, initiateSession } from '../src/crypto/session.js';
import { Device } from '../test-support/pair.js';
import { errorCode } from '../test-support/vectors.js';

const GROUP = 'GABCDEFGH234567';
const conversation = Conversation.group(GROUP);

/** A member device: an identity, an address, and its sender key in the group (its seed kept, to forge with). */
class Member {
  constructor(user, deviceId) {
    this.address = new DeviceAddress(user, BigInt(deviceId));
    this.identity = IdentityKeyPair.generate();
    const draws = [];
    this.key = _createWithRandom(GROUP, this.address, this.identity.public, (size) => {
      draws.push(randomBytes(size));
      return draws.at(-1);
    }, null);
    this.signingKey = new SenderSigningKey(draws.at(-1));
    this.sent = 0;
  }

  /** A receiver of this member's current key, as another member installs it. */
  receiver(limits) {
    const receiver = SenderKeyReceiver.create(GROUP, this.address, this.identity.public, { limits });
    receiver.install(this.key.distribution().encode());
    return receiver;
  }

  encrypt(text = `message ${this.sent}`) {
    this.sent += 1;
    const payload = new GroupPayload({
      sender: this.address, conversation, clientMessageId: `g-${this.sent}`, sentAtMs: 1_700_000_000_000n, text,
    });
    return this.key.encrypt(payload, this.identity);
  }
}

function open(receiver, body, from, context = {}) {
  return receiver.decrypt(body, { deliveredBy: from.address, conversation, ...context });
}

/** `action` fails with `code` and leaves `receiver` exactly as it was. */
function refuses(receiver, code, action) {
  const before = JSON.stringify(receiver.toDict());
  assert.equal(errorCode(action), code);
  assert.equal(JSON.stringify(receiver.toDict()), before, `${code} changed the receiver`);
}

function flipped(body, index) {
  const copy = Uint8Array.from(body);
  copy[index] ^= 0x01;
  return copy;
}

test('a distribution travels over a pairwise session; the body opens and its proof verifies offline', () => {
  const alice = new Device('alice', 1);
  const bob = new Device('bob', 2);
  const key = SenderKey.create(GROUP, alice.address, alice.identity.public);
  const session = initiateSession(alice.identity, alice.address, bob.address, bob.bundle());
  const carried = key.distributionPayload(bob.address, { clientMessageId: 'k-1', sentAtMs: 1n });
  assert.ok(isDistribution(carried));
  const body0 = session.encrypt(carried, alice.identity);
  const context = (inGroup) => ({
    deliveredBy: alice.address, senderIdentity: alice.identity.public,
    conversation: inGroup ? conversation : Conversation.user('bob'),
    signedPrekeys: () => bob.signedPrekey, oneTimePrekeys: (id) => bob.oneTimePrekeys.get(id),
  });
  // the carrier belongs to the group's conversation: opened as a 1:1 message it is refused
  assert.equal(errorCode(() => acceptPrekeyMessage(bob.identity, bob.address, body0, context(false))), 'conversation-mismatch');
  const accepted = acceptPrekeyMessage(bob.identity, bob.address, body0, context(true));
  const receiver = acceptDistribution(accepted.message, { senderIdentity: alice.identity.public, receiver: null });
  assert.deepEqual(receiver.keyIds, [key.keyId]);

  const payload = new GroupPayload({
    sender: alice.address, conversation, clientMessageId: 'g-1', sentAtMs: 1_700_000_000_000n,
    text: 'Kaliémie à 6,8 mmol/L — qui rappelle le patient ? 🩺',
  });
  const body = key.encrypt(payload, alice.identity);
  assert.equal(body[0], 0x03);
  assert.equal(groupBodyKeyId(body), key.keyId);
  const signed = receiver.decrypt(body, { deliveredBy: alice.address, conversation });
  assert.equal(signed.payload.text, payload.text);
  const proven = verifyPayload(signed.encoded, signed.signature, alice.identity.public.signingKey);
  assert.ok(proven instanceof GroupPayload && proven.sender.equals(alice.address));
});

test('a distribution is refused from another identity, for another group, or as a repeated key id', () => {
  const alice = new Member('alice', 1);
  const mallory = new Member('mallory', 2);
  const carried = (text, conversationId = GROUP) => ({
    payload: new Payload({
      sender: alice.address, recipient: mallory.address, conversation: Conversation.group(conversationId),
      clientMessageId: 'k', sentAtMs: 1n, text, contentType: 'application/vnd.lien.sender-key',
    }),
    signer: alice.identity.public.signingKey,
  });
  const good = toBase64(alice.key.distribution().encode());
  assert.equal(errorCode(() => acceptDistribution(carried(good),
    { senderIdentity: mallory.identity.public, receiver: null })), 'identity-mismatch');
  assert.equal(errorCode(() => acceptDistribution(carried(good, 'GOTHERGROUP'),
    { senderIdentity: alice.identity.public, receiver: null })), 'invalid-distribution');
  assert.equal(errorCode(() => acceptDistribution(carried('pas du base64 !'),
    { senderIdentity: alice.identity.public, receiver: null })), 'invalid-distribution');
  assert.throws(() => acceptDistribution({ payload: new Payload({
    sender: alice.address, recipient: mallory.address, conversation, clientMessageId: 'k', sentAtMs: 1n, text: good,
  }), signer: alice.identity.public.signingKey }, { senderIdentity: alice.identity.public, receiver: null }), RangeError);

  // the same key id with another signing key is refused; the same distribution changes nothing
  const receiver = acceptDistribution(carried(good), { senderIdentity: alice.identity.public, receiver: null });
  const impostor = _createWithRandom(GROUP, alice.address, alice.identity.public,
    (size) => (size === 4 ? u32(alice.key.keyId) : randomBytes(size)), null);
  assert.equal(impostor.keyId, alice.key.keyId);
  refuses(receiver, 'invalid-distribution', () => receiver.install(impostor.distribution().encode()));
  assert.equal(receiver.install(alice.key.distribution().encode()), false);
});

test('a repeated distribution does not rewind the chain: a message read once stays refused', () => {
  const alice = new Member('alice', 1);
  const at0 = alice.key.distribution().encode();
  const receiver = alice.receiver();
  const first = alice.encrypt();
  open(receiver, first, alice);
  assert.equal(receiver.install(at0), false);
  refuses(receiver, 'replayed-message', () => open(receiver, first, alice));
});

test('every flipped bit of a body is refused, changes nothing, and the original still opens', () => {
  const alice = new Member('alice', 1);
  const receiver = alice.receiver();
  const body = alice.encrypt('Résultat à 14 h');
  const positions = [0, 1, 4, 5, 8, 9, 20, body.length - 65, body.length - 64, body.length - 1];
  const codes = new Set();
  for (const index of positions) {
    const before = JSON.stringify(receiver.toDict());
    const code = errorCode(() => open(receiver, flipped(body, index), alice));
    assert.ok(code !== null, `byte ${index}`);
    codes.add(code);
    assert.equal(JSON.stringify(receiver.toDict()), before);
  }
  assert.deepEqual([...codes].sort(), ['decryption-failed', 'unknown-sender-key', 'unsupported-format']);
  assert.equal(open(receiver, body, alice).payload.text, 'Résultat à 14 h');
  refuses(receiver, 'malformed-message', () => open(receiver, body.subarray(0, 88), alice));
  refuses(receiver, 'malformed-message', () => open(receiver, new Uint8Array(0), alice));
});

test('out of order, replay, unknown sender key', () => {
  const alice = new Member('alice', 1);
  const receiver = alice.receiver();
  const bodies = [alice.encrypt('0'), alice.encrypt('1'), alice.encrypt('2')];
  assert.equal(open(receiver, bodies[2], alice).payload.text, '2');
  assert.equal(open(receiver, bodies[0], alice).payload.text, '0');
  refuses(receiver, 'replayed-message', () => open(receiver, bodies[0], alice));
  refuses(receiver, 'replayed-message', () => open(receiver, bodies[2], alice));
  assert.equal(open(receiver, bodies[1], alice).payload.text, '1');

  const stranger = new Member('carol', 3);
  refuses(receiver, 'sender-mismatch', () => open(receiver, stranger.encrypt(), stranger));
  const empty = SenderKeyReceiver.create(GROUP, stranger.address, stranger.identity.public);
  refuses(empty, 'unknown-sender-key', () => open(empty, stranger.encrypt(), stranger));
});

test('routing: another sender device, another group, a body moved to another group', () => {
  const alice = new Member('alice', 1);
  const receiver = alice.receiver();
  const body = alice.encrypt();
  const other = new Member('bob', 2);
  refuses(receiver, 'sender-mismatch', () => open(receiver, body, other));
  refuses(receiver, 'conversation-mismatch', () => open(receiver, body, alice, { conversation: Conversation.group('GOTHER') }));
  // the same chain installed under another group id does not open it: the group id is signed and authenticated
  const elsewhere = SenderKeyReceiver.create('GOTHER', alice.address, alice.identity.public);
  const distribution = alice.key.distribution();
  const moved = {
    groupId: 'GOTHER', keyId: distribution.keyId, iteration: 0, chainKey: distribution.chainKey,
    signingKey: distribution.signingKey,
  };
  elsewhere.install(new SenderKeyDistribution(moved));
  refuses(elsewhere, 'decryption-failed', () => open(elsewhere, body, alice, { conversation: Conversation.group('GOTHER') }));
});

test('a group receiver refuses a pairwise payload, even well signed and well encrypted', () => {
  const alice = new Member('alice', 1);
  const receiver = alice.receiver();
  const pairwise = new Payload({
    sender: alice.address, recipient: new DeviceAddress('bob', 2n), conversation, clientMessageId: 'p',
    sentAtMs: 1n, text: 'pairwise',
  });
  const plaintext = encodePlaintext(signPayload(alice.identity, pairwise));
  const distribution = alice.key.distribution();
  const header = encodeGroupHeader(distribution.keyId, 0);
  const [, messageKey] = kdfCk(distribution.chainKey);
  const ciphertext = aeadEncrypt(messageKey, plaintext, groupAssociatedData(GROUP, header), GROUP_MESSAGE_KEY_INFO);
  // signed with the sender key's own key, as only its holder could: the identity signature is what fails
  const signedPart = concat(header, ciphertext);
  const body = concat(signedPart, alice.signingKey.sign(groupBodySigningInput(GROUP, signedPart)));
  refuses(receiver, 'bad-signature', () => open(receiver, body, alice));
});

test('bounds: at most maxSkip skipped at once, at most maxSkippedKeys kept (the lowest go)', () => {
  assert.throws(() => new SenderKeyLimits({ maxSkip: 10, maxSkippedKeys: 5 }), RangeError);
  assert.throws(() => new SenderKeyLimits({ maxSkip: -1 }), RangeError);
  assert.throws(() => new SenderKeyLimits({ maxSkippedKeys: 100_001 }), RangeError);
  const limits = new SenderKeyLimits({ maxSkip: 3, maxSkippedKeys: 4 });
  const alice = new Member('alice', 1);
  const receiver = alice.receiver(limits);
  const bodies = Array.from({ length: 10 }, (_, index) => alice.encrypt(String(index)));
  refuses(receiver, 'too-many-skipped', () => open(receiver, bodies[4], alice));
  assert.equal(open(receiver, bodies[3], alice).payload.text, '3'); // skips 0, 1, 2
  assert.equal(open(receiver, bodies[6], alice).payload.text, '6'); // skips 4, 5: 0 is dropped
  refuses(receiver, 'replayed-message', () => open(receiver, bodies[0], alice));
  for (const index of [1, 2, 4, 5]) assert.equal(open(receiver, bodies[index], alice).payload.text, String(index));
  assert.equal(open(receiver, bodies[9], alice).payload.text, '9'); // skips 7, 8
  const more = Array.from({ length: 7 }, (_, index) => alice.encrypt(String(10 + index)));
  assert.equal(open(receiver, more[2], alice).payload.text, '12'); // skips 10, 11: four kept
  assert.equal(open(receiver, more[6], alice).payload.text, '16'); // skips 13, 14, 15: 7, 8, 10 dropped
  for (const dropped of [bodies[7], bodies[8], more[0]]) refuses(receiver, 'replayed-message', () => open(receiver, dropped, alice));
  assert.deepEqual(receiver.toDict().chains[0].skipped.map(([iteration]) => iteration), [11, 13, 14, 15]);
  // restored under smaller limits, the skipped keys are trimmed, the lowest first
  const tighter = new SenderKeyLimits({ maxSkip: 1, maxSkippedKeys: 1 });
  const restored = SenderKeyReceiver.fromDict(JSON.parse(JSON.stringify(receiver.toDict())), { limits: tighter });
  assert.deepEqual(restored.toDict().chains[0].skipped.map(([iteration]) => iteration), [15]);
  assert.equal(open(restored, more[5], alice).payload.text, '15');
  refuses(restored, 'replayed-message', () => open(restored, more[1], alice));
});

test('rotation: a new key id; a receiver keeps two keys; a removed member cannot read, a new one cannot read back', () => {
  const alice = new Member('alice', 1);
  const bob = alice.receiver();
  const mallory = alice.receiver();
  const beforeRemoval = alice.encrypt('avant');
  const firstKeyId = alice.key.keyId;
  alice.key = alice.key.rotate();
  assert.notEqual(alice.key.keyId, firstKeyId);
  assert.equal(alice.key.iteration, 0);
  bob.install(alice.key.distribution().encode()); // Mallory was removed: she does not get it
  const afterRemoval = alice.encrypt('après');
  assert.equal(open(bob, beforeRemoval, alice).payload.text, 'avant'); // in flight under the previous key
  assert.equal(open(bob, afterRemoval, alice).payload.text, 'après');
  refuses(mallory, 'unknown-sender-key', () => open(mallory, afterRemoval, alice));

  // Carol joins now, given the current key at iteration 1: message 0 of that key is out of reach
  const carol = alice.receiver();
  refuses(carol, 'replayed-message', () => open(carol, afterRemoval, alice));
  refuses(carol, 'unknown-sender-key', () => open(carol, beforeRemoval, alice));

  // a third key drops the oldest one; forgetPrevious drops all but the current one
  const third = alice.encrypt('troisième');
  alice.key = alice.key.rotate();
  bob.install(alice.key.distribution().encode());
  assert.equal(bob.keyIds.length, 2);
  assert.ok(!bob.keyIds.includes(firstKeyId));
  assert.equal(open(bob, third, alice).payload.text, 'troisième');
  bob.forgetPrevious();
  assert.deepEqual(bob.keyIds, [alice.key.keyId]);
});

test('a rotation draws again while the key id repeats', () => {
  const alice = new Member('alice', 1);
  const keyId = alice.key.keyId;
  const other = (keyId ^ 1) >>> 0;
  const draws = [u32(keyId), u32(keyId), u32(other)];
  const rotated = alice.key._rotateWithRandom((size) => (size === 4 ? draws.shift() : randomBytes(size)));
  assert.equal(rotated.keyId, other);
  assert.equal(draws.length, 0);
});

test('state: a round trip through JSON keeps working; anything damaged is group-state-corrupt', () => {
  const alice = new Member('alice', 1);
  const receiver = alice.receiver();
  const bodies = [alice.encrypt('0'), alice.encrypt('1'), alice.encrypt('2')];
  open(receiver, bodies[2], alice);
  const restoredKey = SenderKey.fromDict(JSON.parse(JSON.stringify(alice.key.toDict())));
  assert.equal(restoredKey.iteration, 3);
  const restored = SenderKeyReceiver.fromDict(JSON.parse(JSON.stringify(receiver.toDict())));
  assert.equal(open(restored, bodies[0], alice).payload.text, '0');
  const next = restoredKey.encrypt(new GroupPayload({
    sender: alice.address, conversation, clientMessageId: 'after', sentAtMs: 2n, text: 'après restauration',
  }), alice.identity);
  assert.equal(open(restored, next, alice).payload.text, 'après restauration');

  const good = receiver.toDict();
  const damaged = [
    { ...good, type: 'sender-key' },
    { ...good, format: 2 },
    { ...good, extra: 1 },
    { ...good, group_id: 'pas un groupe' },
    { ...good, sender_device: '0' },
    { ...good, sender_signing_key: 'AAAA' },
    { ...good, chains: [good.chains[0], good.chains[0]] },
    { ...good, chains: [{ ...good.chains[0], signing_key: toBase64(new Uint8Array(32)) }] },
    { ...good, chains: [{ ...good.chains[0], key_id: 2 ** 32 }] },
    { ...good, chains: [{ ...good.chains[0], iteration: END_OF_CHAIN + 1 }] },
    { ...good, chains: [{ ...good.chains[0], skipped: [[1, good.chains[0].skipped[0][1]], [0, good.chains[0].skipped[0][1]]] }] },
    { ...good, chains: [{ ...good.chains[0], skipped: [[3, good.chains[0].skipped[0][1]]] }] },
    null,
    [],
  ];
  for (const each of damaged) {
    assert.equal(errorCode(() => SenderKeyReceiver.fromDict(each)), 'group-state-corrupt', JSON.stringify(each)?.slice(0, 80));
  }
  const key = alice.key.toDict();
  for (const each of [good, { ...key, type: 'sender-key-receiver' }, { ...key, key_id: -1 }, { ...key, signing_seed: '' }]) {
    assert.equal(errorCode(() => SenderKey.fromDict(each)), 'group-state-corrupt');
  }
  assert.doesNotMatch(String(alice.key) + JSON.stringify(alice.key) + String(receiver), /chain|seed|[A-Za-z0-9+/]{40}/i);
});

test('misuse is a programming error; a used-up key is session-exhausted', () => {
  const alice = new Member('alice', 1);
  const bob = new Member('bob', 2);
  const fromBob = new GroupPayload({ sender: bob.address, conversation, clientMessageId: 'x', sentAtMs: 1n, text: 'x' });
  assert.throws(() => alice.key.encrypt(fromBob, alice.identity), RangeError);
  const otherGroup = new GroupPayload({
    sender: alice.address, conversation: Conversation.group('GOTHER'), clientMessageId: 'x', sentAtMs: 1n, text: 'x',
  });
  assert.throws(() => alice.key.encrypt(otherGroup, alice.identity), RangeError);
  const mine = new GroupPayload({ sender: alice.address, conversation, clientMessageId: 'x', sentAtMs: 1n, text: 'x' });
  assert.throws(() => alice.key.encrypt(mine, bob.identity), RangeError);
  assert.throws(() => new GroupPayload({
    sender: alice.address, conversation: Conversation.user('bob'), clientMessageId: 'x', sentAtMs: 1n, text: 'x',
  }), RangeError);
  assert.throws(() => SenderKey.create('pas un groupe', alice.address, alice.identity.public), RangeError);

  const exhausted = SenderKey.fromDict({ ...alice.key.toDict(), iteration: END_OF_CHAIN });
  assert.equal(errorCode(() => exhausted.encrypt(mine, alice.identity)), 'session-exhausted');
  assert.equal(errorCode(() => exhausted.distribution()), 'session-exhausted');
  assert.ok(CryptoError);
});
