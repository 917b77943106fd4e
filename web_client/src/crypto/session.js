/**
 * End-to-end sessions between two devices: the API the client calls
 * (docs/protocol-crypto.md §3.5 to §3.8, §3.13; the same API as `lien/crypto/session.py`).
 *
 * - {@link initiateSession} opens a session with a peer device from its key bundle. Until
 *   the peer answers, every body it encrypts is a prekey message (§3.7.3).
 * - {@link acceptPrekeyMessage} opens the peer's side from the first prekey message it
 *   receives and says which one-time prekey it used: the caller deletes that private
 *   key once the new session is stored (§3.5.5).
 * - `Session#encrypt` signs a Payload and encrypts it; `Session#decrypt` decrypts,
 *   verifies the signature and the addressing, and returns the SignedPayload to keep.
 *
 * Every operation is all-or-nothing: a body that fails any check leaves the session
 * exactly as it was (§3.6.6). Nothing here does I/O; store `toDict()` in the encrypted
 * keystore after every change.
 */
import { concat, fromUtf8, utf8 } from './bytes.js';
import {
  IdentityMismatch, InvalidKey, MalformedMessage, MessageTooLarge, NoSession, SenderMismatch,
  SessionMismatch, SessionStateCorrupt, UnknownPrekey,
} from './errors.js';
import { IdentityKeyPair, PublicIdentity } from './keys.js';
import {
  Conversation, DeviceAddress, Payload, SignedPayload, checkDelivery, decodePlaintext, encodePlaintext,
  signPayload, verifyPairwisePayload,
} from './payload.js';
import { AEAD_TAG_SIZE, KEY_SIZE, aeadDecrypt, aeadEncrypt, randomBytes, x25519Public } from './primitives.js';
import { DEFAULT_LIMITS, RatchetState } from './ratchet.js';
import { Role, stateFromDict, stateToDict } from './session_state.js';
import { MAX_BODY_BYTES, X3dhData, encodePrefix, parseBody } from './wire.js';
import * as x3dh from './x3dh.js';

/** @typedef {import('./ratchet.js').RandomSource} RandomSource */
/** @typedef {import('./ratchet.js').RatchetLimits} RatchetLimits */
/** @typedef {import('./session_state.js').SessionCore} SessionCore */

/** One device's end of an encrypted session with one peer device. */
export class Session {
  #core;
  #limits;
  #random;

  /**
   * Not built directly: use {@link initiateSession}, {@link acceptPrekeyMessage} or `fromDict`.
   * @param {SessionCore} core @param {RatchetLimits} limits @param {RandomSource} randomSource
   */
  constructor(core, limits, randomSource) {
    this.#core = core;
    this.#limits = limits;
    this.#random = randomSource;
  }

  /** @returns {DeviceAddress} */
  get own() {
    return this.#core.own;
  }

  /** @returns {DeviceAddress} */
  get peer() {
    return this.#core.peer;
  }

  /** @returns {PublicIdentity} */
  get peerIdentity() {
    return this.#core.peerIdentity;
  }

  get isInitiator() {
    return this.#core.role === Role.INITIATOR;
  }

  /** True while this initiator has decrypted nothing from the peer (so it sends prekey messages). */
  get awaitingReply() {
    return !this.#core.confirmed;
  }

  /** X3DH's AD (§3.5.4): public, 128 bytes. */
  get associatedData() {
    const core = this.#core;
    return core.role === Role.INITIATOR
      ? x3dh.associatedData(core.ownIdentity, core.peerIdentity)
      : x3dh.associatedData(core.peerIdentity, core.ownIdentity);
  }

  /**
   * Sign `payload` with `signer` (this device's identity) and encrypt it into a body (§3.6.3, §3.7).
   * `payload` must go from this session's device to its peer device (else RangeError).
   * Throws `MessageTooLarge` or `SessionExhausted`, leaving the session unchanged.
   * @param {Payload} payload @param {IdentityKeyPair} signer
   * @returns {Uint8Array}
   */
  encrypt(payload, signer) {
    const core = this.#core;
    if (!(payload instanceof Payload)) throw new TypeError('payload must be a Payload');
    if (!payload.sender.equals(core.own) || !payload.recipient.equals(core.peer)) {
      throw new RangeError("the payload must go from this session's device to its peer device");
    }
    if (!(signer instanceof IdentityKeyPair) || !signer.public.equals(core.ownIdentity)) {
      throw new RangeError("the payload must be signed by this device's identity key");
    }
    const plaintext = encodePlaintext(signPayload(signer, payload));
    const working = core.ratchet.copy();
    const [header, messageKey] = working.nextSendingKey();
    const prefix = encodePrefix(core.confirmed ? null : core.x3dh, header);
    if (prefix.length + plaintext.length + AEAD_TAG_SIZE > MAX_BODY_BYTES) throw new MessageTooLarge();
    const body = concat(prefix, aeadEncrypt(messageKey, plaintext, concat(this.associatedData, prefix)));
    core.ratchet = working;
    return body;
  }

