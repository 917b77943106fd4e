// Sessions (docs/protocol-crypto.md §3.5 to §3.9): set-up, ordering, replay, bounds, tampering, addressing.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { concat, u32 } from '../src/crypto/bytes.js';
import { CryptoError } from '../src/crypto/errors.js';
import { IdentityKeyPair } from '../src/crypto/keys.js';
import { DeviceAddress, SignedPayload, encodePlaintext, signPayload } from '../src/crypto/payload.js';
import { x25519Public } from '../src/crypto/primitives.js';
import { RatchetLimits, RatchetState } from '../src/crypto/ratchet.js';
import { initiateSession } from '../src/crypto/session.js';
import { sodium } from '../src/crypto/sodium.js';
import { MAX_BODY_BYTES, TYPE_PREKEY, TYPE_RATCHET } from '../src/crypto/wire.js';
import {
  Device, decryptFails, encryptRaw, openPair, payload, receive, send, skippedCount,
} from '../test-support/pair.js';

// --- set-up (§3.5, §3.7.6)

test('the initiator sends prekey messages until the peer answers', () => {
  const alice = new Device('alice', 1);
  const bob = new Device('bob', 2);
  const aliceSession = initiateSession(alice.identity, alice.address, bob.address, bob.bundle());
  const first = send(aliceSession, alice, bob, 'un');
  const second = send(aliceSession, alice, bob, 'deux');
  assert.deepEqual([...first.subarray(0, 2)], [0x02, TYPE_PREKEY]);
  assert.deepEqual([...second.subarray(0, 2)], [0x02, TYPE_PREKEY]);
  assert.ok(aliceSession.awaitingReply && aliceSession.isInitiator);

  const accepted = bob.accept(first, alice);
  assert.equal(accepted.message.payload.text, 'un');
  assert.equal(accepted.usedOneTimePrekeyId, 100);
  assert.ok(!bob.oneTimePrekeys.has(100));
  const bobSession = accepted.session;
  assert.ok(bobSession.matches(second));
  assert.equal(receive(bobSession, second, alice, bob).payload.text, 'deux');
  assert.ok(!bobSession.isInitiator && !bobSession.awaitingReply);

  const reply = send(bobSession, bob, alice, 'trois');
  assert.equal(reply[1], TYPE_RATCHET);
  assert.equal(receive(aliceSession, reply, bob, alice).payload.text, 'trois');
  assert.ok(!aliceSession.awaitingReply);
  assert.equal(send(aliceSession, alice, bob)[1], TYPE_RATCHET);
  assert.deepEqual(aliceSession.associatedData, bobSession.associatedData);
  assert.ok(aliceSession.peer.equals(bob.address) && bobSession.peer.equals(alice.address));
});

test('a session without a one-time prekey', () => {
  const { alice, bob, aliceSession, bobSession } = openPair({ withOneTime: false });
  assert.equal(receive(bobSession, send(aliceSession, alice, bob, 'sans'), alice, bob).payload.text, 'sans');
  assert.equal(bob.oneTimePrekeys.size, 3);
});

test('a used one-time prekey cannot open a second session', () => {
  const alice = new Device('alice', 1);
  const bob = new Device('bob', 2);
  const bundle = bob.bundle();
  const first = send(initiateSession(alice.identity, alice.address, bob.address, bundle), alice, bob);
  const second = send(initiateSession(alice.identity, alice.address, bob.address, bundle), alice, bob);
  bob.accept(first, alice);
  assert.throws(() => bob.accept(second, alice), (error) => error.code === 'unknown-prekey');
  assert.throws(() => bob.accept(first, alice), (error) => error.code === 'unknown-prekey');
});

