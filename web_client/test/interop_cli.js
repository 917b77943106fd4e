/**
 * A JavaScript device driven over stdin/stdout JSON, for tests/test_crypto_js_interop.py
 * (docs/protocol-crypto.md §3.5 to §3.10: the Python and JavaScript sides must talk to each other)
 * and tests/test_crypto_js_group_interop.py (sender keys, docs/protocol-group.md §3.17; the
 * `group_*` requests of `test-support/group_interop.js`).
 *
 * One request per line, `{"op": ..., ...}`; one answer per line, `{"ok": true, ...}` or
 * `{"ok": false, "code": "<§3.9 code>"}` (a CryptoError) or `{"ok": false, "error": "..."}`
 * (anything else: a bug). Bytes are standard base64, 64-bit integers decimal strings.
 *
 * Run by `node --test test/` (which runs every file under test/), it does not read stdin:
 * it tests its own handler with two JavaScript devices instead.
 */
import { createInterface } from 'node:readline';

import { fromBase64, toBase64 } from '../src/crypto/bytes.js';
import { CryptoError, NoSession } from '../src/crypto/errors.js';
import { IdentityKeyPair, OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair } from '../src/crypto/keys.js';
import { Conversation, DeviceAddress, GroupPayload, Payload, signPayload, verifyPayload } from '../src/crypto/payload.js';
import { safetyNumber, userFingerprint } from '../src/crypto/safety.js';
import { Session, acceptPrekeyMessage, initiateSession } from '../src/crypto/session.js';
import { parseBody } from '../src/crypto/wire.js';
import { PrekeyBundle } from '../src/crypto/x3dh.js';
import { groupOps } from '../test-support/group_interop.js';

const address = ({ user, device }) => new DeviceAddress(user, BigInt(device));
const identityJson = (identity) => ({ signing_key: toBase64(identity.signingKey), exchange_key: toBase64(identity.exchangeKey) });
const identityFrom = (json) => new PublicIdentity(fromBase64(json.signing_key), fromBase64(json.exchange_key));

function payloadJson(payload) {
  const group = payload instanceof GroupPayload;
  return {
    sender: { user: payload.sender.user, device: String(payload.sender.device) },
    recipient: group ? null : { user: payload.recipient.user, device: String(payload.recipient.device) },
    conversation: { kind: payload.conversation.kind === 1 ? 'user' : 'group', id: payload.conversation.id },
    client_message_id: payload.clientMessageId,
    sent_at_ms: String(payload.sentAtMs),
    content_type: payload.contentType,
    text: payload.text,
  };
}

function signedJson(signed) {
  return {
    payload: payloadJson(signed.payload),
    payload_bytes: toBase64(signed.encoded),
    signature: toBase64(signed.signature),
    signer: toBase64(signed.signer),
  };
}

