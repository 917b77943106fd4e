/**
 * What this device knows and holds for its care-team groups (docs/protocol.md §7.7; the rules
 * of `lien/sdk/groups.py`). No I/O: the client fetches group information and device lists
 * and hands in the events it receives. Kept in the keystore:
 *
 * - the group record: name, epoch, members and their roles, whether this user is still a
 *   member, whether the sender key must rotate, which member devices already hold this
 *   device's current sender key, whether the member list came from the server (`synced`);
 * - this device's `SenderKey` per group;
 * - a `SenderKeyReceiver` per (group, member device).
 *
 * Rotation rule (docs/protocol-group.md §3.17.9): whenever a member joins, leaves or is
 * removed, or a member's devices change, the sender key is replaced before the next message
 * and given to the current member devices only, so nothing a departed member (or a removed
 * device) holds opens a later message, and a newcomer gets no key that opened an earlier
 * one. Receivers of departed members are deleted.
 */
import { GroupStateCorrupt } from '../src/crypto/errors.js';
import { SenderKey, SenderKeyReceiver, acceptDistribution } from '../src/crypto/group.js';

/** Events after which the member is gone. */
export const LEAVING_EVENTS = new Set(['member-removed', 'member-left']);

/** Roles, most powerful first (`lien.protocol.api.Role`). */
export const ROLES = Object.freeze(['owner', 'admin', 'member']);

/**
 * @typedef {object} GroupRecord
 * @property {string} name
 * @property {number} epoch the membership epoch a group message names
 * @property {string[]} members usernames, sorted
 * @property {Record<string, string>} roles username -> `owner`, `admin` or `member`
 * @property {boolean} active false once this user left or was removed
 * @property {boolean} rotate the sender key must be replaced before the next message
 * @property {string[]} distributed `user/device` of the member devices holding this device's current key
 * @property {boolean} synced the member list came from the server (events alone do not list the first members)
 */

/** `user/device`, the name of a device in the records. */
export function deviceName(peer) {
  return `${peer.user}/${peer.device}`;
}

function emptyRecord(name = '') {
  return { name, epoch: 0, members: [], roles: {}, active: true, rotate: false, distributed: [], synced: false };
}

export class GroupBook {
  /**
   * @param {import('./keystore.js').Keystore} keystore
   * @param {import('../src/crypto/payload.js').DeviceAddress} own
   * @param {import('../src/crypto/keys.js').PublicIdentity} ownIdentity
   */
  constructor(keystore, own, ownIdentity) {
    this.keystore = keystore;
    this.own = own;
    this.ownIdentity = ownIdentity;
  }

  /** @returns {GroupRecord | null} */
  record(groupId) {
    const stored = this.keystore.group(groupId);
    return stored ? { ...emptyRecord(), ...stored } : null;
  }