  /**
   * Decrypt a body from the peer and verify what it says (§3.6.5, §3.8.4).
   * `deliveredBy` is the sender device the server reported; `conversation` the one the
   * envelope came in (1:1: `Conversation.user(deliver.to)`). Throws a CryptoError (§3.9),
   * leaving the session unchanged, when anything is wrong.
   * @param {Uint8Array} body
   * @param {{deliveredBy: DeviceAddress, conversation: Conversation}} context
   * @returns {SignedPayload}
   */
  decrypt(body, { deliveredBy, conversation }) {
    const core = this.#core;
    if (!(deliveredBy instanceof DeviceAddress) || !(conversation instanceof Conversation)) {
      throw new TypeError('deliveredBy is a DeviceAddress and conversation a Conversation');
    }
    if (!deliveredBy.equals(core.peer)) throw new SenderMismatch();
    const parsed = parseBody(body);
    if (parsed.x3dh !== null && (core.role === Role.INITIATOR || !parsed.x3dh.equals(core.x3dh))) {
      throw new SessionMismatch();
    }
    const working = core.ratchet.copy();
    const messageKey = keyFor(working, parsed.header, this.#random, this.#limits);
    const plaintext = aeadDecrypt(messageKey, parsed.ciphertext, concat(this.associatedData, parsed.prefix));
    const signed = openPlaintext(plaintext, core, conversation);
    core.ratchet = working;
    core.confirmed = true;
    return signed;
  }

  /**
   * Whether `body` is a prekey message of the set-up that opened this (responder) session
   * (§3.7.6): false means the peer started over, to be opened with `acceptPrekeyMessage`.
   * Throws like `parseBody` for a body that does not parse.
   */
  matches(body) {
    const parsed = parseBody(body);
    return parsed.x3dh !== null && this.#core.role === Role.RESPONDER && parsed.x3dh.equals(this.#core.x3dh);
  }

  /** The whole state, private keys included, JSON-safe (§3.6.7): store it only in the encrypted keystore. */
  toDict() {
    return stateToDict(this.#core);
  }

  /** `toDict()` as UTF-8 JSON bytes. */
  toBytes() {
    return utf8(JSON.stringify(this.toDict()));
  }

  /** Restore a session; throws `SessionStateCorrupt` if invalid. */
  static fromDict(data, { limits = DEFAULT_LIMITS } = {}) {
    return new Session(stateFromDict(data, limits), limits, randomBytes);
  }

  /** Restore from `toBytes()`; throws `SessionStateCorrupt` if invalid. */
  static fromBytes(data, { limits = DEFAULT_LIMITS } = {}) {
    let parsed;
    try {
      parsed = JSON.parse(fromUtf8(data));
    } catch {
      throw new SessionStateCorrupt();
    }
    return Session.fromDict(parsed, { limits });
  }

  toString() {
    return `Session(${this.#core.role}, own=${this.#core.own}, peer=${this.#core.peer})`;
  }

  toJSON() {
    return this.toString(); // never the state: use toDict() for the keystore
  }
}

/** The ratchet's message key; a small-order ratchet key is `malformed-message` (§3.6.5). */
function keyFor(ratchet, header, randomSource, limits) {
  try {
    return ratchet.messageKeyFor(header, randomSource, limits);
  } catch (error) {
    if (error instanceof InvalidKey) throw new MalformedMessage();
    throw error;
  }
}

/** §3.8.3 framing, then §3.8.4 checks 1 to 4. */
function openPlaintext(plaintext, core, conversation) {
  const [payloadBytes, signature] = decodePlaintext(plaintext);
  const signer = core.peerIdentity.signingKey;
  const payload = verifyPairwisePayload(payloadBytes, signature, signer);
  checkDelivery(payload, { deliveredBy: core.peer, own: core.own, conversation });
  return new SignedPayload(payload, payloadBytes, signature, signer);
}

// --- set-up (§3.5)

/**
 * Open a session with `peer` from its key bundle (whose signature the bundle checked).
 * @param {IdentityKeyPair} ownIdentity
 * @param {DeviceAddress} own
 * @param {DeviceAddress} peer
 * @param {x3dh.PrekeyBundle} bundle
 * @param {{limits?: RatchetLimits}} [options]
 */
export function initiateSession(ownIdentity, own, peer, bundle, { limits = DEFAULT_LIMITS } = {}) {
  return _initiateWithRandom(ownIdentity, own, peer, bundle, limits, randomBytes);
}

/**
 * {@link initiateSession} with an injected random source: for test-vector replay only (§3.11).
 * A draws EK_A first, then its first ratchet key (§3.6.2).
 */
export function _initiateWithRandom(ownIdentity, own, peer, bundle, limits, randomSource) {
  if (!(own instanceof DeviceAddress) || !(peer instanceof DeviceAddress)) {
    throw new TypeError('own and peer are DeviceAddress');
  }
  if (!(bundle instanceof x3dh.PrekeyBundle)) throw new TypeError('bundle must be a PrekeyBundle');
  if (own.equals(peer)) throw new RangeError('a device does not open a session with itself');
  const ephemeralPrivate = randomSource(KEY_SIZE);
  const secret = x3dh.initiate(ownIdentity, bundle, ephemeralPrivate);
  const x3dhData = new X3dhData(
    ownIdentity.public, x25519Public(ephemeralPrivate), bundle.signedPrekeyId,
    bundle.oneTimePrekey === null ? null : bundle.oneTimePrekey.prekeyId,
  );
  const ratchet = RatchetState.forInitiator(secret.sharedSecret, bundle.signedPrekey, randomSource(KEY_SIZE));
  const core = {
    role: Role.INITIATOR, own, ownIdentity: ownIdentity.public, peer, peerIdentity: bundle.identity,
    x3dh: x3dhData, confirmed: false, ratchet,
  };
  return new Session(core, limits, randomSource);
}

/**
 * @typedef {object} AcceptedSession
 * @property {Session} session store it, then delete the one-time prekey below
 * @property {SignedPayload} message the first message
 * @property {number | null} usedOneTimePrekeyId
 */

/**
 * @typedef {object} AcceptOptions
 * @property {DeviceAddress} deliveredBy the sending device, as the server reported it
 * @property {PublicIdentity} senderIdentity the identity the server lists for that device
 * @property {Conversation} conversation the conversation the envelope came in
 * @property {(keyId: number) => import('./keys.js').SignedPrekeyPair | null | undefined} signedPrekeys
 * @property {(keyId: number) => import('./keys.js').OneTimePrekeyPair | null | undefined} oneTimePrekeys
 * @property {RatchetLimits} [limits]
 */

/**
 * Open the responder's side from a prekey message and decrypt it (§3.5.5).
 * Throws `NoSession` for a ratchet message, `IdentityMismatch` when the message's identity
 * keys are not `senderIdentity`, `UnknownPrekey` for a prekey this device does not hold.
 * @param {IdentityKeyPair} ownIdentity
 * @param {DeviceAddress} own
 * @param {Uint8Array} body
 * @param {AcceptOptions} options
 * @returns {AcceptedSession}
 */
export function acceptPrekeyMessage(ownIdentity, own, body, options) {
  return _acceptWithRandom(ownIdentity, own, body, options, randomBytes);
}

/** {@link acceptPrekeyMessage} with an injected random source: for test-vector replay only (§3.11). */
export function _acceptWithRandom(ownIdentity, own, body, options, randomSource) {
  const { deliveredBy, senderIdentity, conversation, signedPrekeys, oneTimePrekeys } = options;
  const limits = options.limits ?? DEFAULT_LIMITS;
  if (!(deliveredBy instanceof DeviceAddress) || !(conversation instanceof Conversation)) {
    throw new TypeError('deliveredBy is a DeviceAddress and conversation a Conversation');
  }
  if (!(senderIdentity instanceof PublicIdentity)) throw new TypeError('senderIdentity must be a PublicIdentity');
  if (own.equals(deliveredBy)) throw new SenderMismatch();
  const parsed = parseBody(body);
  const data = parsed.x3dh;
  if (data === null) throw new NoSession();
  if (!data.sender.equals(senderIdentity)) throw new IdentityMismatch();
  const signedPrekey = signedPrekeys(data.signedPrekeyId);
  if (!signedPrekey || signedPrekey.prekeyId !== data.signedPrekeyId) throw new UnknownPrekey();
  let oneTimePrekey = null;
  if (data.oneTimePrekeyId !== null) {
    oneTimePrekey = oneTimePrekeys(data.oneTimePrekeyId);
    if (!oneTimePrekey || oneTimePrekey.prekeyId !== data.oneTimePrekeyId) throw new UnknownPrekey();
  }
  let secret;
  try {
    secret = x3dh.respond(ownIdentity, signedPrekey, oneTimePrekey, data.sender, data.ephemeralKey);
  } catch (error) {
    if (error instanceof InvalidKey) throw new MalformedMessage();
    throw error;
  }
  const core = {
    role: Role.RESPONDER, own, ownIdentity: ownIdentity.public, peer: deliveredBy, peerIdentity: data.sender,
    x3dh: data, confirmed: true,
    ratchet: RatchetState.forResponder(secret.sharedSecret, signedPrekey.privateBytes()),
  };
  const working = core.ratchet.copy();
  const messageKey = keyFor(working, parsed.header, randomSource, limits);
  const plaintext = aeadDecrypt(messageKey, parsed.ciphertext, concat(secret.associatedData, parsed.prefix));
  const message = openPlaintext(plaintext, core, conversation);
  core.ratchet = working;
  return { session: new Session(core, limits, randomSource), message, usedOneTimePrekeyId: data.oneTimePrekeyId };
}
