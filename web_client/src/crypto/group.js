/**
 * Sender keys for care-team groups, the sender's side: the API the client calls
 * (docs/protocol-group.md §3.17; the same API as `lien/crypto/group.py`).
 *
 * Each device that writes in a group has a {@link SenderKey} for it: a random `keyId`, a
 * symmetric chain and an Ed25519 key pair of its own. It hands a distribution (§3.17.4) to
 * every member device over their pairwise sessions (`distributionPayload`), then encrypts
 * each group message once (`encrypt`): one body the server fans out to every member device.
 * When the membership changes it replaces the key (`rotate`) and distributes the new one to
 * the current member devices only (§3.17.9).
 *
 * The member devices' side (receivers, distributions) is in `group_receiver.js`; both are
 * re-exported here. Every operation is all-or-nothing; nothing here does I/O: store
 * `toDict()` in the encrypted keystore after every change.
 */
import { concat, readU32, toBase64 } from './bytes.js';
import { MessageTooLarge, SessionExhausted } from './errors.js';
import { END_OF_CHAIN, SenderSigningKey } from './group_chain.js';
import { senderKeyFromDict, senderKeyToDict } from './group_state.js';
import {
  DISTRIBUTION_CONTENT_TYPE, MAX_GROUP_BODY_BYTES, SenderKeyDistribution, checkGroupId, encodeGroupHeader,
  groupAssociatedData, groupBodySigningInput,
} from './group_wire.js';
import { IdentityKeyPair, PublicIdentity, SIGNATURE_SIZE } from './keys.js';
import {
  Conversation, DeviceAddress, GroupPayload, Payload, encodePlaintext, signGroupPayload,
} from './payload.js';
import { GROUP_MESSAGE_KEY_INFO, KEY_SIZE, aeadEncrypt, kdfCk, randomBytes } from './primitives.js';

export {
  DEFAULT_SENDER_KEY_LIMITS, SenderKeyLimits,
} from './group_chain.js';
export { DISTRIBUTION_CONTENT_TYPE, SenderKeyDistribution, groupBodyKeyId } from './group_wire.js';
export { SenderKeyReceiver, acceptDistribution, isDistribution } from './group_receiver.js';

const KEY_ID_SIZE = 4;

/** @typedef {import('./ratchet.js').RandomSource} RandomSource */
/** @typedef {import('./group_state.js').SenderKeyCore} SenderKeyCore */

/**
 * This device's sender key in one group (§3.17.2). Not built directly: use
 * {@link SenderKey.create}, `rotate` or `fromDict`. `toString` shows no key.
 */
export class SenderKey {
  #core;

  /** @param {SenderKeyCore} core */
  constructor(core) {
    this.#core = core;
  }

  /**
   * A fresh sender key for `groupId`: random key id, chain key and signing key pair.
   * `own` and `ownIdentity` are this device's address and public identity; `encrypt`
   * checks the payload and signer against them.
   * @param {string} groupId @param {DeviceAddress} own @param {PublicIdentity} ownIdentity
   */
  static create(groupId, own, ownIdentity) {
    return _createWithRandom(groupId, own, ownIdentity, randomBytes, null);
  }

  /**
   * A new sender key for the same group, with another key id (§3.17.9). Call it whenever the
   * group's member devices change, before the next message; distribute the result to the
   * current member devices only, and replace this key with it in the keystore.
   */
  rotate() {
    return this._rotateWithRandom(randomBytes);
  }

  /** {@link SenderKey#rotate} with an injected random source: for test-vector replay only. */
  _rotateWithRandom(randomSource) {
    const core = this.#core;
    return _createWithRandom(core.groupId, core.own, core.ownIdentity, randomSource, core.keyId);
  }

  get groupId() {
    return this.#core.groupId;
  }

  get own() {
    return this.#core.own;
  }

  get keyId() {
    return this.#core.keyId;
  }

  /** The iteration the next message will carry. */
  get iteration() {
    return this.#core.iteration;
  }

  get signingPublicKey() {
    return this.#core.signingKey.publicKey;
  }

  /**
   * The distribution of this key at its current iteration (§3.17.4): a member device given
   * it reads the messages sent from now on, not earlier ones. `SessionExhausted` once the
   * chain is used up (rotate instead).
   */
  distribution() {
    const core = this.#core;
    if (core.iteration >= END_OF_CHAIN) throw new SessionExhausted();
    return new SenderKeyDistribution({
      groupId: core.groupId, keyId: core.keyId, iteration: core.iteration, chainKey: core.chainKey,
      signingKey: core.signingKey.publicKey,
    });
  }

