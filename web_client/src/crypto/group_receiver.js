/**
 * A member device's side of sender keys: receivers and distributions
 * (docs/protocol-group.md §3.17.4, §3.17.7; `lien/crypto/group_receiver.py`).
 *
 * Each member device keeps a {@link SenderKeyReceiver} per (group, sender device): the
 * sender keys that device distributed to it (at most two: the current one and the previous
 * one), each a forward-only chain. It installs distributions that came in pairwise messages
 * ({@link acceptDistribution}) and opens group bodies (`decrypt`), all-or-nothing.
 */
import { equalBytes, fromBase64 } from './bytes.js';
import {
  ConversationMismatch, DecryptionFailed, IdentityMismatch, InvalidDistribution, SenderMismatch, UnknownSenderKey,
} from './errors.js';
import { DEFAULT_SENDER_KEY_LIMITS, MAX_RECEIVED_KEYS, ReceiverChain } from './group_chain.js';
import { receiverFromDict, receiverToDict } from './group_state.js';
import {
  DISTRIBUTION_CONTENT_TYPE, SenderKeyDistribution, checkGroupId, groupAssociatedData, groupBodySigningInput,
  parseGroupBody,
} from './group_wire.js';
import { PublicIdentity } from './keys.js';
import {
  Conversation, ConversationKind, DeviceAddress, SignedPayload, checkGroupDelivery, decodePlaintext, verifyGroupPayload,
} from './payload.js';
import { GROUP_MESSAGE_KEY_INFO, aeadDecrypt } from './primitives.js';

/** @typedef {import('./group_chain.js').SenderKeyLimits} SenderKeyLimits */
/** @typedef {import('./group_state.js').ReceiverCore} ReceiverCore */

/**
 * What this device holds of one other device's sender keys in one group (§3.17.7): at most
 * two, the most recently installed last. Built by {@link acceptDistribution} (or `create`
 * then `install`) or `fromDict`. `toString` shows no key.
 */
export class SenderKeyReceiver {
  #core;
  #limits;

  /** @param {ReceiverCore} core @param {SenderKeyLimits} limits */
  constructor(core, limits) {
    this.#core = core;
    this.#limits = limits;
  }

  /**
   * An empty receiver of `sender`'s keys in `groupId`; `senderIdentity` signs its payloads.
   * @param {string} groupId @param {DeviceAddress} sender @param {PublicIdentity} senderIdentity
   * @param {{limits?: SenderKeyLimits}} [options]
   */
  static create(groupId, sender, senderIdentity, { limits = DEFAULT_SENDER_KEY_LIMITS } = {}) {
    checkGroupId(groupId);
    if (!(sender instanceof DeviceAddress) || !(senderIdentity instanceof PublicIdentity)) {
      throw new TypeError('sender is a DeviceAddress and senderIdentity a PublicIdentity');
    }
    return new SenderKeyReceiver({ groupId, sender, senderIdentity, chains: [] }, limits);
  }

  get groupId() {
    return this.#core.groupId;
  }

  get sender() {
    return this.#core.sender;
  }

  get senderIdentity() {
    return this.#core.senderIdentity;
  }

  /** The key id of each sender key held, oldest first (the last is the current one). */
  get keyIds() {
    return this.#core.chains.map((chain) => chain.keyId);
  }

  /**
   * Add a sender key from its distribution (§3.17.4.4): true if added, false if already held.
   * A key id already held with the same signing key changes nothing (a repeated distribution
   * must not rewind the chain); a new one becomes the current key and, beyond two, the oldest
   * goes. `InvalidDistribution` for bytes that do not parse, another group's distribution, or a
   * held key id with another signing key; the receiver is then unchanged.
   * @param {Uint8Array | SenderKeyDistribution} distribution
   */
  install(distribution) {
    const parsed = distribution instanceof SenderKeyDistribution ? distribution : SenderKeyDistribution.decode(distribution);
    const core = this.#core;
    if (parsed.groupId !== core.groupId) throw new InvalidDistribution();
    const held = core.chains.find((chain) => chain.keyId === parsed.keyId);
    if (held) {
      if (!equalBytes(held.signingKey, parsed.signingKey)) throw new InvalidDistribution();
      return false;
    }
    const chain = new ReceiverChain({
      keyId: parsed.keyId, signingKey: parsed.signingKey, iteration: parsed.iteration, chainKey: parsed.chainKey,
    });
    core.chains = [...core.chains, chain].slice(-MAX_RECEIVED_KEYS);
    return true;
  }

  /** Delete every sender key but the current one (once in-flight messages had time to arrive). */
  forgetPrevious() {
    this.#core.chains = this.#core.chains.slice(-1);
  }

