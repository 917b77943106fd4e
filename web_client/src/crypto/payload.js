/**
 * The signed payload inside every format-2 message (docs/protocol-crypto.md §3.8), and the
 * group payload inside every group body (docs/protocol-group.md §3.17.6).
 *
 *     payload   = uint8 version (2)
 *              || str8 sender_user    || uint64 sender_device
 *              || str8 recipient_user || uint64 recipient_device
 *              || uint8 conversation_kind (1 user, 2 group) || str8 conversation_id
 *              || str8 client_message_id || uint64 sent_at_ms
 *              || str8 content_type || str32 text
 *     signed    = "lien-payload-v2\0" || payload                       (§3.8.2)
 *     plaintext = uint32 len(payload) || payload || signature (64) || 0x00 padding to a multiple of 256
 *
 *     group_payload = uint8 version (3) || str8 sender_user || uint64 sender_device
 *              || uint8 conversation_kind (2) || str8 group_id || str8 client_message_id
 *              || uint64 sent_at_ms || str8 content_type || str32 text
 *     signed    = "lien-group-payload-v1\0" || group_payload                   (§3.17.6)
 *
 * Byte 0 tells the two kinds apart; each is signed under its own domain, so neither can be
 * taken for the other. {@link verifyPayload} checks either kind offline.
 *
 * 64-bit fields (device ids, `sentAtMs`) are BigInt. Text is encoded as given (no
 * normalisation); a string with a lone surrogate is refused, never silently replaced.
 */
import {
  concat, equalBytes, fromUtf8, isBytes, isWellFormed, readU32, readU64, u32, u64, u8, utf8,
} from './bytes.js';
import { BadSignature, ConversationMismatch, MalformedPayload, SenderMismatch, WrongRecipient } from './errors.js';
import { SIGNATURE_SIZE, SIGNING_KEY_SIZE, verifyEd25519 } from './keys.js';

export const PAYLOAD_VERSION = 2;
export const SIGNATURE_DOMAIN = utf8('lien-payload-v2\0');
/** Byte 0 of a group payload (§3.17.6). */
export const GROUP_PAYLOAD_VERSION = 3;
export const GROUP_SIGNATURE_DOMAIN = utf8('lien-group-payload-v1\0');
export const PADDING_BLOCK = 256;
export const MAX_TEXT_BYTES = 60_000;
export const MAX_CONTENT_TYPE_BYTES = 64;
export const MAX_CONVERSATION_ID_BYTES = 64;
export const MAX_CLIENT_MESSAGE_ID_CHARS = 64;
export const MIN_USERNAME_CHARS = 3;
export const MAX_USERNAME_CHARS = 32;
export const MAX_DEVICE_ID = 2n ** 62n;
export const MAX_SENT_AT_MS = 2n ** 63n - 1n;
export const DEFAULT_CONTENT_TYPE = 'text/plain';

/** Conversation kinds (§3.8.1). */
export const ConversationKind = Object.freeze({ USER: 1, GROUP: 2 });

const USERNAME = /^[a-z0-9][a-z0-9._-]*$/;
/** Client message ids and group ids. */
const TOKEN = /^[A-Za-z0-9_.:-]+$/;
const CONTENT_TYPE = /^[a-z0-9][a-z0-9.+-]*\/[a-z0-9][a-z0-9.+-]*$/;

function checkUsername(name) {
  if (typeof name !== 'string' || name.length < MIN_USERNAME_CHARS || name.length > MAX_USERNAME_CHARS
      || !USERNAME.test(name)) {
    throw new RangeError('not a valid username');
  }
  return name;
}

function checkToken(value, maxChars) {
  if (typeof value !== 'string' || value.length < 1 || value.length > maxChars || !TOKEN.test(value)) {
    throw new RangeError('not a valid identifier');
  }
  return value;
}

/** A BigInt from a BigInt or a safe integer Number, within `[low, high]`. */
function checkBigInt(value, low, high) {
  const big = typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : value;
  if (typeof big !== 'bigint' || big < low || big > high) {
    throw new RangeError(`an integer from ${low} to ${high} was expected`);
  }
  return big;
}

/** A user's device: `user` a username, `device` the server's device id (1 … 2^62, BigInt). */
export class DeviceAddress {
  /** @param {string} user @param {bigint | number} device */
  constructor(user, device) {
    /** @readonly */ this.user = checkUsername(user);
    /** @readonly @type {bigint} */ this.device = checkBigInt(device, 1n, MAX_DEVICE_ID);
    Object.freeze(this);
  }

  equals(other) {
    return other instanceof DeviceAddress && this.user === other.user && this.device === other.device;
  }

  toString() {
    return `${this.user}/${this.device}`;
  }
}

