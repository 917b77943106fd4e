/**
 * End-to-end layer: one session per peer device, kept in the keystore (docs/protocol.md §3, §7;
 * the same rules as `lien/sdk/e2e.py`). No I/O: the client fetches bundles and device lists.
 *
 * A body is routed as docs/protocol-crypto.md §3.7.6 says: an existing session opens it
 * unless it is a prekey message of another set-up, which opens a new session.
 */
import { toBase64 } from '../src/crypto/bytes.js';
import { CryptoError, NoSession, SessionStateCorrupt } from '../src/crypto/errors.js';
import { Session, acceptPrekeyMessage, initiateSession } from '../src/crypto/session.js';
import { parseBody } from '../src/crypto/wire.js';
import { PrekeyBundle } from '../src/crypto/x3dh.js';

export const INITIAL_ONE_TIME_PREKEYS = 100;
export const PREKEY_BATCH = 50;

/** The server names a sender device whose identity the directory does not list. */
export class UnknownSenderDevice extends CryptoError {
  static code = 'unknown-sender-device';
  static publicMessage = 'The message comes from a device the directory does not know.';
}

/** Sending is refused: the recipient's devices changed and the user has not accepted the change. */
export class IdentityNotAccepted extends CryptoError {
  static code = 'identity-not-accepted';
  static publicMessage = "This correspondent's devices changed; compare safety numbers and accept the change first.";
}

const nameOf = (peer) => `${peer.user}/${peer.device}`;

function prekeyBody(prekey) {
  return { id: prekey.prekeyId, key: toBase64(prekey.publicKey) };
}

/** Public keys of a new device: identity, a signed prekey, a first batch of one-time prekeys (§4.2). */
export function deviceRegistration(keystore, name) {
  const signed = keystore.newSignedPrekey();
  const oneTime = keystore.newOneTimePrekeys(INITIAL_ONE_TIME_PREKEYS);
  const identity = keystore.identity.public;
  return {
    name,
    identity_signing_key: toBase64(identity.signingKey),
    identity_exchange_key: toBase64(identity.exchangeKey),
    signed_prekey: { id: signed.prekeyId, key: toBase64(signed.publicKey), signature: toBase64(signed.signature) },
    prekeys: oneTime.map(prekeyBody),
  };
}

/** More one-time prekeys; their private halves are in the keystore (save it before uploading). */
export function newPrekeys(keystore, count = PREKEY_BATCH) {
  return keystore.newOneTimePrekeys(count).map(prekeyBody);
}

export function loadSession(keystore, peer) {
  const state = keystore.session(nameOf(peer));
  if (state === null) return null;
  try {
    return Session.fromDict(state);
  } catch (error) {
    if (!(error instanceof SessionStateCorrupt)) throw error;
    keystore.setSession(nameOf(peer), null);
    return null;
  }
}

export function hasSession(keystore, peer) {
  return keystore.session(nameOf(peer)) !== null;
}

/** Forget the session with `peer`: the next message to it opens a new one (repair). */
export function dropSession(keystore, peer) {
  keystore.setSession(nameOf(peer), null);
}

/** Open a session from the bundle the server handed out (its prekey signature is checked). */
export function startSession(keystore, own, peer, bundleJson) {
  const session = initiateSession(keystore.identity, own, peer, PrekeyBundle.fromApi(bundleJson));
  keystore.setSession(nameOf(peer), session.toDict());
}

/** The body of `payload` for its recipient; a session with it must exist. */
export function encrypt(keystore, payload) {
  const session = loadSession(keystore, payload.recipient);
  if (session === null) throw new NoSession();
  const body = session.encrypt(payload, keystore.identity);
  keystore.setSession(nameOf(payload.recipient), session.toDict());
  return body;
}

/**
 * Open a body from `deliveredBy`, opening or replacing its session (§3.7.6). Throws a
 * CryptoError and changes nothing when the body cannot be opened or does not verify.
 * @returns {import('../src/crypto/payload.js').SignedPayload}
 */
export function decrypt(keystore, own, body, { deliveredBy, senderIdentity, conversation }) {
  const parsed = parseBody(body);
  const existing = loadSession(keystore, deliveredBy);
  if (existing !== null && (parsed.x3dh === null || existing.matches(body))) {
    if (!existing.peerIdentity.equals(senderIdentity)) {
      throw new UnknownSenderDevice("The sender device's identity changed since the session began.");
    }
    const message = existing.decrypt(body, { deliveredBy, conversation });
    keystore.setSession(nameOf(deliveredBy), existing.toDict());
    return message;
  }
  if (parsed.x3dh === null) throw new NoSession();
  const accepted = acceptPrekeyMessage(keystore.identity, own, body, {
    deliveredBy,
    senderIdentity,
    conversation,
    signedPrekeys: (id) => keystore.signedPrekey(id),
    oneTimePrekeys: (id) => keystore.oneTimePrekey(id),
  });
  keystore.setSession(nameOf(deliveredBy), accepted.session.toDict());
  if (accepted.usedOneTimePrekeyId !== null) keystore.consumeOneTimePrekey(accepted.usedOneTimePrekeyId);
  return accepted.message;
}
