/**
 * Helpers shared by the tests: the JSON test vectors of docs/protocol-crypto.md §3.11
 * (read from `../tests/vectors/` relative to `web_client/`) and what to build from them.
 *
 * Kept outside `test/` because `node --test test/` runs every `.js` file under `test/`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { fromHex } from '../src/crypto/bytes.js';
import { CryptoError } from '../src/crypto/errors.js';
import { IdentityKeyPair } from '../src/crypto/keys.js';
import { Conversation, ConversationKind, DeviceAddress, Payload } from '../src/crypto/payload.js';

/** The parsed `tests/vectors/<name>`; checks its `format`. */
export function loadVectors(name) {
  const data = JSON.parse(readFileSync(new URL(`../../tests/vectors/${name}`, import.meta.url), 'utf8'));
  assert.equal(data.format, 1);
  return data;
}

export const h = fromHex;

/** The `code` of the CryptoError `action` throws, or null when it returns. */
export function errorCode(action) {
  try {
    action();
  } catch (error) {
    if (error instanceof CryptoError) return error.code;
    throw error;
  }
  return null;
}

/** An identity from `{signing_seed, exchange_private, signing_key, exchange_key}` (public keys checked). */
export function identityFrom(data) {
  const identity = IdentityKeyPair.fromSecretBytes(h(data.signing_seed), h(data.exchange_private));
  assert.equal(Buffer.from(identity.public.signingKey).toString('hex'), data.signing_key);
  assert.equal(Buffer.from(identity.public.exchangeKey).toString('hex'), data.exchange_key);
  return identity;
}

/** A device address from `{user, device}` (device id a decimal string). */
export function addressFrom(data) {
  return new DeviceAddress(data.user, BigInt(data.device));
}

/** A Payload from the vectors' JSON fields (64-bit integers as decimal strings). */
export function payloadFrom(data) {
  return new Payload({
    sender: addressFrom(data.sender),
    recipient: addressFrom(data.recipient),
    conversation: new Conversation(ConversationKind[data.conversation.kind.toUpperCase()], data.conversation.id),
    clientMessageId: data.client_message_id,
    sentAtMs: BigInt(data.sent_at_ms),
    text: data.text,
    contentType: data.content_type,
  });
}

/** Lowercase hex of bytes. */
export function hex(bytes) {
  return Buffer.from(bytes).toString('hex');
}