/** Which conversation a message belongs to: a username (1:1) or a group id. */
export class Conversation {
  constructor(kind, id) {
    if (kind === ConversationKind.USER) checkUsername(id);
    else if (kind === ConversationKind.GROUP) checkToken(id, MAX_CONVERSATION_ID_BYTES);
    else throw new RangeError('kind must be a ConversationKind');
    /** @readonly */ this.kind = kind;
    /** @readonly */ this.id = id;
    Object.freeze(this);
  }

  static user(username) {
    return new Conversation(ConversationKind.USER, username);
  }

  static group(groupId) {
    return new Conversation(ConversationKind.GROUP, groupId);
  }

  equals(other) {
    return other instanceof Conversation && this.kind === other.kind && this.id === other.id;
  }
}

function str8(value) {
  const data = utf8(value);
  return concat(u8(data.length), data);
}

/** The rules of §3.8.1 shared by pairwise and group payloads (the time is checked by the caller). */
function checkMessageFields(clientMessageId, contentType, text) {
  checkToken(clientMessageId, MAX_CLIENT_MESSAGE_ID_CHARS);
  if (typeof contentType !== 'string' || contentType.length > MAX_CONTENT_TYPE_BYTES
      || !CONTENT_TYPE.test(contentType)) {
    throw new RangeError('not a valid content type');
  }
  if (typeof text !== 'string') throw new TypeError('text is a string');
  if (!isWellFormed(text)) throw new RangeError('text is not encodable as UTF-8');
  if (utf8(text).length > MAX_TEXT_BYTES) throw new RangeError(`text is at most ${MAX_TEXT_BYTES} bytes of UTF-8`);
}

/** Run `parse`; any field error becomes `MalformedPayload`, and so do bytes that do not re-encode the same. */
function decodeStrictly(data, parse) {
  let payload;
  try {
    payload = parse(new Reader(data));
  } catch (error) {
    if (error instanceof RangeError || error instanceof TypeError || error instanceof MalformedPayload) {
      throw new MalformedPayload();
    }
    throw error;
  }
  if (!equalBytes(payload.encode(), data)) throw new MalformedPayload();
  return payload;
}

/**
 * The fields of one message to one device (§3.8.1); the constructor validates every one.
 * `toString` leaves out the text: message content never goes to a log.
 */
export class Payload {
  /**
   * @param {{sender: DeviceAddress, recipient: DeviceAddress, conversation: Conversation,
   *   clientMessageId: string, sentAtMs: bigint | number, text: string, contentType?: string}} fields
   */
  constructor({ sender, recipient, conversation, clientMessageId, sentAtMs, text, contentType = DEFAULT_CONTENT_TYPE }) {
    if (!(sender instanceof DeviceAddress) || !(recipient instanceof DeviceAddress)) {
      throw new TypeError('sender and recipient are DeviceAddress');
    }
    if (!(conversation instanceof Conversation)) throw new TypeError('conversation is a Conversation');
    checkMessageFields(clientMessageId, contentType, text);
    /** @readonly */ this.sender = sender;
    /** @readonly */ this.recipient = recipient;
    /** @readonly */ this.conversation = conversation;
    /** @readonly */ this.clientMessageId = clientMessageId;
    /** @readonly @type {bigint} */ this.sentAtMs = checkBigInt(sentAtMs, 0n, MAX_SENT_AT_MS);
    /** @readonly */ this.text = text;
    /** @readonly */ this.contentType = contentType;
    Object.freeze(this);
  }

  /** The canonical bytes of §3.8.1. */
  encode() {
    const text = utf8(this.text);
    return concat(
      u8(PAYLOAD_VERSION),
      str8(this.sender.user), u64(this.sender.device),
      str8(this.recipient.user), u64(this.recipient.device),
      u8(this.conversation.kind), str8(this.conversation.id),
      str8(this.clientMessageId), u64(this.sentAtMs),
      str8(this.contentType), u32(text.length), text,
    );
  }

  /** Parse canonical bytes; throws `MalformedPayload` for anything else. */
  static decode(data) {
    return decodeStrictly(data, (reader) => {
      if (reader.u8() !== PAYLOAD_VERSION) throw new MalformedPayload();
      const sender = new DeviceAddress(reader.str8(), reader.u64());
      const recipient = new DeviceAddress(reader.str8(), reader.u64());
      const conversation = new Conversation(reader.u8(), reader.str8());
      const clientMessageId = reader.str8();
      const sentAtMs = reader.u64();
      const contentType = reader.str8();
      const text = reader.str32();
      reader.finish();
      return new Payload({ sender, recipient, conversation, clientMessageId, sentAtMs, text, contentType });
    });
  }

