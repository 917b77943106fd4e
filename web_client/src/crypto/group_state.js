/**
 * Sender-key states as JSON-safe objects, for the keystore (docs/protocol-group.md §3.17.8).
 *
 * Two kinds, tagged by `type` so one cannot be loaded as the other: a device's own sender
 * key for a group (`sender-key`) and what it holds of another device's sender keys in that
 * group (`sender-key-receiver`). The fields are those of `lien/crypto/group_state.py`
 * (state format 1) in this client's own encoding (§3.17.8 allows it): bytes as standard
 * base64, device ids as decimal strings, skipped keys as `[iteration, message_key]`.
 *
 * Decoding checks types and sizes, the group id, addresses and identity keys,
 * `key_id ≤ 2^32 − 1`, `iteration ≤ 2^32`, at most 2 chains with distinct key ids, valid
 * signing keys, skipped iterations strictly increasing and below their chain's iteration,
 * and trims skipped keys to the current limits; anything else is `GroupStateCorrupt`.
 *
 * The objects hold secrets (chain keys, message keys, a signing seed): write them only
 * inside the encrypted keystore.
 */
import { fromBase64, isBytes, toBase64 } from './bytes.js';
import { CryptoError, GroupStateCorrupt } from './errors.js';
import { END_OF_CHAIN, LIMITS_CEILING, MAX_RECEIVED_KEYS, ReceiverChain, SenderSigningKey } from './group_chain.js';
import { MAX_KEY_ID, checkGroupId } from './group_wire.js';
import { PublicIdentity } from './keys.js';
import { DeviceAddress } from './payload.js';
import { KEY_SIZE, isValidEd25519Public } from './primitives.js';

/** Version of these encodings; bumped, with a migration, whenever a field changes. */
export const STATE_FORMAT = 1;
export const SENDER_KEY_TYPE = 'sender-key';
export const RECEIVER_TYPE = 'sender-key-receiver';

/**
 * This device's sender key in one group; mutable only by `SenderKey`.
 * @typedef {object} SenderKeyCore
 * @property {string} groupId
 * @property {DeviceAddress} own
 * @property {PublicIdentity} ownIdentity
 * @property {number} keyId
 * @property {number} iteration the iteration of the next message; END_OF_CHAIN once the last was sent
 * @property {Uint8Array} chainKey the chain key of `iteration`
 * @property {SenderSigningKey} signingKey
 */

/**
 * Another device's sender keys in one group, as this device holds them (oldest first, at most 2).
 * @typedef {object} ReceiverCore
 * @property {string} groupId
 * @property {DeviceAddress} sender
 * @property {PublicIdentity} senderIdentity
 * @property {ReceiverChain[]} chains
 */

const SENDER_FIELDS = [
  'format', 'type', 'group_id', 'own_user', 'own_device', 'own_signing_key', 'own_exchange_key',
  'key_id', 'iteration', 'chain_key', 'signing_seed',
];
const RECEIVER_FIELDS = [
  'format', 'type', 'group_id', 'sender_user', 'sender_device', 'sender_signing_key', 'sender_exchange_key', 'chains',
];
const CHAIN_FIELDS = ['key_id', 'signing_key', 'iteration', 'chain_key', 'skipped'];

// --- encoding

/** @param {SenderKeyCore} core */
export function senderKeyToDict(core) {
  return {
    format: STATE_FORMAT,
    type: SENDER_KEY_TYPE,
    group_id: core.groupId,
    own_user: core.own.user,
    own_device: String(core.own.device),
    own_signing_key: toBase64(core.ownIdentity.signingKey),
    own_exchange_key: toBase64(core.ownIdentity.exchangeKey),
    key_id: core.keyId,
    iteration: core.iteration,
    chain_key: toBase64(core.chainKey),
    signing_seed: toBase64(core.signingKey.seedBytes()),
  };
}

/** @param {ReceiverCore} core */
export function receiverToDict(core) {
  return {
    format: STATE_FORMAT,
    type: RECEIVER_TYPE,
    group_id: core.groupId,
    sender_user: core.sender.user,
    sender_device: String(core.sender.device),
    sender_signing_key: toBase64(core.senderIdentity.signingKey),
    sender_exchange_key: toBase64(core.senderIdentity.exchangeKey),
    chains: core.chains.map((chain) => ({
      key_id: chain.keyId,
      signing_key: toBase64(chain.signingKey),
      iteration: chain.iteration,
      chain_key: toBase64(chain.chainKey),
      skipped: [...chain.skipped].map(([iteration, key]) => [iteration, toBase64(key)]),
    })),
  };
}

