/**
 * Building one group message (docs/protocol-group.md §3.17; `_build_group_send` of
 * `lien/sdk/client.py`): one body for every member device, and this device's sender key,
 * pairwise encrypted, for the member devices that lack it.
 *
 * 1. The group's members come from the server when this device does not know them yet
 *    (`synced`), or after a `stale-membership` / `devices-mismatch` refusal (`refresh`).
 * 2. Every device of every member but this one is a target; a member whose devices changed
 *    without the user's consent stops the send (`identity-not-accepted`).
 * 3. The sender key is created on first use, rotated when someone left or devices changed.
 * 4. The targets lacking the current key get a copy in `keys` (sessions opened as needed).
 * The caller saves the keystore before the frame leaves: a chain key is never used twice.
 */
import { toBase64 } from '../src/crypto/bytes.js';
import { Conversation, DeviceAddress, GroupPayload } from '../src/crypto/payload.js';
import * as e2e from './e2e.js';
import { LienError } from './errors.js';
import { deviceName } from './groups.js';
import { groupSendFrame } from './protocol.js';

/**
 * @typedef {object} GroupSendParts
 * @property {import('./keystore.js').Keystore} keystore
 * @property {import('./groups.js').GroupBook} groups
 * @property {import('./directory.js').Directory} directory
 * @property {import('./api.js').Api} api
 * @property {DeviceAddress} own
 * @property {(targets: DeviceAddress[]) => Promise<void>} openMissingSessions
 */

/**
 * @typedef {object} BuiltGroupSend
 * @property {object} frame the `group_send` frame
 * @property {string[]} given `user/device` of the devices given the key with it (mark them once accepted)
 * @property {string[]} audience the other members it goes to
 */

/**
 * @param {GroupSendParts} parts
 * @param {{clientId: string, groupId: string, text: string, sentAt: number, refresh: boolean}} message
 * @returns {Promise<BuiltGroupSend>}
 */
export async function buildGroupSend(parts, { clientId, groupId, text, sentAt, refresh }) {
  const { keystore, groups, directory, api, own } = parts;
  const known = groups.record(groupId);
  if (refresh || known === null || !known.synced) groups.learn(await api.group(groupId));
  const record = groups.record(groupId);
  if (record === null || !record.active) throw new LienError('not-a-member');
  const targets = [];
  for (const member of record.members) {
    const devices = await directory.devices(member, { refresh });
    if (member !== own.user) directory.checkAccepted(member);
    for (const [device, identity] of [...devices].sort(([a], [b]) => a - b)) {
      const peer = new DeviceAddress(member, device);
      if (peer.equals(own)) continue;
      const session = e2e.loadSession(keystore, peer);
      if (session !== null && !session.peerIdentity.equals(identity)) e2e.dropSession(keystore, peer);
      targets.push(peer);
    }
  }
  const key = groups.senderKey(groupId);
  const lacking = groups.lackingKey(groupId, targets);
  await parts.openMissingSessions(lacking);
  const keys = [];
  const given = [];
  for (const peer of lacking) {
    if (!e2e.hasSession(keystore, peer)) continue; // no bundle: the server says the device is gone, or it asks for a repair
    const carrier = key.distributionPayload(peer, { clientMessageId: clientId, sentAtMs: sentAt });
    keys.push({ device: Number(peer.device), body: toBase64(e2e.encrypt(keystore, carrier)) });
    given.push(deviceName(peer));
  }
  const payload = new GroupPayload({
    sender: own, conversation: Conversation.group(groupId), clientMessageId: clientId, sentAtMs: sentAt, text,
  });
  const body = key.encrypt(payload, keystore.identity);
  groups.storeSenderKey(key);
  return {
    frame: groupSendFrame(clientId, groupId, record.epoch, toBase64(body), keys),
    given,
    audience: record.members.filter((user) => user !== own.user),
  };
}