  /**
   * Open a group body from this receiver's sender device and verify it (§3.17.7).
   * `deliveredBy` is the device the server says sent it; `conversation` the group the
   * envelope came in. Throws a CryptoError, leaving the receiver unchanged, when anything is
   * wrong: `unknown-sender-key` for a key id not held (ask the sender for its current
   * distribution), `replayed-message`, `too-many-skipped`, `decryption-failed`,
   * `bad-signature`, `malformed-payload`, `sender-mismatch`, `conversation-mismatch`.
   * @param {Uint8Array} body
   * @param {{deliveredBy: DeviceAddress, conversation: Conversation}} context
   * @returns {SignedPayload} the group payload, its bytes, the identity signature and signer: the proof to keep
   */
  decrypt(body, { deliveredBy, conversation }) {
    const core = this.#core;
    if (!(deliveredBy instanceof DeviceAddress) || !(conversation instanceof Conversation)) {
      throw new TypeError('deliveredBy is a DeviceAddress and conversation a Conversation');
    }
    if (!deliveredBy.equals(core.sender)) throw new SenderMismatch();
    if (!conversation.equals(Conversation.group(core.groupId))) throw new ConversationMismatch();
    const parsed = parseGroupBody(body);
    const index = core.chains.findIndex((chain) => chain.keyId === parsed.keyId);
    if (index < 0) throw new UnknownSenderKey();
    const chain = core.chains[index];
    if (!chain.verify(groupBodySigningInput(core.groupId, parsed.signedPart), parsed.signature)) {
      throw new DecryptionFailed(); // altered, or not made with this sender key
    }
    const working = chain.copy();
    const messageKey = working.messageKeyFor(parsed.iteration, this.#limits);
    const plaintext = aeadDecrypt(messageKey, parsed.ciphertext, groupAssociatedData(core.groupId, parsed.header),
      GROUP_MESSAGE_KEY_INFO);
    const [payloadBytes, signature] = decodePlaintext(plaintext);
    const signer = core.senderIdentity.signingKey;
    const payload = verifyGroupPayload(payloadBytes, signature, signer);
    checkGroupDelivery(payload, { deliveredBy, conversation });
    core.chains[index] = working;
    return new SignedPayload(payload, payloadBytes, signature, signer);
  }

  /** The whole state, chain and skipped keys included, JSON-safe: store it only in the encrypted keystore. */
  toDict() {
    return receiverToDict(this.#core);
  }

  /** Restore a receiver; `GroupStateCorrupt` if invalid. */
  static fromDict(data, { limits = DEFAULT_SENDER_KEY_LIMITS } = {}) {
    return new SenderKeyReceiver(receiverFromDict(data, limits), limits);
  }

  toString() {
    const core = this.#core;
    return `SenderKeyReceiver(groupId=${core.groupId}, sender=${core.sender}, keyIds=${this.keyIds})`;
  }

  toJSON() {
    return this.toString();
  }
}

// --- distributions over pairwise sessions (§3.17.4.3)

/** Whether a decrypted pairwise payload carries a sender-key distribution. */
export function isDistribution(payload) {
  return payload.contentType === DISTRIBUTION_CONTENT_TYPE;
}

/**
 * Install the distribution a pairwise message carried; returns the receiver to store (§3.17.4.3).
 * `received` is what the pairwise session's `decrypt` returned; `senderIdentity` the identity
 * the server lists for its sender device; `receiver` what this device holds for that device
 * in that group, or null. `InvalidDistribution` or `IdentityMismatch`, changing nothing; a
 * receiver of another group or device is a RangeError. `receiver` itself is never changed.
 * @param {SignedPayload} received
 * @param {{senderIdentity: PublicIdentity, receiver: SenderKeyReceiver | null, limits?: SenderKeyLimits}} options
 * @returns {SenderKeyReceiver}
 */
export function acceptDistribution(received, { senderIdentity, receiver, limits = DEFAULT_SENDER_KEY_LIMITS }) {
  const payload = received.payload;
  if (!isDistribution(payload)) throw new RangeError('not a sender-key distribution: check isDistribution() first');
  if (!equalBytes(received.signer, senderIdentity.signingKey)) throw new IdentityMismatch();
  let data;
  try {
    data = fromBase64(payload.text);
  } catch {
    throw new InvalidDistribution();
  }
  const distribution = SenderKeyDistribution.decode(data);
  if (payload.conversation.kind !== ConversationKind.GROUP || payload.conversation.id !== distribution.groupId) {
    throw new InvalidDistribution();
  }
  let updated;
  if (receiver === null || receiver === undefined) {
    updated = SenderKeyReceiver.create(distribution.groupId, payload.sender, senderIdentity, { limits });
  } else {
    if (receiver.groupId !== distribution.groupId || !receiver.sender.equals(payload.sender)) {
      throw new RangeError('this receiver belongs to another group or sender device');
    }
    if (!receiver.senderIdentity.equals(senderIdentity)) throw new IdentityMismatch();
    updated = SenderKeyReceiver.fromDict(receiver.toDict(), { limits });
  }
  updated.install(distribution);
  return updated;
}