// --- decoding

/**
 * Rebuild a sender key's core; `GroupStateCorrupt` for anything invalid.
 * @returns {SenderKeyCore}
 */
export function senderKeyFromDict(data) {
  return strictly(() => {
    record(data, SENDER_FIELDS, SENDER_KEY_TYPE);
    return {
      groupId: checkGroupId(data.group_id),
      own: address(data.own_user, data.own_device),
      ownIdentity: new PublicIdentity(key(data.own_signing_key), key(data.own_exchange_key)),
      keyId: integer(data.key_id, MAX_KEY_ID),
      iteration: integer(data.iteration, END_OF_CHAIN),
      chainKey: key(data.chain_key),
      signingKey: new SenderSigningKey(key(data.signing_seed)),
    };
  });
}

/**
 * Rebuild a receiver's core, trimming skipped keys to `limits`; `GroupStateCorrupt` for anything invalid.
 * @param {unknown} data @param {import('./group_chain.js').SenderKeyLimits} limits
 * @returns {ReceiverCore}
 */
export function receiverFromDict(data, limits) {
  return strictly(() => {
    record(data, RECEIVER_FIELDS, RECEIVER_TYPE);
    if (!Array.isArray(data.chains) || data.chains.length > MAX_RECEIVED_KEYS) fail('chains');
    const chains = data.chains.map((each) => chain(each, limits));
    if (new Set(chains.map((each) => each.keyId)).size !== chains.length) fail('two sender keys with one key id');
    return {
      groupId: checkGroupId(data.group_id),
      sender: address(data.sender_user, data.sender_device),
      senderIdentity: new PublicIdentity(key(data.sender_signing_key), key(data.sender_exchange_key)),
      chains,
    };
  });
}

function chain(data, limits) {
  record(data, CHAIN_FIELDS, null);
  const signingKey = key(data.signing_key);
  if (!isValidEd25519Public(signingKey)) fail('not a valid Ed25519 public key');
  const iteration = integer(data.iteration, END_OF_CHAIN);
  if (!Array.isArray(data.skipped) || data.skipped.length > LIMITS_CEILING) fail('skipped keys');
  const skipped = new Map();
  let previous = -1;
  for (const item of data.skipped) {
    if (!Array.isArray(item) || item.length !== 2) fail('a skipped key is not a pair');
    const number = integer(item[0], END_OF_CHAIN - 1);
    if (number <= previous || number >= iteration) fail('skipped keys out of order, repeated or not behind the chain');
    skipped.set(number, key(item[1]));
    previous = number;
  }
  for (const lowest of skipped.keys()) {
    if (skipped.size <= limits.maxSkippedKeys) break;
    skipped.delete(lowest);
  }
  return new ReceiverChain({
    keyId: integer(data.key_id, MAX_KEY_ID), signingKey, iteration, chainKey: key(data.chain_key), skipped,
  });
}

function strictly(build) {
  try {
    return build();
  } catch (error) {
    if (error instanceof CryptoError || error instanceof RangeError || error instanceof TypeError) {
      throw new GroupStateCorrupt();
    }
    throw error;
  }
}

function fail(what) {
  throw new TypeError(`group state: ${what}`);
}

function record(data, fields, type) {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) fail('not an object');
  const names = Object.keys(data);
  if (names.length !== fields.length || !fields.every((name) => Object.hasOwn(data, name))) {
    fail('unknown or missing fields');
  }
  if (type !== null && (data.format !== STATE_FORMAT || data.type !== type)) fail('unknown format or type');
}

function key(value) {
  const bytes = fromBase64(value);
  if (!isBytes(bytes, KEY_SIZE)) fail('a key is not 32 bytes');
  return bytes;
}

function integer(value, high) {
  if (!Number.isInteger(value) || value < 0 || value > high) fail('an integer is out of range');
  return value;
}

function address(user, device) {
  if (typeof device !== 'string' || !/^[1-9][0-9]{0,18}$/.test(device)) fail('a device id is not decimal');
  return new DeviceAddress(user, BigInt(device));
}