  /**
   * The pairwise payload that carries {@link SenderKey#distribution} to `recipient` (§3.17.4.3).
   * Encrypt it with the pairwise session to that device; the recipient passes what it
   * decrypts to `acceptDistribution`.
   * @param {DeviceAddress} recipient
   * @param {{clientMessageId: string, sentAtMs: bigint | number}} fields
   */
  distributionPayload(recipient, { clientMessageId, sentAtMs }) {
    return new Payload({
      sender: this.#core.own,
      recipient,
      conversation: Conversation.group(this.#core.groupId),
      clientMessageId,
      sentAtMs,
      text: toBase64(this.distribution().encode()),
      contentType: DISTRIBUTION_CONTENT_TYPE,
    });
  }

  /**
   * Sign `payload` with this device's identity key and encrypt it into one group body
   * (§3.17.5). `payload.sender` must be this device, its group this key's group, and `signer`
   * this device's identity (RangeError otherwise: a programming error). `SessionExhausted`
   * after 2^32 messages (rotate), `MessageTooLarge` over 65,536 bytes; the key is then unchanged.
   * @param {GroupPayload} payload @param {IdentityKeyPair} signer
   * @returns {Uint8Array}
   */
  encrypt(payload, signer) {
    const core = this.#core;
    if (!(payload instanceof GroupPayload)) throw new TypeError('payload must be a GroupPayload');
    if (!payload.sender.equals(core.own) || payload.groupId !== core.groupId) {
      throw new RangeError("the payload must come from this device and belong to this key's group");
    }
    if (!(signer instanceof IdentityKeyPair) || !signer.public.equals(core.ownIdentity)) {
      throw new RangeError("the payload must be signed by this device's identity key");
    }
    if (core.iteration >= END_OF_CHAIN) throw new SessionExhausted();
    const plaintext = encodePlaintext(signGroupPayload(signer, payload));
    const header = encodeGroupHeader(core.keyId, core.iteration);
    const [nextChainKey, messageKey] = kdfCk(core.chainKey);
    const ciphertext = aeadEncrypt(messageKey, plaintext, groupAssociatedData(core.groupId, header), GROUP_MESSAGE_KEY_INFO);
    if (header.length + ciphertext.length + SIGNATURE_SIZE > MAX_GROUP_BODY_BYTES) throw new MessageTooLarge();
    const signedPart = concat(header, ciphertext);
    const signature = core.signingKey.sign(groupBodySigningInput(core.groupId, signedPart));
    core.chainKey = nextChainKey;
    core.iteration += 1;
    return concat(signedPart, signature);
  }

  /** The whole state, signing seed included, JSON-safe: store it only in the encrypted keystore. */
  toDict() {
    return senderKeyToDict(this.#core);
  }

  /** Restore a sender key; `GroupStateCorrupt` if invalid. */
  static fromDict(data) {
    return new SenderKey(senderKeyFromDict(data));
  }

  toString() {
    const core = this.#core;
    return `SenderKey(groupId=${core.groupId}, keyId=${core.keyId}, iteration=${core.iteration})`;
  }

  toJSON() {
    return this.toString(); // never the state: use toDict() for the keystore
  }
}

/**
 * Make a sender key from `randomSource`, drawing in this order (§3.17.2): 4 bytes of key id
 * (again while it equals `avoidKeyId`), 32 bytes of chain key, 32 bytes of Ed25519 seed.
 * Exported for test-vector replay; everything else calls `SenderKey.create` or `rotate`.
 * @param {string} groupId @param {DeviceAddress} own @param {PublicIdentity} ownIdentity
 * @param {RandomSource} randomSource @param {number | null} avoidKeyId
 */
export function _createWithRandom(groupId, own, ownIdentity, randomSource, avoidKeyId) {
  checkGroupId(groupId);
  if (!(own instanceof DeviceAddress) || !(ownIdentity instanceof PublicIdentity)) {
    throw new TypeError('own is a DeviceAddress and ownIdentity a PublicIdentity');
  }
  const drawKeyId = () => readU32(randomSource(KEY_ID_SIZE), 0);
  let keyId = drawKeyId();
  while (keyId === avoidKeyId) keyId = drawKeyId();
  const chainKey = Uint8Array.from(randomSource(KEY_SIZE));
  const signingKey = new SenderSigningKey(randomSource(KEY_SIZE));
  return new SenderKey({ groupId, own, ownIdentity, keyId, iteration: 0, chainKey, signingKey });
}
