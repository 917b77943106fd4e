/**
 * A session's state as a JSON-safe object, for the keystore (docs/protocol-crypto.md §3.6.7).
 *
 * The fields and checks are those of `lien/crypto/session_state.py` (state format 1),
 * with one difference of encoding: device ids are decimal strings (64-bit, §3.11's JSON
 * convention), bytes standard base64, skipped keys `[ratchet_key, n, message_key, stored_at_step]`.
 * Decoding checks types and sizes, key encodings, counters, role consistency (a responder
 * is confirmed; a receiving chain exists exactly when confirmed), skipped-key consistency
 * (no duplicates, not stored in the future), and trims skipped keys to the current limits;
 * anything else is `SessionStateCorrupt`.
 *
 * The object holds private keys: write it only inside the encrypted keystore.
 */
import { fromBase64, isBytes, toBase64 } from './bytes.js';
import { CryptoError, SessionStateCorrupt } from './errors.js';
import { PublicIdentity, isPrekeyId } from './keys.js';
import { DeviceAddress } from './payload.js';
import { isCanonicalExchangeKey } from './primitives.js';
import { LIMITS_CEILING, RatchetState, skippedIndex } from './ratchet.js';
import { MAX_COUNTER, X3dhData } from './wire.js';

/** Version of this encoding; bumped, with a migration, whenever a field changes. */
export const STATE_FORMAT = 1;

export const Role = Object.freeze({ INITIATOR: 'initiator', RESPONDER: 'responder' });

/**
 * Everything a session persists; mutable only by the session.
 * @typedef {object} SessionCore
 * @property {'initiator' | 'responder'} role
 * @property {DeviceAddress} own
 * @property {PublicIdentity} ownIdentity
 * @property {DeviceAddress} peer
 * @property {PublicIdentity} peerIdentity
 * @property {X3dhData} x3dh the X3DH data of the prekey messages that opened the session
 * @property {boolean} confirmed initiator only: a message from the responder decrypted
 * @property {RatchetState} ratchet
 */

const FIELDS = [
  'format', 'role', 'own_user', 'own_device', 'own_signing_key', 'own_exchange_key',
  'peer_user', 'peer_device', 'peer_signing_key', 'peer_exchange_key',
  'ephemeral_key', 'signed_prekey_id', 'one_time_prekey_id', 'confirmed',
  'root_key', 'sending_private', 'receiving_key', 'sending_chain_key', 'receiving_chain_key',
  'sending_length', 'receiving_length', 'previous_sending_length', 'receive_steps',
  'previous_receiving_keys', 'skipped',
];

const b64OrNull = (value) => (value === null ? null : toBase64(value));

/** @param {SessionCore} core */
export function stateToDict(core) {
  const { ratchet } = core;
  if (ratchet.sendingChainKey === null) throw new Error('a session always has a sending chain');
  return {
    format: STATE_FORMAT,
    role: core.role,
    own_user: core.own.user,
    own_device: String(core.own.device),
    own_signing_key: toBase64(core.ownIdentity.signingKey),
    own_exchange_key: toBase64(core.ownIdentity.exchangeKey),
    peer_user: core.peer.user,
    peer_device: String(core.peer.device),
    peer_signing_key: toBase64(core.peerIdentity.signingKey),
    peer_exchange_key: toBase64(core.peerIdentity.exchangeKey),
    ephemeral_key: toBase64(core.x3dh.ephemeralKey),
    signed_prekey_id: core.x3dh.signedPrekeyId,
    one_time_prekey_id: core.x3dh.oneTimePrekeyId,
    confirmed: core.confirmed,
    root_key: toBase64(ratchet.rootKey),
    sending_private: toBase64(ratchet.sendingPrivate),
    receiving_key: b64OrNull(ratchet.receivingKey),
    sending_chain_key: toBase64(ratchet.sendingChainKey),
    receiving_chain_key: b64OrNull(ratchet.receivingChainKey),
    sending_length: ratchet.sendingLength,
    receiving_length: ratchet.receivingLength,
    previous_sending_length: ratchet.previousSendingLength,
    receive_steps: ratchet.receiveSteps,
    previous_receiving_keys: ratchet.previousReceivingKeys.map(toBase64),
    skipped: [...ratchet.skipped.values()].map((key) => [
      toBase64(key.ratchetKey), key.messageNumber, toBase64(key.messageKey), key.storedAtStep,
    ]),
  };
}

/**
 * Rebuild a session core; throws `SessionStateCorrupt` for anything invalid.
 * @param {unknown} data
 * @param {import('./ratchet.js').RatchetLimits} limits
 * @returns {SessionCore}
 */
export function stateFromDict(data, limits) {
  try {
    return build(data, limits);
  } catch (error) {
    if (error instanceof CryptoError || error instanceof RangeError || error instanceof TypeError) {
      throw new SessionStateCorrupt();
    }
    throw error;
  }
}