test('accept refuses an unknown signed prekey, a wrong identity, a ratchet message, oneself', () => {
  const { alice, bob, aliceSession } = openPair();
  const carol = new Device('carol', 3);
  const fresh = initiateSession(alice.identity, alice.address, carol.address, carol.bundle());
  const toCarol = send(fresh, alice, carol);
  assert.throws(() => bob.accept(toCarol, alice), (error) => error.code === 'unknown-prekey');
  const mallory = new Device('alice', 1); // same address, other keys: the server lists mallory's
  assert.throws(() => carol.accept(toCarol, mallory), (error) => error.code === 'identity-mismatch');
  assert.throws(() => bob.accept(send(aliceSession, alice, bob), alice), (error) => error.code === 'no-session');
  assert.throws(() => carol.accept(toCarol, carol), (error) => error.code === 'sender-mismatch');
  assert.throws(() => carol.accept(toCarol, alice, { conversation: 'dave' }),
    (error) => error.code === 'conversation-mismatch');
  assert.equal(carol.accept(toCarol, alice).message.payload.sender.user, 'alice');
});

test('a prekey message of another set-up does not match, and opens a new session', () => {
  const alice = new Device('alice', 1);
  const bob = new Device('bob', 2);
  const first = initiateSession(alice.identity, alice.address, bob.address, bob.bundle());
  const bobSession = bob.accept(send(first, alice, bob), alice).session;
  const again = initiateSession(alice.identity, alice.address, bob.address, bob.bundle());
  const bodyTwo = send(again, alice, bob);
  assert.equal(bobSession.matches(bodyTwo), false);
  assert.equal(decryptFails(bobSession, bodyTwo, alice.address, 'bob'), 'session-mismatch');
  assert.ok(bob.accept(bodyTwo, alice).message.payload.sender.equals(alice.address));
});

test('a prekey message sent back to its initiator is session-mismatch', () => {
  const { alice, bob, aliceSession } = openPair();
  const fresh = initiateSession(alice.identity, alice.address, bob.address, bob.bundle());
  assert.equal(decryptFails(aliceSession, send(fresh, alice, bob), bob.address, 'alice'), 'session-mismatch');
  assert.equal(aliceSession.matches(send(fresh, alice, bob)), false);
});

test('a bundle with a bad signature is refused', () => {
  const bob = new Device('bob', 2);
  const other = IdentityKeyPair.generate();
  bob.signedPrekey = { ...bob.signedPrekey, prekeyId: 1, publicKey: bob.signedPrekey.publicKey,
    signature: other.sign(new Uint8Array(58)) };
  assert.throws(() => bob.bundle(), (error) => error.code === 'bad-prekey-signature');
});

// --- ordering, replay, bounds (§3.6.4, §3.6.5)

test('out-of-order delivery, then every replay is replayed-message', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const bodies = Array.from({ length: 6 }, (_, i) => send(aliceSession, alice, bob, `n${i}`));
  for (const index of [3, 0, 5, 1, 4, 2]) {
    assert.equal(receive(bobSession, bodies[index], alice, bob).payload.text, `n${index}`);
  }
  for (const body of bodies) assert.equal(decryptFails(bobSession, body, alice.address, 'bob'), 'replayed-message');
});

test('a message from a previous chain still decrypts after DH steps; its replay is reported', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const late = send(aliceSession, alice, bob, 'late');
  const onTime = send(aliceSession, alice, bob, 'on time');
  receive(bobSession, onTime, alice, bob);
  for (let round = 0; round < 3; round++) { // three round trips: three DH ratchet steps each way
    receive(aliceSession, send(bobSession, bob, alice), bob, alice);
    receive(bobSession, send(aliceSession, alice, bob), alice, bob);
  }
  assert.equal(receive(bobSession, late, alice, bob).payload.text, 'late');
  assert.equal(decryptFails(bobSession, late, alice.address, 'bob'), 'replayed-message');
  assert.equal(decryptFails(bobSession, onTime, alice.address, 'bob'), 'replayed-message');
});

