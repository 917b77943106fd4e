/**
 * Sender-key requests of `test/interop_cli.js` (docs/protocol-group.md §3.17), for
 * tests/test_crypto_js_group_interop.py: a JavaScript device creates, rotates and
 * distributes its sender key over its pairwise sessions, installs the keys other devices
 * distributed to it, and encrypts and decrypts group bodies.
 *
 * Kept outside `test/` because `node --test test/` runs every `.js` file under `test/`.
 */
import { fromBase64, toBase64 } from '../src/crypto/bytes.js';
import { SenderKey, SenderKeyReceiver, acceptDistribution, isDistribution } from '../src/crypto/group.js';
import { InvalidDistribution } from '../src/crypto/errors.js';
import { Conversation, DeviceAddress, GroupPayload } from '../src/crypto/payload.js';

/**
 * @typedef {object} PairwiseContext
 * @property {Map<string, any>} devices name -> {address, identity, …}
 * @property {Map<string, any>} sessions
 * @property {(name: string, peer: {user: string, device: string}) => string} sessionKey
 * @property {(name: string, from: object, senderIdentity: object, body: Uint8Array, conversation: Conversation) => any}
 *   openPairwise routes a body as §3.7.6 says and returns the SignedPayload
 */

const peerName = (address) => `${address.user}/${address.device}`;

/** @param {PairwiseContext} context @returns {Record<string, (request: any) => object>} */
export function groupOps({ devices, sessions, sessionKey, openPairwise }) {
  /** `${device name}|${group}` -> SenderKey; `${device name}|${group}|${sender}` -> SenderKeyReceiver */
  const senderKeys = new Map();
  const receivers = new Map();

  const keyOf = (name, group) => {
    const key = senderKeys.get(`${name}|${group}`);
    if (!key) throw new RangeError(`${name} has no sender key in ${group}`);
    return key;
  };

  return {
    group_key({ name, group }) {
      const me = devices.get(name);
      const key = SenderKey.create(group, me.address, me.identity.public);
      senderKeys.set(`${name}|${group}`, key);
      return { key_id: key.keyId };
    },
    group_rotate({ name, group }) {
      const key = keyOf(name, group).rotate();
      senderKeys.set(`${name}|${group}`, key);
      return { key_id: key.keyId };
    },
    /** The current distribution, pairwise encrypted to `recipient` (the session must exist). */
    group_distribute({ name, group, recipient, client_message_id: clientMessageId }) {
      const me = devices.get(name);
      const session = sessions.get(sessionKey(name, recipient));
      const carrier = keyOf(name, group).distributionPayload(
        new DeviceAddress(recipient.user, BigInt(recipient.device)), { clientMessageId, sentAtMs: 1_700_000_000_000n },
      );
      return { body: toBase64(session.encrypt(carrier, me.identity)) };
    },
    /** Open a pairwise body in the group's conversation and install the distribution it carries. */
    group_accept({ name, group, from, sender_identity: senderIdentity, body }) {
      const signed = openPairwise(name, from, senderIdentity, fromBase64(body), Conversation.group(group));
      if (!isDistribution(signed.payload)) throw new InvalidDistribution();
      const slot = `${name}|${group}|${peerName(from)}`;
      const session = sessions.get(sessionKey(name, from));
      const receiver = acceptDistribution(signed, {
        senderIdentity: session.peerIdentity, receiver: receivers.get(slot) ?? null,
      });
      receivers.set(slot, receiver);
      return { key_ids: receiver.keyIds };
    },
    group_encrypt({ name, group, client_message_id: clientMessageId, sent_at_ms: sentAtMs, text }) {
      const me = devices.get(name);
      const payload = new GroupPayload({
        sender: me.address, conversation: Conversation.group(group), clientMessageId, sentAtMs: BigInt(sentAtMs), text,
      });
      return { body: toBase64(keyOf(name, group).encrypt(payload, me.identity)) };
    },
    group_decrypt({ name, group, from, body }) {
      const receiver = receivers.get(`${name}|${group}|${peerName(from)}`);
      if (!receiver) return { ok: false, code: 'unknown-sender-key' };
      const signed = receiver.decrypt(fromBase64(body), {
        deliveredBy: new DeviceAddress(from.user, BigInt(from.device)), conversation: Conversation.group(group),
      });
      return {
        text: signed.payload.text,
        sender: { user: signed.payload.sender.user, device: String(signed.payload.sender.device) },
        group: signed.payload.groupId,
        payload_bytes: toBase64(signed.encoded),
        signature: toBase64(signed.signature),
        signer: toBase64(signed.signer),
      };
    },
    /** Store and restore every sender key and receiver of `name` in `group`, as the keystore would. */
    group_persist({ name, group }) {
      const roundTrip = (value) => JSON.parse(JSON.stringify(value));
      for (const [slot, key] of senderKeys) {
        if (slot === `${name}|${group}`) senderKeys.set(slot, SenderKey.fromDict(roundTrip(key.toDict())));
      }
      for (const [slot, receiver] of receivers) {
        if (slot.startsWith(`${name}|${group}|`)) receivers.set(slot, SenderKeyReceiver.fromDict(roundTrip(receiver.toDict())));
      }
      return {};
    },
  };
}