  toString() {
    return `Payload(sender=${this.sender}, recipient=${this.recipient}, `
      + `clientMessageId=${this.clientMessageId}, contentType=${this.contentType}, text=${this.text.length} chars)`;
  }

  toJSON() {
    return this.toString();
  }
}

/**
 * The fields of one message to a care-team group (§3.17.6): a {@link Payload} without a
 * recipient (a group message is encrypted once for every member device). `conversation`
 * must be a group. `toString` leaves out the text.
 */
export class GroupPayload {
  /**
   * @param {{sender: DeviceAddress, conversation: Conversation, clientMessageId: string,
   *   sentAtMs: bigint | number, text: string, contentType?: string}} fields
   */
  constructor({ sender, conversation, clientMessageId, sentAtMs, text, contentType = DEFAULT_CONTENT_TYPE }) {
    if (!(sender instanceof DeviceAddress)) throw new TypeError('sender is a DeviceAddress');
    if (!(conversation instanceof Conversation)) throw new TypeError('conversation is a Conversation');
    if (conversation.kind !== ConversationKind.GROUP) throw new RangeError('a group payload belongs to a group conversation');
    checkMessageFields(clientMessageId, contentType, text);
    /** @readonly */ this.sender = sender;
    /** @readonly */ this.conversation = conversation;
    /** @readonly */ this.clientMessageId = clientMessageId;
    /** @readonly @type {bigint} */ this.sentAtMs = checkBigInt(sentAtMs, 0n, MAX_SENT_AT_MS);
    /** @readonly */ this.text = text;
    /** @readonly */ this.contentType = contentType;
    Object.freeze(this);
  }

  get groupId() {
    return this.conversation.id;
  }

  /** The canonical bytes of §3.17.6. */
  encode() {
    const text = utf8(this.text);
    return concat(
      u8(GROUP_PAYLOAD_VERSION),
      str8(this.sender.user), u64(this.sender.device),
      u8(this.conversation.kind), str8(this.conversation.id),
      str8(this.clientMessageId), u64(this.sentAtMs),
      str8(this.contentType), u32(text.length), text,
    );
  }

  /** Parse canonical bytes; throws `MalformedPayload` for anything else (another version or kind too). */
  static decode(data) {
    return decodeStrictly(data, (reader) => {
      if (reader.u8() !== GROUP_PAYLOAD_VERSION) throw new MalformedPayload();
      const sender = new DeviceAddress(reader.str8(), reader.u64());
      const conversation = new Conversation(reader.u8(), reader.str8());
      const clientMessageId = reader.str8();
      const sentAtMs = reader.u64();
      const contentType = reader.str8();
      const text = reader.str32();
      reader.finish();
      return new GroupPayload({ sender, conversation, clientMessageId, sentAtMs, text, contentType });
    });
  }

  toString() {
    return `GroupPayload(sender=${this.sender}, groupId=${this.conversation.id}, `
      + `clientMessageId=${this.clientMessageId}, contentType=${this.contentType}, text=${this.text.length} chars)`;
  }

  toJSON() {
    return this.toString();
  }
}

class Reader {
  constructor(data) {
    this.data = data;
    this.offset = 0;
  }

  take(size) {
    const end = this.offset + size;
    if (end > this.data.length) throw new RangeError('truncated');
    const chunk = this.data.subarray(this.offset, end);
    this.offset = end;
    return chunk;
  }

  u8() {
    return this.take(1)[0];
  }

  u64() {
    return readU64(this.take(8), 0);
  }

  str8() {
    return fromUtf8(this.take(this.u8()));
  }

  str32() {
    return fromUtf8(this.take(readU32(this.take(4), 0)));
  }

  finish() {
    if (this.offset !== this.data.length) throw new RangeError('trailing bytes');
  }
}

// --- signatures (§3.8.2, §3.17.6)

/** `"lien-payload-v2\0" || payload`: what the Ed25519 signature covers. */
export function signingInput(payloadBytes) {
  return concat(SIGNATURE_DOMAIN, payloadBytes);
}

/** `"lien-group-payload-v1\0" || group_payload`: what a group payload's signature covers. */
export function groupSigningInput(payloadBytes) {
  return concat(GROUP_SIGNATURE_DOMAIN, payloadBytes);
}

/**
 * A payload (a {@link Payload} or a {@link GroupPayload}), its canonical bytes, and the
 * Ed25519 `signature` by `signer` (an Ed25519 public key) over them. Keep `encoded`,
 * `signature` and `signer` as proof: {@link verifyPayload} needs nothing else (§3.8.5, §3.17.6).
 */