test('a message skipped in the previous chain is stored through PN', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const lost = send(aliceSession, alice, bob, 'lost for now');
  receive(aliceSession, send(bobSession, bob, alice), bob, alice); // Alice steps: her next message has PN = 2
  const next = send(aliceSession, alice, bob, 'next chain');
  assert.equal(receive(bobSession, next, alice, bob).payload.text, 'next chain');
  assert.equal(skippedCount(bobSession), 1);
  assert.equal(receive(bobSession, lost, alice, bob).payload.text, 'lost for now');
  assert.equal(skippedCount(bobSession), 0);
});

test('too-many-skipped in one chain: exactly max_skip is allowed', () => {
  const limits = new RatchetLimits({ maxSkip: 5, maxSkippedKeys: 10, skippedKeyMaxSteps: 3 });
  const { alice, bob, aliceSession, bobSession } = openPair({ limits });
  const bodies = Array.from({ length: 8 }, (_, i) => send(aliceSession, alice, bob, `n${i}`));
  assert.equal(decryptFails(bobSession, bodies[6], alice.address, 'bob'), 'too-many-skipped');
  assert.equal(receive(bobSession, bodies[5], alice, bob).payload.text, 'n5');
  assert.equal(skippedCount(bobSession), 5);
  assert.equal(receive(bobSession, bodies[6], alice, bob).payload.text, 'n6');
});

test('too-many-skipped in the previous chain (PN)', () => {
  const limits = new RatchetLimits({ maxSkip: 3, maxSkippedKeys: 6, skippedKeyMaxSteps: 3 });
  const { alice, bob, aliceSession, bobSession } = openPair({ limits });
  for (let i = 0; i < 5; i++) send(aliceSession, alice, bob); // lost
  receive(aliceSession, send(bobSession, bob, alice), bob, alice);
  const nextChain = send(aliceSession, alice, bob); // PN = 5 > max_skip
  assert.equal(decryptFails(bobSession, nextChain, alice.address, 'bob'), 'too-many-skipped');
});

test('stored skipped keys are bounded, the oldest dropped first', () => {
  const limits = new RatchetLimits({ maxSkip: 4, maxSkippedKeys: 6, skippedKeyMaxSteps: 10 });
  const { alice, bob, aliceSession, bobSession } = openPair({ limits });
  const lost = [];
  for (let round = 0; round < 3; round++) {
    const bodies = Array.from({ length: 4 }, () => send(aliceSession, alice, bob));
    lost.push(bodies.slice(0, 3));
    receive(bobSession, bodies[3], alice, bob);
    assert.ok(skippedCount(bobSession) <= 6);
  }
  assert.equal(skippedCount(bobSession), 6);
  assert.equal(decryptFails(bobSession, lost[0][0], alice.address, 'bob'), 'replayed-message'); // evicted
  assert.ok(receive(bobSession, lost[2][0], alice, bob).payload);
});

test('skipped keys expire after skipped_key_max_steps DH steps', () => {
  const limits = new RatchetLimits({ maxSkip: 10, maxSkippedKeys: 20, skippedKeyMaxSteps: 2 });
  const { alice, bob, aliceSession, bobSession } = openPair({ limits });
  const lost = send(aliceSession, alice, bob);
  receive(bobSession, send(aliceSession, alice, bob), alice, bob);
  assert.equal(skippedCount(bobSession), 1);
  for (let step = 0; step < 3; step++) {
    receive(aliceSession, send(bobSession, bob, alice), bob, alice);
    receive(bobSession, send(aliceSession, alice, bob), alice, bob);
    assert.equal(skippedCount(bobSession), step < 2 ? 1 : 0);
  }
  // its key expired, and its ratchet key is no longer among the 2 remembered: it looks like a
  // new ratchet key, and the DH step made for it does not authenticate
  assert.equal(decryptFails(bobSession, lost, alice.address, 'bob'), 'decryption-failed');
});

