/**
 * Two devices wired by an in-memory link, for the session tests (docs/protocol-crypto.md §3.5 to §3.8);
 * the JavaScript twin of `tests/crypto_helpers.py`.
 */
import assert from 'node:assert/strict';

import { concat } from '../src/crypto/bytes.js';
import { CryptoError } from '../src/crypto/errors.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair } from '../src/crypto/keys.js';
import { Conversation, DeviceAddress, Payload } from '../src/crypto/payload.js';
import { aeadEncrypt } from '../src/crypto/primitives.js';
import { DEFAULT_LIMITS } from '../src/crypto/ratchet.js';
import { Session, acceptPrekeyMessage, initiateSession } from '../src/crypto/session.js';
import { stateFromDict, stateToDict } from '../src/crypto/session_state.js';
import { encodePrefix } from '../src/crypto/wire.js';
import { OneTimePrekeyPublic, PrekeyBundle } from '../src/crypto/x3dh.js';

let counter = 0;

export class Device {
  constructor(user, deviceId) {
    this.address = new DeviceAddress(user, BigInt(deviceId));
    this.identity = IdentityKeyPair.generate();
    this.signedPrekey = SignedPrekeyPair.generate(1, this.identity);
    /** @type {Map<number, OneTimePrekeyPair>} */
    this.oneTimePrekeys = new Map(OneTimePrekeyPair.generateBatch(100, 3).map((key) => [key.prekeyId, key]));
  }

  bundle({ withOneTime = true } = {}) {
    const [first] = this.oneTimePrekeys.values();
    const oneTime = withOneTime && first ? new OneTimePrekeyPublic(first.prekeyId, first.publicKey) : null;
    const spk = this.signedPrekey;
    return new PrekeyBundle(this.identity.public, spk.prekeyId, spk.publicKey, spk.signature, oneTime);
  }

  /** Accept a prekey message from `sender`, deleting the used one-time prekey as the SDK would. */
  accept(body, sender, { limits = DEFAULT_LIMITS, conversation = this.address.user } = {}) {
    const accepted = acceptPrekeyMessage(this.identity, this.address, body, {
      deliveredBy: sender.address,
      senderIdentity: sender.identity.public,
      conversation: Conversation.user(conversation),
      signedPrekeys: (keyId) => (keyId === this.signedPrekey.prekeyId ? this.signedPrekey : null),
      oneTimePrekeys: (keyId) => this.oneTimePrekeys.get(keyId) ?? null,
      limits,
    });
    if (accepted.usedOneTimePrekeyId !== null) this.oneTimePrekeys.delete(accepted.usedOneTimePrekeyId);
    return accepted;
  }
}

export function payload(sender, recipient, text = 'bonjour', { conversation } = {}) {
  counter += 1;
  return new Payload({
    sender: sender.address,
    recipient: recipient.address,
    conversation: Conversation.user(conversation ?? recipient.address.user),
    clientMessageId: `m-${counter}`,
    sentAtMs: 1_700_000_000_000n + BigInt(counter),
    text,
  });
}

/** @returns {Uint8Array} the body */
export function send(session, sender, recipient, text = 'bonjour') {
  return session.encrypt(payload(sender, recipient, text), sender.identity);
}

export function receive(session, body, sender, recipient) {
  return session.decrypt(body, { deliveredBy: sender.address, conversation: Conversation.user(recipient.address.user) });
}

/** Alice opens a session with Bob; Bob accepts her first message and replies; Alice reads the reply. */
export function openPair({ limits = DEFAULT_LIMITS, withOneTime = true } = {}) {
  const alice = new Device('alice', 1);
  const bob = new Device('bob', 2);
  const aliceSession = initiateSession(alice.identity, alice.address, bob.address, bob.bundle({ withOneTime }), { limits });
  const bobSession = bob.accept(send(aliceSession, alice, bob, 'first'), alice, { limits }).session;
  receive(aliceSession, send(bobSession, bob, alice, 'reply'), bob, alice);
  return { alice, bob, aliceSession, bobSession };
}

/**
 * Encrypt arbitrary plaintext as a well-formed body of `session`'s next message, to forge
 * payloads. Works on the stored form, so it needs no test hook in the session; returns the
 * body and the session advanced past it.
 */
export function encryptRaw(session, plaintext) {
  const core = stateFromDict(session.toDict(), DEFAULT_LIMITS);
  const [header, messageKey] = core.ratchet.nextSendingKey();
  const prefix = encodePrefix(core.confirmed ? null : core.x3dh, header);
  const body = concat(prefix, aeadEncrypt(messageKey, plaintext, concat(session.associatedData, prefix)));
  return { body, advanced: Session.fromDict(stateToDict(core)) };
}

/** The code a decrypt fails with; asserts that the session is unchanged. */
export function decryptFails(session, body, senderAddress, ownUser) {
  const before = JSON.stringify(session.toDict());
  let code = null;
  try {
    session.decrypt(body, { deliveredBy: senderAddress, conversation: Conversation.user(ownUser) });
  } catch (error) {
    if (!(error instanceof CryptoError)) throw error;
    code = error.code;
  }
  assert.notEqual(code, null, 'the decrypt should have failed');
  assert.equal(JSON.stringify(session.toDict()), before, 'a failed decrypt must leave the session unchanged');
  return code;
}

/** Number of stored skipped keys, read from the stored form. */
export function skippedCount(session) {
  return session.toDict().skipped.length;
}