function fail(what) {
  throw new TypeError(`session state: ${what}`);
}

function key(value) {
  const bytes = fromBase64(value);
  if (!isBytes(bytes, 32)) fail('a key is not 32 bytes');
  return bytes;
}

const keyOrNull = (value) => (value === null ? null : key(value));

function integer(value, high) {
  if (!Number.isInteger(value) || value < 0 || value > high) fail('an integer is out of range');
  return value;
}

function deviceId(value) {
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,18}$/.test(value)) fail('a device id is not decimal');
  return BigInt(value);
}

function keyList(value) {
  if (!Array.isArray(value) || value.length > LIMITS_CEILING) fail('a list is invalid');
  return value;
}

function build(data, limits) {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) fail('not an object');
  const names = Object.keys(data);
  if (names.length !== FIELDS.length || !FIELDS.every((name) => Object.hasOwn(data, name))) {
    fail('unknown or missing fields');
  }
  if (data.format !== STATE_FORMAT) fail('unknown format');
  if (data.role !== Role.INITIATOR && data.role !== Role.RESPONDER) fail('unknown role');
  if (typeof data.confirmed !== 'boolean') fail('confirmed is not a boolean');
  const ownIdentity = new PublicIdentity(key(data.own_signing_key), key(data.own_exchange_key));
  const peerIdentity = new PublicIdentity(key(data.peer_signing_key), key(data.peer_exchange_key));
  const initiator = data.role === Role.INITIATOR ? ownIdentity : peerIdentity;
  if (!isPrekeyId(data.signed_prekey_id)) fail('signed prekey id');
  if (data.one_time_prekey_id !== null && !isPrekeyId(data.one_time_prekey_id)) fail('one-time prekey id');
  const x3dh = new X3dhData(initiator, key(data.ephemeral_key), data.signed_prekey_id, data.one_time_prekey_id);

  const receivingKey = keyOrNull(data.receiving_key);
  const receivingChainKey = keyOrNull(data.receiving_chain_key);
  const previousReceivingKeys = keyList(data.previous_receiving_keys).map(key);
  if (![receivingKey, ...previousReceivingKeys].every((k) => k === null || isCanonicalExchangeKey(k))) {
    fail('non-canonical ratchet key');
  }
  if (receivingKey === null) fail("a session always knows the peer's ratchet key");
  if (data.role === Role.RESPONDER && !data.confirmed) fail('a responder session is confirmed from the start');
  if (data.confirmed !== (receivingChainKey !== null)) fail('a receiving chain exists exactly when confirmed');
  const receiveSteps = integer(data.receive_steps, Number.MAX_SAFE_INTEGER);
  const skipped = skippedKeys(keyList(data.skipped), receiveSteps, limits);

  const ratchet = new RatchetState({
    rootKey: key(data.root_key),
    sendingPrivate: key(data.sending_private),
    receivingKey,
    sendingChainKey: key(data.sending_chain_key),
    receivingChainKey,
    sendingLength: integer(data.sending_length, MAX_COUNTER + 1),
    receivingLength: integer(data.receiving_length, MAX_COUNTER + 1),
    previousSendingLength: integer(data.previous_sending_length, MAX_COUNTER + 1),
    receiveSteps,
    previousReceivingKeys: limits.skippedKeyMaxSteps ? previousReceivingKeys.slice(-limits.skippedKeyMaxSteps) : [],
    skipped,
  });
  return {
    role: data.role,
    own: new DeviceAddress(data.own_user, deviceId(data.own_device)),
    ownIdentity,
    peer: new DeviceAddress(data.peer_user, deviceId(data.peer_device)),
    peerIdentity,
    x3dh,
    confirmed: data.confirmed,
    ratchet,
  };
}

function skippedKeys(records, receiveSteps, limits) {
  const skipped = new Map();
  for (const record of records) {
    if (!Array.isArray(record) || record.length !== 4) fail('a skipped key is not a 4-item array');
    const [ratchetKey, messageNumber, messageKey, storedAtStep] = [
      key(record[0]), integer(record[1], MAX_COUNTER), key(record[2]), integer(record[3], Number.MAX_SAFE_INTEGER),
    ];
    const index = skippedIndex(ratchetKey, messageNumber);
    if (storedAtStep > receiveSteps || skipped.has(index)) fail('inconsistent skipped key');
    if (receiveSteps - storedAtStep > limits.skippedKeyMaxSteps) continue; // expired under the current limits
    skipped.set(index, { ratchetKey, messageNumber, messageKey, storedAtStep });
  }
  for (const oldest of skipped.keys()) {
    if (skipped.size <= limits.maxSkippedKeys) break;
    skipped.delete(oldest);
  }
  return skipped;
}