  #store(groupId, record) {
    this.keystore.setGroup(groupId, record);
    return record;
  }

  /** The user's role in the group, or null. */
  roleOf(groupId, user) {
    return this.record(groupId)?.roles[user] ?? null;
  }

  /** Take the server's view of a group (`GroupInfo`); a member who joined or left since last time means a rotation. */
  learn(info) {
    const members = info.members.map((member) => member.user).sort();
    const record = this.record(info.id) ?? emptyRecord(info.name);
    const gone = record.members.filter((user) => !members.includes(user));
    const joined = members.filter((user) => !record.members.includes(user));
    if (gone.length || (record.members.length && joined.length)) record.rotate = true;
    for (const user of gone) this.dropReceivers(info.id, user);
    record.name = info.name;
    record.epoch = info.epoch;
    record.members = members;
    record.roles = Object.fromEntries(info.members.map((member) => [member.user, member.role]));
    record.active = members.includes(this.own.user);
    record.synced = true;
    return this.#store(info.id, record);
  }

  /**
   * Follow a membership event from the inbox (`group_event`), in epoch order. An event at
   * or below the epoch already known changes nothing (a fresher group info came first),
   * except that a device change still asks for a rotation (the member list cannot show it).
   */
  applyEvent(event) {
    const record = this.record(event.group) ?? emptyRecord(event.name ?? '');
    if (event.epoch <= record.epoch && event.event !== 'created') {
      // A fresher group info came first. It cannot show a device change: rotate all the same.
      if (event.event === 'devices-changed') record.rotate = true;
      return this.#store(event.group, record);
    }
    record.epoch = Math.max(record.epoch, event.epoch);
    const subject = event.subject ?? null;
    if ((event.event === 'created' || event.event === 'renamed') && event.name != null) record.name = event.name;
    if (event.event === 'created' && !record.members.includes(event.actor)) {
      record.members = [...record.members, event.actor].sort();
      record.roles[event.actor] = 'owner';
    }
    if (event.event === 'member-added' && subject !== null) {
      if (!record.members.includes(subject)) {
        record.members = [...record.members, subject].sort();
        record.rotate = true;
      }
      record.roles[subject] = event.role ?? 'member';
      if (subject === this.own.user) {
        record.active = true;
        record.synced = false; // (re)joined: the other members are not in the events this device got
      }
    }
    if (event.event === 'role-changed' && subject !== null && event.role) record.roles[subject] = event.role;
    if (LEAVING_EVENTS.has(event.event) && subject !== null) {
      record.members = record.members.filter((user) => user !== subject);
      delete record.roles[subject];
      record.rotate = true;
      if (subject === this.own.user) {
        record.active = false;
        this.forgetKeys(event.group);
      } else {
        this.dropReceivers(event.group, subject);
      }
    }
    if (event.event === 'devices-changed') record.rotate = true;
    return this.#store(event.group, record);
  }

  /** This user left or was removed: nothing more to read or send, so no key is kept. */
  markInactive(groupId) {
    const record = this.record(groupId);
    if (!record) return;
    record.active = false;
    this.#store(groupId, record);
    this.forgetKeys(groupId);
  }

  // --- this device's sender key

  /** The key to encrypt with now: created on first use, rotated when the record asks for it. */
  senderKey(groupId) {
    const record = this.record(groupId);
    const stored = this.keystore.senderKey(groupId);
    let key = null;
    if (stored !== null) {
      try {
        key = SenderKey.fromDict(stored);
      } catch (error) {
        if (!(error instanceof GroupStateCorrupt)) throw error;
      }
    }
    if (key === null) {
      key = SenderKey.create(groupId, this.own, this.ownIdentity);
      this.#resetDistribution(groupId);
    } else if (record?.rotate) {
      key = key.rotate();
      this.#resetDistribution(groupId);
    }
    this.storeSenderKey(key);
    return key;
  }

  storeSenderKey(key) {
    this.keystore.setSenderKey(key.groupId, key.toDict());
  }

  #resetDistribution(groupId) {
    const record = this.record(groupId);
    if (!record) return;
    record.rotate = false;
    record.distributed = [];
    this.#store(groupId, record);
  }

  /** The member devices among `targets` that do not hold this device's current key yet. */
  lackingKey(groupId, targets) {
    const holding = new Set(this.record(groupId)?.distributed ?? []);
    return targets.filter((peer) => !holding.has(deviceName(peer)));
  }

  /** @param {string[]} names `user/device` of the devices given the key (the send was accepted) */
  markDistributed(groupId, names) {
    const record = this.record(groupId);
    if (!record) return;
    record.distributed = [...new Set([...record.distributed, ...names])].sort();
    this.#store(groupId, record);
  }

  /** `peer` could not read with our key: give it the key again with the next message. */
  forgetDistributionTo(groupId, peer) {
    const record = this.record(groupId);
    if (!record) return;
    record.distributed = record.distributed.filter((name) => name !== deviceName(peer));
    this.#store(groupId, record);
  }

  // --- member devices' sender keys

  #receiverName(groupId, sender) {
    return `${groupId}/${deviceName(sender)}`;
  }

  /** What this device holds of `sender`'s keys in the group, or null. */
  receiver(groupId, sender) {
    const stored = this.keystore.senderKeyReceiver(this.#receiverName(groupId, sender));
    if (stored === null) return null;
    try {
      return SenderKeyReceiver.fromDict(stored);
    } catch (error) {
      if (!(error instanceof GroupStateCorrupt)) throw error;
      return null;
    }
  }

  storeReceiver(groupId, sender, receiver) {
    this.keystore.setSenderKeyReceiver(this.#receiverName(groupId, sender), receiver.toDict());
  }

  /** Whether a distribution from `user` may be installed: only current members' devices give keys. */
  mayDistribute(groupId, user) {
    const record = this.record(groupId);
    return record !== null && record.active && (!record.synced || record.members.includes(user));
  }

  /** Install a distribution that came over the pairwise session with `sender` (§3.17.4.3). */
  install(groupId, sender, received, senderIdentity) {
    const updated = acceptDistribution(received, { senderIdentity, receiver: this.receiver(groupId, sender) });
    this.storeReceiver(groupId, sender, updated);
  }

  /** Delete what this device holds of `user`'s keys in the group (the member left, §3.17.9). */
  dropReceivers(groupId, user) {
    const prefix = `${groupId}/${user}/`;
    for (const name of Object.keys(this.keystore.data.sender_key_receivers)) {
      if (name.startsWith(prefix)) this.keystore.setSenderKeyReceiver(name, null);
    }
  }

  /** Delete this device's sender key and every receiver of the group. */
  forgetKeys(groupId) {
    this.keystore.setSenderKey(groupId, null);
    for (const name of Object.keys(this.keystore.data.sender_key_receivers)) {
      if (name.startsWith(`${groupId}/`)) this.keystore.setSenderKeyReceiver(name, null);
    }
  }
}