test('with the default limits, one message may skip 1000 keys, not 1001', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const bodies = Array.from({ length: 1002 }, (_, i) => send(aliceSession, alice, bob, `n${i}`));
  assert.equal(decryptFails(bobSession, bodies[1001], alice.address, 'bob'), 'too-many-skipped');
  assert.equal(receive(bobSession, bodies[1000], alice, bob).payload.text, 'n1000');
  assert.equal(skippedCount(bobSession), 1000);
  assert.equal(receive(bobSession, bodies[1001], alice, bob).payload.text, 'n1001');
  assert.equal(receive(bobSession, bodies[0], alice, bob).payload.text, 'n0');
  assert.equal(skippedCount(bobSession), 999);
});

test('ratchet limits are validated', () => {
  assert.throws(() => new RatchetLimits({ maxSkip: 10, maxSkippedKeys: 5 }), RangeError);
  assert.throws(() => new RatchetLimits({ maxSkip: -1 }), RangeError);
  assert.throws(() => new RatchetLimits({ maxSkippedKeys: 10 ** 6 }), RangeError);
  assert.throws(() => new RatchetLimits({ skippedKeyMaxSteps: 1.5 }), RangeError);
});

// --- tampering (§3.6.6, §3.7.4)

test('every bit flip of a ratchet message is rejected, and the real one then decrypts', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const body = send(aliceSession, alice, bob, 'x'.repeat(40));
  for (let index = 0; index < body.length; index++) {
    for (let bit = 0; bit < 8; bit++) {
      const tampered = Uint8Array.from(body);
      tampered[index] ^= 1 << bit;
      decryptFails(bobSession, tampered, alice.address, 'bob');
    }
  }
  assert.equal(receive(bobSession, body, alice, bob).payload.text, 'x'.repeat(40));
});

test('every bit flip of a prekey message is rejected without using a one-time prekey', () => {
  const alice = new Device('alice', 1);
  const bob = new Device('bob', 2);
  const body = send(initiateSession(alice.identity, alice.address, bob.address, bob.bundle()), alice, bob);
  for (let index = 0; index < body.length; index++) {
    for (let bit = 0; bit < 8; bit++) {
      const tampered = Uint8Array.from(body);
      tampered[index] ^= 1 << bit;
      assert.throws(() => bob.accept(tampered, alice), CryptoError);
    }
  }
  assert.equal(bob.oneTimePrekeys.size, 3);
  assert.ok(bob.accept(body, alice).message.payload.sender.equals(alice.address));
});

test('truncated and extended bodies are rejected', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const body = send(aliceSession, alice, bob);
  for (let size = 0; size < body.length; size++) decryptFails(bobSession, body.slice(0, size), alice.address, 'bob');
  decryptFails(bobSession, concat(body, new Uint8Array(1)), alice.address, 'bob');
  assert.ok(receive(bobSession, body, alice, bob));
});

// --- the signed payload inside (§3.8.4)

test('a forged signature inside a valid session is bad-signature', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const signed = signPayload(alice.identity, payload(alice, bob));
  const forged = signPayload(IdentityKeyPair.generate(), payload(alice, bob));
  const plaintext = encodePlaintext(new SignedPayload(signed.payload, signed.encoded, forged.signature, signed.signer));
  assert.equal(decryptFails(bobSession, encryptRaw(aliceSession, plaintext).body, alice.address, 'bob'), 'bad-signature');
});

for (const [sender, recipient, conversation, code] of [
  [['carol', 1], ['bob', 2], 'bob', 'sender-mismatch'],
  [['alice', 9], ['bob', 2], 'bob', 'sender-mismatch'],
  [['alice', 1], ['bob', 3], 'bob', 'wrong-recipient'],
  [['alice', 1], ['dave', 2], 'bob', 'wrong-recipient'],
  [['alice', 1], ['bob', 2], 'carol', 'conversation-mismatch'],
]) {
  test(`a payload signed from ${sender} to ${recipient} in ${conversation} is ${code}`, () => {
    const { alice, aliceSession, bobSession } = openPair();
    const forged = payload(new Device(...sender), new Device(...recipient), 'x', { conversation });
    const plaintext = encodePlaintext(signPayload(alice.identity, forged));
    assert.equal(decryptFails(bobSession, encryptRaw(aliceSession, plaintext).body, alice.address, 'bob'), code);
  });
}

