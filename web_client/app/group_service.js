/**
 * Care-team groups for the screens: create, rename, add and remove members, change roles,
 * leave (docs/protocol.md §4.6, the `/v1/groups` routes), keep the local records in step
 * with the server, and follow `group_event` entries from the inbox (system lines in the
 * conversation, rotations, profiles of new members). The rules of what a record holds are in
 * app/groups.js; sending is in app/group_send.js, opening in app/group_inbound.js.
 *
 * Every change answers the group as it is after it (`GroupInfo`), which the book learns
 * at once; the keystore is saved after each.
 */
import { LienError, NETWORK_ERROR } from './errors.js';

export class GroupService {
  /**
   * @param {{api: import('./api.js').Api, keystore: import('./keystore.js').Keystore,
   *   groups: import('./groups.js').GroupBook, history: import('./history.js').History,
   *   directory: import('./directory.js').Directory, username: string,
   *   emit: (type: string, detail: object) => void, fetchProfile: (username: string) => Promise<void>}} parts
   */
  constructor({ api, keystore, groups, history, directory, username, emit, fetchProfile }) {
    this.api = api;
    this.keystore = keystore;
    this.book = groups;
    this.history = history;
    this.directory = directory;
    this.username = username;
    this.emit = emit;
    this.fetchProfile = fetchProfile;
  }

  /** The local record of a group (`GroupRecord`), or null. */
  record(groupId) {
    return this.book.record(groupId);
  }

  /** This user's role in the group, or null. */
  myRole(groupId) {
    return this.book.roleOf(groupId, this.username);
  }

  async #learn(info) {
    this.book.learn(info);
    this.history.conversation(info.id); // the group shows in the list even before its first message
    await this.keystore.save();
    this.emit('group', { group: info.id });
    this.emit('conversation', { peer: info.id });
    for (const member of info.members) this.fetchProfile(member.user).catch(() => {});
    return info;
  }

  /**
   * Create a care-team group with this user as its owner (members: usernames).
   * @returns {Promise<string>} the group id
   */
  async create(name, members) {
    const info = await this.api.createGroup(name, members);
    await this.#learn(info);
    return info.id;
  }

  /** @param {'admin' | 'member'} role only the owner adds admins */
  async addMember(groupId, user, role = 'member') {
    return this.#learn(await this.api.addMember(groupId, user, role));
  }

  /** Remove `user`: this device's next message uses a new sender key they never get. */
  async removeMember(groupId, user) {
    return this.#learn(await this.api.removeMember(groupId, user));
  }

  /** @param {'owner' | 'admin' | 'member'} role owner only; `owner` hands the ownership over */
  async changeRole(groupId, user, role) {
    return this.#learn(await this.api.changeRole(groupId, user, role));
  }

  async rename(groupId, name) {
    return this.#learn(await this.api.renameGroup(groupId, name));
  }

  async leave(groupId) {
    await this.api.leaveGroup(groupId);
    this.book.markInactive(groupId);
    await this.keystore.save();
    this.emit('group', { group: groupId });
    this.emit('conversation', { peer: groupId });
  }

  /** The group as the server has it now; `not-a-member` marks it left here. */
  async refresh(groupId) {
    try {
      return await this.#learn(await this.api.group(groupId));
    } catch (error) {
      if (error instanceof LienError && (error.code === 'not-a-member' || error.code === 'unknown-group')) {
        this.book.markInactive(groupId);
        await this.keystore.save();
        this.emit('group', { group: groupId });
      }
      throw error;
    }
  }

  /** Learn every group this user belongs to (at start-up: groups joined on another device show too). */
  async syncAll() {
    const listing = await this.api.groups();
    for (const info of listing.groups) await this.#learn(info);
  }

  /**
   * A `group_event` from the inbox: update the record (rotation after a departure or a device
   * change), add the system line, and fetch what the screens need. Saved before its ack.
   */
  onEvent(event) {
    const record = this.book.applyEvent(event);
    this.history.addSystem(event.group, {
      id: `event:${event.group}:${event.epoch}`,
      at: event.at,
      event: {
        event: event.event, actor: event.actor, subject: event.subject ?? null, name: event.name ?? null,
        role: event.role ?? null,
      },
    });
    if (event.event === 'devices-changed' && event.subject) {
      this.directory.devices(event.subject, { refresh: true }).catch(() => {});
    }
    for (const user of [event.actor, event.subject]) if (user) this.fetchProfile(user).catch(() => {});
    if (record.active && !record.synced) {
      this.refresh(event.group).catch((error) => {
        if (!(error instanceof LienError) || error.code !== NETWORK_ERROR) console.warn('lien: group refresh failed', error?.code);
      });
    }
    this.emit('group', { group: event.group });
    this.emit('conversation', { peer: event.group });
  }
}