/** The request handler: named devices and their sessions, kept in memory. */
export function createHandler() {
  const devices = new Map();
  const sessions = new Map();
  const sessionKey = (name, peer) => `${name}|${peer.user}/${peer.device}`;

  /** A pairwise body from `from`, routed as §3.7.6 says: `{message, opened, usedOneTimePrekeyId}`. */
  function openPairwise(name, from, senderIdentity, bytes, conversation) {
    const me = devices.get(name);
    const key = sessionKey(name, from);
    const existing = sessions.get(key);
    const context = { deliveredBy: address(from), conversation };
    const isPrekey = parseBody(bytes).x3dh !== null;
    if (!isPrekey || existing?.matches(bytes)) {
      if (!existing) throw new NoSession();
      return { message: existing.decrypt(bytes, context), opened: false, usedOneTimePrekeyId: null };
    }
    const accepted = acceptPrekeyMessage(me.identity, me.address, bytes, {
      ...context,
      senderIdentity: identityFrom(senderIdentity),
      signedPrekeys: (keyId) => (keyId === me.signedPrekey.prekeyId ? me.signedPrekey : null),
      oneTimePrekeys: (keyId) => me.oneTimePrekeys.get(keyId) ?? null,
    });
    // replaces any older session with that device; store it, then delete the one-time prekey (§3.5.5)
    sessions.set(key, accepted.session);
    if (accepted.usedOneTimePrekeyId !== null) me.oneTimePrekeys.delete(accepted.usedOneTimePrekeyId);
    return { message: accepted.message, opened: true, usedOneTimePrekeyId: accepted.usedOneTimePrekeyId };
  }

  const payloadOf = (me, request) => new Payload({
    sender: me.address,
    recipient: address(request.recipient),
    conversation: Conversation.user(request.conversation ?? request.recipient.user),
    clientMessageId: request.client_message_id,
    sentAtMs: BigInt(request.sent_at_ms),
    text: request.text,
  });

  const ops = {
    device({ name, user, device, one_time_prekeys = 3 }) {
      const identity = IdentityKeyPair.generate();
      const signedPrekey = SignedPrekeyPair.generate(1, identity);
      const oneTime = OneTimePrekeyPair.generateBatch(100, one_time_prekeys);
      devices.set(name, {
        address: new DeviceAddress(user, BigInt(device)), identity, signedPrekey,
        oneTimePrekeys: new Map(oneTime.map((key) => [key.prekeyId, key])),
      });
      const [first] = oneTime;
      return {
        identity: identityJson(identity.public),
        bundle: {
          device: Number(device),
          identity_signing_key: toBase64(identity.public.signingKey),
          identity_exchange_key: toBase64(identity.public.exchangeKey),
          signed_prekey: { id: 1, key: toBase64(signedPrekey.publicKey), signature: toBase64(signedPrekey.signature) },
          prekey: first ? { id: first.prekeyId, key: toBase64(first.publicKey) } : null,
        },
      };
    },
    initiate({ name, peer, bundle }) {
      const me = devices.get(name);
      sessions.set(sessionKey(name, peer), initiateSession(me.identity, me.address, address(peer), PrekeyBundle.fromApi(bundle)));
      return {};
    },
    encrypt(request) {
      const me = devices.get(request.name);
      const session = sessions.get(sessionKey(request.name, request.recipient));
      return { body: toBase64(session.encrypt(payloadOf(me, request), me.identity)) };
    },
    /** Route a body from `from` as §3.7.6 says, then decrypt it. */
    receive({ name, from, sender_identity: senderIdentity, body }) {
      const me = devices.get(name);
      const opened = openPairwise(name, from, senderIdentity, fromBase64(body), Conversation.user(me.address.user));
      return { ...signedJson(opened.message), opened: opened.opened, used_one_time_prekey_id: opened.usedOneTimePrekeyId };
    },
    /** Store and restore the session, as the keystore would. */
    persist({ name, peer }) {
      const key = sessionKey(name, peer);
      sessions.set(key, Session.fromBytes(sessions.get(key).toBytes()));
      return {};
    },
    sign(request) {
      const me = devices.get(request.name);
      return signedJson(signPayload(me.identity, payloadOf(me, request)));
    },
    verify({ payload_bytes: payloadBytes, signature, signer }) {
      return { payload: payloadJson(verifyPayload(fromBase64(payloadBytes), fromBase64(signature), fromBase64(signer))) };
    },
    safety_number({ user_a: userA, devices_a: devicesA, user_b: userB, devices_b: devicesB }) {
      const [a, b] = [devicesA.map(identityFrom), devicesB.map(identityFrom)];
      return {
        digits: safetyNumber(userA, a, userB, b).digits,
        fingerprint_a: userFingerprint(userA, a),
        fingerprint_b: userFingerprint(userB, b),
      };
    },
  };

  Object.assign(ops, groupOps({
    devices, sessions, sessionKey, openPairwise: (...args) => openPairwise(...args).message,
  }));

  return function handle(request) {
    try {
      const op = Object.hasOwn(ops, request.op) ? ops[request.op] : null;
      if (op === null) return { ok: false, error: `unknown op ${request.op}` };
      return { ok: true, ...op(request) };
    } catch (error) {
      if (error instanceof CryptoError) return { ok: false, code: error.code };
      return { ok: false, error: `${error.name}: ${error.message}` };
    }
  };
}

