/**
 * The client side of a connection, without I/O: frames in, events and frames out
 * (docs/protocol.md §5, §6; the same object as `lien/protocol/client.py`).
 *
 * Frames are JSON text; bytes travel as standard base64. This module remembers what
 * was sent and not yet `accepted` (to resend after a reconnect under the same client
 * message id, so nothing is delivered twice) and what was received and not yet acked.
 * The connection glue (`client.js`) drives it; the node tests drive it alone.
 */
import { concat, u64, u8, utf8 } from '../src/crypto/bytes.js';
import { LienError, errorFromWire } from './errors.js';

export const PROTOCOL_VERSION = 1;
export const MAX_FRAME_CHARS = 1_048_576;
export const MAX_COPIES_PER_ENVELOPE = 32;
export const MAX_SENDS_IN_FLIGHT = 64;
export const MAX_WATCHED_USERS = 512;
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const USERNAME = /^[a-z0-9][a-z0-9._-]{2,31}$/;
const CLIENT_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

const isInt = (value) => Number.isSafeInteger(value) && value >= 0;
const isStr = (value) => typeof value === 'string';
const isBool = (value) => typeof value === 'boolean';
const isNullable = (check) => (value) => value === null || value === undefined || check(value);
const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

/** Required fields of each server frame (§5.2) and their checks; the server writes every field. */
const SERVER_FRAMES = {
  ready: { v: isInt, user: isStr, device: isInt, server_time: isInt, prekeys: isInt, replenish: isBool },
  accepted: { id: isStr, message: isStr, at: isInt, duplicate: isNullable(isBool) },
  message: {
    seq: isInt, message: isStr, sender: isStr, sender_device: isInt, to: isNullable(isStr),
    group: isNullable(isStr), body: isStr, key: isNullable(isStr), at: isInt,
  },
  status: {
    seq: isInt, message: isStr, kind: isStr, by: isStr, by_device: isInt, at: isInt, hash: isStr,
    device_time: isInt, signature: isStr,
  },
  group_event: { seq: isInt, group: isStr, epoch: isInt, event: isStr, actor: isStr, at: isInt },
  typing: { sender: isStr, sender_device: isInt, group: isNullable(isStr), active: isBool },
  presence: { user: isStr, online: isBool },
  devices_changed: { user: isStr },
  prekeys_low: { remaining: isInt },
  pong: { id: isInt },
  error: {
    code: isStr, message: isStr, ref: isNullable(isStr), retry_after: isNullable((v) => typeof v === 'number'),
    details: isNullable(isObject),
  },
};

/** Decode one server frame; a `LienError` with code `malformed-frame` or `unknown-frame-type` otherwise. */
export function decodeServerFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    throw new LienError('malformed-frame', 'The server sent a frame that is not JSON.');
  }
  if (!isObject(frame) || !isStr(frame.type)) {
    throw new LienError('malformed-frame', 'The server sent a frame without a type.');
  }
  const fields = SERVER_FRAMES[frame.type];
  if (fields === undefined) throw new LienError('unknown-frame-type', `Unexpected frame ${frame.type}.`);
  for (const [name, check] of Object.entries(fields)) {
    if (!check(frame[name])) throw new LienError('malformed-frame', `Bad field ${name} in ${frame.type}.`);
  }
  return frame;
}

/** Encode one client frame (§5.1). Bytes must already be base64 strings. */
export function encodeFrame(frame) {
  return JSON.stringify(frame);
}

export function authFrame(token) {
  return { type: 'auth', v: PROTOCOL_VERSION, token };
}

/** @param {string} id @param {string} to @param {{device: number, body: string}[]} copies */
export function sendFrame(id, to, copies) {
  if (!CLIENT_ID.test(id)) throw new RangeError('not a client message id');
  if (!USERNAME.test(to)) throw new RangeError('not a username');
  if (copies.length < 1 || copies.length > MAX_COPIES_PER_ENVELOPE) throw new RangeError('1 to 32 copies');
  return { type: 'send', id, to, copies };
}

export function resendFrame(id, message, copies) {
  return { type: 'resend', id, message, copies };
}

/**
 * A signed receipt (docs/protocol.md §10.4): `hash` the SHA-256 of the ciphertext this
 * device received, `at` this device's clock, `signature` its identity key's Ed25519
 * signature over {@link receiptSigningInput}; bytes as base64.
 */
export function receiptFrame(message, kind, hash, at, signature) {
  return { type: 'receipt', message, kind, hash, at, signature };
}

export const RECEIPT_DOMAIN = utf8('lien-receipt-v1\0');

function str8(text) {
  const data = utf8(text);
  if (data.length > 255) throw new RangeError('at most 255 bytes');
  return concat(u8(data.length), data);
}