export class SignedPayload {
  constructor(payload, encoded, signature, signer) {
    /** @readonly */ this.payload = payload;
    /** @readonly */ this.encoded = encoded;
    /** @readonly */ this.signature = signature;
    /** @readonly */ this.signer = signer;
    Object.freeze(this);
  }
}

/** @param {import('./keys.js').IdentityKeyPair} identity @param {Payload} payload */
export function signPayload(identity, payload) {
  const encoded = payload.encode();
  return new SignedPayload(payload, encoded, identity.sign(signingInput(encoded)), identity.public.signingKey);
}

/** Sign a group payload with the sender device's Ed25519 identity key (§3.17.6). */
export function signGroupPayload(identity, payload) {
  if (!(payload instanceof GroupPayload)) throw new TypeError('payload must be a GroupPayload');
  const encoded = payload.encode();
  return new SignedPayload(payload, encoded, identity.sign(groupSigningInput(encoded)), identity.public.signingKey);
}

function checkSignature(signingInputOf, payloadBytes, signature, signer) {
  if (!isBytes(signer, SIGNING_KEY_SIZE) || !isBytes(signature, SIGNATURE_SIZE)) throw new BadSignature();
  if (!isBytes(payloadBytes)) throw new MalformedPayload();
  if (!verifyEd25519(signer, signingInputOf(payloadBytes), signature)) throw new BadSignature();
}

/**
 * Check a kept payload offline (§3.8.5, §3.17.6): the signature by the Ed25519 key `signer`
 * under the domain byte 0 names (`BadSignature`), then the canonical encoding
 * (`MalformedPayload`). Returns the Payload or GroupPayload.
 */
export function verifyPayload(payloadBytes, signature, signer) {
  if (isBytes(payloadBytes) && payloadBytes[0] === GROUP_PAYLOAD_VERSION) {
    return verifyGroupPayload(payloadBytes, signature, signer);
  }
  return verifyPairwisePayload(payloadBytes, signature, signer);
}

/** {@link verifyPayload} for a pairwise payload only: what a session accepts (a group payload is refused). */
export function verifyPairwisePayload(payloadBytes, signature, signer) {
  checkSignature(signingInput, payloadBytes, signature, signer);
  return Payload.decode(payloadBytes);
}

/**
 * {@link verifyPayload} for a group payload only: what a group receiver accepts. A pairwise
 * payload's signature covers another domain, so it is `BadSignature` here, whatever its bytes.
 */
export function verifyGroupPayload(payloadBytes, signature, signer) {
  checkSignature(groupSigningInput, payloadBytes, signature, signer);
  return GroupPayload.decode(payloadBytes);
}

// --- plaintext framing (§3.8.3; the same for group payloads, §3.17.6)

/** `uint32 len || payload || signature || zero padding` to a multiple of 256 bytes. */
export function encodePlaintext(signed) {
  const framed = concat(u32(signed.encoded.length), signed.encoded, signed.signature);
  const padding = (PADDING_BLOCK - (framed.length % PADDING_BLOCK)) % PADDING_BLOCK;
  return concat(framed, new Uint8Array(padding));
}

/**
 * `[payloadBytes, signature]` of a plaintext; `MalformedPayload` unless the length is a
 * multiple of 256 and the padding is the fewest zero bytes needed.
 */
export function decodePlaintext(plaintext) {
  if (plaintext.length < 4 || plaintext.length % PADDING_BLOCK) throw new MalformedPayload();
  const size = readU32(plaintext, 0);
  const end = 4 + size + SIGNATURE_SIZE;
  if (end > plaintext.length) throw new MalformedPayload();
  if ((PADDING_BLOCK - (end % PADDING_BLOCK)) % PADDING_BLOCK !== plaintext.length - end) throw new MalformedPayload();
  if (plaintext.subarray(end).some((byte) => byte !== 0)) throw new MalformedPayload();
  return [plaintext.slice(4, 4 + size), plaintext.slice(4 + size, end)];
}

// --- transport checks (§3.8.4, §3.17.7)

/** Compare what was signed with what the server says; throw the first mismatch found. */
export function checkDelivery(payload, { deliveredBy, own, conversation }) {
  if (!payload.sender.equals(deliveredBy)) throw new SenderMismatch();
  if (!payload.recipient.equals(own)) throw new WrongRecipient();
  if (!payload.conversation.equals(conversation)) throw new ConversationMismatch();
}

/** The checks of §3.17.7 (step 8) on a verified group payload: sender device, then group. */
export function checkGroupDelivery(payload, { deliveredBy, conversation }) {
  if (!payload.sender.equals(deliveredBy)) throw new SenderMismatch();
  if (!payload.conversation.equals(conversation)) throw new ConversationMismatch();
}