async function serve() {
  const handle = createHandler();
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    let answer;
    try {
      answer = handle(JSON.parse(line));
    } catch (error) {
      answer = { ok: false, error: `bad request: ${error.message}` };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
}

async function selfTest() {
  const { test } = await import('node:test');
  const assert = (await import('node:assert/strict')).default;
  test('the interop CLI handler: two JavaScript devices talk through it', () => {
    const handle = createHandler();
    const call = (request) => {
      const answer = handle(request);
      assert.ok(answer.ok, JSON.stringify(answer));
      return answer;
    };
    const alice = call({ op: 'device', name: 'a', user: 'alice', device: '1' });
    const bob = call({ op: 'device', name: 'b', user: 'bob', device: '2' });
    call({ op: 'initiate', name: 'a', peer: { user: 'bob', device: '2' }, bundle: bob.bundle });
    const message = (name, recipient, id) => ({
      op: 'encrypt', name, recipient, client_message_id: id, sent_at_ms: '1700000000000', text: `texte ${id}`,
    });
    const toBob = { user: 'bob', device: '2' };
    const toAlice = { user: 'alice', device: '1' };
    const first = call(message('a', toBob, 'a0')).body;
    const second = call(message('a', toBob, 'a1')).body;
    const opened = call({ op: 'receive', name: 'b', from: toAlice, sender_identity: alice.identity, body: second });
    assert.equal(opened.opened, true);
    assert.equal(opened.used_one_time_prekey_id, 100);
    assert.equal(call({ op: 'receive', name: 'b', from: toAlice, sender_identity: alice.identity, body: first }).payload.text, 'texte a0');
    const replay = handle({ op: 'receive', name: 'b', from: toAlice, sender_identity: alice.identity, body: first });
    assert.deepEqual(replay, { ok: false, code: 'replayed-message' });
    call({ op: 'persist', name: 'b', peer: toAlice });
    const reply = call(message('b', toAlice, 'b0')).body;
    assert.equal(call({ op: 'receive', name: 'a', from: toBob, sender_identity: bob.identity, body: reply }).payload.text, 'texte b0');
    const signed = call({ op: 'sign', name: 'a', recipient: toBob, client_message_id: 's', sent_at_ms: '1', text: 'preuve' });
    assert.equal(call({ op: 'verify', ...signed }).payload.text, 'preuve');
    assert.deepEqual(handle({ op: 'verify', ...signed, signer: bob.identity.signing_key }), { ok: false, code: 'bad-signature' });
    const number = call({ op: 'safety_number', user_a: 'alice', devices_a: [alice.identity], user_b: 'bob', devices_b: [bob.identity] });
    assert.match(number.digits, /^\d{60}$/);
    assert.equal(handle({ op: 'nope' }).ok, false);

    // sender keys: Alice distributes hers over the session, Bob reads her group message
    const group = 'GTEAM';
    call({ op: 'group_key', name: 'a', group });
    const carried = call({ op: 'group_distribute', name: 'a', group, recipient: toBob, client_message_id: 'k' }).body;
    assert.equal(call({ op: 'group_accept', name: 'b', group, from: toAlice, sender_identity: alice.identity, body: carried })
      .key_ids.length, 1);
    const groupBody = call({ op: 'group_encrypt', name: 'a', group, client_message_id: 'g', sent_at_ms: '1', text: 'équipe' }).body;
    call({ op: 'group_persist', name: 'b', group });
    const read = call({ op: 'group_decrypt', name: 'b', group, from: toAlice, body: groupBody });
    assert.equal(read.text, 'équipe');
    assert.equal(call({ op: 'verify', payload_bytes: read.payload_bytes, signature: read.signature, signer: read.signer })
      .payload.recipient, null);
    assert.deepEqual(handle({ op: 'group_decrypt', name: 'b', group, from: toAlice, body: groupBody }),
      { ok: false, code: 'replayed-message' });
    call({ op: 'group_rotate', name: 'a', group });
    const rotated = call({ op: 'group_encrypt', name: 'a', group, client_message_id: 'h', sent_at_ms: '2', text: 'après' }).body;
    assert.deepEqual(handle({ op: 'group_decrypt', name: 'b', group, from: toAlice, body: rotated }),
      { ok: false, code: 'unknown-sender-key' });
  });
}

if (process.env.NODE_TEST_CONTEXT) await selfTest();
else await serve();