test('delivery by another device or in another conversation is refused before decrypting', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const body = send(aliceSession, alice, bob);
  assert.equal(decryptFails(bobSession, body, new DeviceAddress('alice', 7n), 'bob'), 'sender-mismatch');
  assert.equal(decryptFails(bobSession, body, alice.address, 'carol'), 'conversation-mismatch');
  assert.ok(receive(bobSession, body, alice, bob).payload.sender.equals(alice.address));
});

for (const [name, plaintext, code] of [
  ['empty', new Uint8Array(0), 'malformed-payload'],
  ['255 zero bytes', new Uint8Array(255), 'malformed-payload'],
  ['an empty payload and a zero signature', new Uint8Array(256), 'bad-signature'],
  ['16 zero bytes of payload', concat(u32(16), new Uint8Array(252)), 'bad-signature'],
  ['a length past the end', concat(u32(256), new Uint8Array(252)), 'malformed-payload'],
  ['0xff bytes', new Uint8Array(256).fill(0xff), 'malformed-payload'],
  ['more padding than needed', new Uint8Array(512), 'malformed-payload'],
]) {
  test(`a plaintext of ${name} is ${code}`, () => {
    const { alice, aliceSession, bobSession } = openPair();
    assert.equal(decryptFails(bobSession, encryptRaw(aliceSession, plaintext).body, alice.address, 'bob'), code);
  });
}

test('non-zero padding is malformed-payload', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const plaintext = encodePlaintext(signPayload(alice.identity, payload(alice, bob)));
  plaintext[plaintext.length - 1] = 1;
  assert.equal(decryptFails(bobSession, encryptRaw(aliceSession, plaintext).body, alice.address, 'bob'),
    'malformed-payload');
});

test('encrypt refuses misuse with plain errors', () => {
  const { alice, bob, aliceSession } = openPair();
  const carol = new Device('carol', 3);
  assert.throws(() => aliceSession.encrypt(payload(alice, carol), alice.identity), /peer/);
  assert.throws(() => aliceSession.encrypt(payload(alice, bob), carol.identity), /identity/);
  assert.throws(() => initiateSession(alice.identity, alice.address, alice.address, alice.bundle()), /itself/);
  assert.throws(() => aliceSession.encrypt(payload(alice, bob), carol.identity), (error) => !(error instanceof CryptoError));
});

test('the largest payload fits a body (message-too-large cannot happen with §3.8.1 limits)', () => {
  const { alice, bob, aliceSession, bobSession } = openPair();
  const body = send(aliceSession, alice, bob, '\u{1FA7A}'.repeat(15_000)); // 60,000 bytes of UTF-8
  assert.ok(body.length <= MAX_BODY_BYTES);
  assert.equal(receive(bobSession, body, alice, bob).payload.text.length, 30_000);
});

// --- the ratchet's working copy (every encrypt and decrypt makes one)

test('a working copy of the ratchet derives no key and shares no mutable state', (t) => {
  const state = RatchetState.forInitiator(
    new Uint8Array(32).fill(1), x25519Public(new Uint8Array(32).fill(9)), new Uint8Array(32).fill(5),
  );
  state.previousReceivingKeys.push(new Uint8Array(32).fill(7));
  state.skipped.set('07:3', { messageKey: new Uint8Array(32).fill(8), storedAtStep: 0 });
  const derive = t.mock.method(sodium, 'crypto_scalarmult_base');
  const twin = state.copy();
  assert.equal(derive.mock.callCount(), 0, 'copy() derived the sending public key again');
  assert.ok(twin instanceof RatchetState);
  assert.deepEqual({ ...twin }, { ...state });
  twin.previousReceivingKeys.length = 0;
  twin.skipped.clear();
  assert.equal(state.previousReceivingKeys.length, 1);
  assert.deepEqual([...state.skipped.keys()], ['07:3']);
});
