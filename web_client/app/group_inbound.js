/**
 * Opening a group message (`_open_group_message` of `lien/sdk/receiving.py`;
 * docs/protocol-group.md §3.17.4.3, §3.17.7). A group `message` frame carries:
 *
 * - `key`, when this device lacked the sender's current key: a pairwise body, opened in the
 *   group's conversation, whose payload must be a distribution; it is installed (only from
 *   a current member's device) before the body is opened;
 * - `body`: the one group body (format 0x03), opened with the sender device's receiver; or,
 *   after a repair (`resend`), a pairwise body (format 0x02) for this device alone.
 *
 * Throws a CryptoError (the caller answers `decrypt-failed`, so the sender repairs) and
 * returns null for a repaired copy that only carried a key. No I/O.
 */
import { InvalidDistribution, UnknownSenderKey } from '../src/crypto/errors.js';
import { isDistribution } from '../src/crypto/group.js';
import { Conversation } from '../src/crypto/payload.js';
import { FORMAT_VERSION } from '../src/crypto/wire.js';
import * as e2e from './e2e.js';

/**
 * @param {{keystore: import('./keystore.js').Keystore, groups: import('./groups.js').GroupBook,
 *   own: import('../src/crypto/payload.js').DeviceAddress}} parts
 * @param {{groupId: string, sender: import('../src/crypto/payload.js').DeviceAddress,
 *   identity: import('../src/crypto/keys.js').PublicIdentity, body: Uint8Array, key: Uint8Array | null}} message
 * @returns {import('../src/crypto/payload.js').SignedPayload | null}
 */
export function openGroupMessage({ keystore, groups, own }, { groupId, sender, identity, body, key }) {
  const conversation = Conversation.group(groupId);
  const pairwise = (bytes) => e2e.decrypt(keystore, own, bytes, { deliveredBy: sender, senderIdentity: identity, conversation });
  if (key !== null) {
    const carried = pairwise(key);
    if (!isDistribution(carried.payload)) throw new InvalidDistribution();
    if (groups.mayDistribute(groupId, sender.user)) groups.install(groupId, sender, carried, identity);
  }
  if (body[0] === FORMAT_VERSION) {
    const repaired = pairwise(body);
    if (!isDistribution(repaired.payload)) return repaired;
    if (groups.mayDistribute(groupId, sender.user)) groups.install(groupId, sender, repaired, identity);
    return null;
  }
  const receiver = groups.receiver(groupId, sender);
  if (receiver === null) throw new UnknownSenderKey();
  const opened = receiver.decrypt(body, { deliveredBy: sender, conversation });
  groups.storeReceiver(groupId, sender, receiver);
  return opened;
}