/**
 * What a device signs for a receipt (`lien.ledger.receipt_signing_input`):
 * `domain || str8(message) || str8(kind) || sha256 (32) || u64(device_time) || str8(by) || u64(by_device)`.
 */
export function receiptSigningInput({ message, kind, ciphertextSha256, deviceTime, by, byDevice }) {
  if (!(ciphertextSha256 instanceof Uint8Array) || ciphertextSha256.length !== 32) {
    throw new RangeError('a ciphertext hash is 32 bytes');
  }
  return concat(
    RECEIPT_DOMAIN, str8(message), str8(kind), ciphertextSha256, u64(BigInt(deviceTime)), str8(by), u64(BigInt(byDevice)),
  );
}

export function typingFrame(to, active) {
  return { type: 'typing', to, active };
}

export function watchFrame(users) {
  return { type: 'watch', users: users.slice(0, MAX_WATCHED_USERS) };
}

/** 24 random hex characters, as the SDK chooses them (§7.3). */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * Events returned by {@link ClientProtocol#receive}:
 * - `{kind: 'connected', ready}`
 * - `{kind: 'accepted', accepted}`
 * - `{kind: 'refused', clientId, error}` (an error whose `ref` names a pending send)
 * - `{kind: 'inbox', frame}` (`message`, `status`, `group_event`: call `handled(seq)` once safe)
 * - `{kind: 'ephemeral', frame}` (`typing`, `presence`, `devices_changed`, `prekeys_low`, `pong`)
 * - `{kind: 'error', error, ref}`
 */
export class ClientProtocol {
  constructor() {
    /** @type {Map<string, string>} client id -> encoded frame, in first-sent order */
    this.pending = new Map();
    this.handledSeq = 0;
    this.ackedSeq = 0;
    this.ready = null;
  }

  auth(token) {
    this.ready = null;
    return encodeFrame(authFrame(token));
  }

  /** Encode a send or resend and remember it until it is accepted or refused. */
  send(frame) {
    const data = encodeFrame(frame);
    this.pending.delete(frame.id); // a retry under the same id takes the latest copies, in its old place
    this.pending.set(frame.id, data);
    return data;
  }

  forget(clientId) {
    this.pending.delete(clientId);
  }

  /** Everything not yet accepted, in the order first sent (resend after `ready`, §7.3). */
  pendingSends() {
    return [...this.pending.values()];
  }

  /** The application has safely taken inbox entry `seq` (entries arrive in order). */
  handled(seq) {
    this.handledSeq = Math.max(this.handledSeq, seq);
  }

  get unacked() {
    return this.handledSeq - this.ackedSeq;
  }

  /**
   * An ack frame up to `upTo` (default: everything handled), or null when nothing new.
   * Pass the `handledSeq` read before saving the keystore: what is acked must be saved.
   */
  ack(upTo = this.handledSeq) {
    const target = Math.min(upTo, this.handledSeq);
    if (target <= this.ackedSeq) return null;
    this.ackedSeq = target;
    return encodeFrame({ type: 'ack', up_to: target });
  }

  receive(text) {
    const frame = decodeServerFrame(text);
    switch (frame.type) {
      case 'ready':
        this.ready = frame;
        // The server resumes after what it saw acked; entries handled but not acked
        // here come again and are dropped as duplicates by server message id.
        this.handledSeq = 0;
        this.ackedSeq = 0;
        return { kind: 'connected', ready: frame };
      case 'accepted':
        this.pending.delete(frame.id);
        return { kind: 'accepted', accepted: frame };
      case 'message':
      case 'status':
      case 'group_event':
        return { kind: 'inbox', frame };
      case 'error': {
        const error = errorFromWire(frame.code, frame.message, frame.details, frame.retry_after);
        if (frame.ref != null && this.pending.has(frame.ref)) {
          return { kind: 'refused', clientId: frame.ref, error };
        }
        return { kind: 'error', error, ref: frame.ref ?? null };
      }
      default:
        return { kind: 'ephemeral', frame };
    }
  }
}

/** The WebSocket URL of a base URL: `ws(s)://host[:port]/ws`, nothing else in it (§2.2, §7.1). */
export function wsUrl(baseUrl) {
  const url = new URL('/ws', baseUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** Reconnect delays (§7.2): 0.1 s doubling to 5 s, times a random factor 0.5 … 1.5. */
export class Backoff {
  constructor({ min = 100, max = 5000, random = Math.random } = {}) {
    this.min = min;
    this.max = max;
    this.random = random;
    this.current = min;
  }

  next() {
    const delay = this.current * (0.5 + this.random());
    this.current = Math.min(this.current * 2, this.max);
    return delay;
  }

  reset() {
    this.current = this.min;
  }
}

/** Close codes after which reconnecting is pointless (§7.2): auth failed, unsupported version. */
export const FATAL_CLOSE_CODES = new Map([
  [4401, 'auth-failed'],
  [4426, 'unsupported-version'],
]);
