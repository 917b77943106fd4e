/**
 * A care-team group's conversation: each message with its writer's name, what happened to
 * the group as system lines, under one's own messages who has read them (from each member's
 * signed receipts), who is typing, and the composer — disabled once one is no longer a member.
 * Members whose devices changed are named, with their safety number a click away.
 */
import { describeGroupEvent } from '../group_events.js';
import { History } from '../history.js';
import { Composer } from './composer.js';
import { TYPING_SHOWN_MS, changeText, messageMeta, sendError } from './conversation.js';
import { clear, displayName, formatTime, h } from './dom.js';

const MEMBER_STATUS = Object.freeze({ read: 'lu', delivered: 'distribué', sent: 'pas encore distribué' });

export class GroupView {
  /**
   * @param {import('../client.js').Client} client
   * @param {string} groupId
   * @param {{back: () => void, members: (groupId: string) => void, openSafety: (user: string) => void}} actions
   */
  constructor(client, groupId, actions) {
    this.client = client;
    this.peer = groupId;
    this.actions = actions;
    /** @type {Map<string, ReturnType<typeof setTimeout>>} who is typing, until when */
    this.typists = new Map();
    /** Server ids of the messages whose per-member detail is open (kept across refreshes). */
    this.openReceipts = new Set();
    this.header = h('header', { class: 'conversation-header' });
    this.warning = h('div', { class: 'warning-area' });
    this.list = h('ol', { class: 'messages', role: 'log', 'aria-label': 'Messages du groupe', tabindex: '0' });
    this.typing = h('p', { class: 'typing', 'aria-live': 'polite' });
    this.composer = new Composer({
      label: `Message au groupe ${this.#name()}`,
      onSend: (text) => this.client.sendText(this.peer, text),
      onTyping: (active) => this.client.setTyping(this.peer, active),
    });
    this.element = h('section', { class: 'conversation group', 'aria-labelledby': 'conversation-title' },
      this.header, this.warning, this.list, this.typing, this.composer.element);
    this.refresh();
  }

  #name() {
    return this.client.groups.record(this.peer)?.name || 'Groupe de soins';
  }

  #nameOf(user) {
    return user === this.client.username ? 'Vous' : displayName(this.client, user);
  }

  refresh() {
    this.#renderHeader();
    this.#renderWarning();
    this.#renderMessages();
  }

  #renderHeader() {
    const record = this.client.groups.record(this.peer);
    const members = record?.members ?? [];
    const names = members.map((user) => this.#nameOf(user)).join(', ');
    clear(this.header).append(
      h('button', { type: 'button', class: 'icon back', 'aria-label': 'Retour aux conversations', onclick: () => this.actions.back() }, '←'),
      h('div', { class: 'who' },
        h('h2', { id: 'conversation-title' }, this.#name()),
        h('p', { class: 'sub', dataset: { members: String(members.length) } },
          members.length ? `${members.length} membre${members.length > 1 ? 's' : ''} : ${names}` : 'Groupe de soins')),
      h('button', { type: 'button', class: 'secondary', onclick: () => this.actions.members(this.peer) }, 'Membres'));
  }

  #renderWarning() {
    clear(this.warning);
    const record = this.client.groups.record(this.peer);
    const active = record === null || record.active;
    const changed = (record?.members ?? []).filter((user) => user !== this.client.username
      && this.client.directory.pendingChange(user));
    this.composer.disabled = !active || changed.length > 0;
    if (!active) {
      this.warning.append(h('p', { class: 'notice', role: 'status' },
        'Vous ne faites plus partie de ce groupe : vous n’en recevez plus les messages et ne pouvez plus y écrire.'));
      return;
    }
    for (const user of changed) {
      const name = displayName(this.client, user);
      this.warning.append(h('div', { class: 'identity-warning', role: 'alert' },
        h('p', {}, h('strong', {}, 'Attention : '),
          `les appareils de ${name} ont changé (${changeText(this.client.directory.pendingChange(user))}). `,
          'Avant d’écrire au groupe, comparez votre numéro de sécurité avec ce membre.'),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary', onclick: () => this.actions.openSafety(user) }, `Numéro de sécurité avec ${name}`),
          h('button', {
            type: 'button', class: 'primary', onclick: async () => {
              await this.client.acceptIdentity(user);
              this.refresh();
            },
          }, 'J’ai vérifié'))));
    }
  }

  #renderMessages() {
    const conversation = this.client.history.conversation(this.peer, { create: false });
    const messages = conversation ? conversation.messages : [];
    clear(this.list);
    if (!messages.length) {
      this.list.append(h('li', { class: 'empty' }, 'Aucun message pour l’instant. Chaque message est chiffré de bout en bout pour tous les membres.'));
      return;
    }
    for (const message of messages) this.list.append(message.system ? this.#systemLine(message) : this.#messageItem(message));
    this.list.scrollTop = this.list.scrollHeight;
  }

  #systemLine(message) {
    const text = describeGroupEvent(message.event, { me: this.client.username, nameOf: (user) => displayName(this.client, user) });
    return h('li', { class: 'system-line', dataset: { event: message.event.event, id: message.id } },
      h('p', {}, text, ' · ', h('time', { datetime: new Date(message.at).toISOString() }, formatTime(message.at))));
  }

  #messageItem(message) {
    const from = message.outgoing ? 'Vous' : displayName(this.client, message.from);
    return h('li', {
      class: `message ${message.outgoing ? 'outgoing' : 'incoming'}`,
      dataset: { status: message.status, id: message.id ?? '', clientId: message.clientId ?? '', from: message.from ?? '' },
    },
    message.outgoing ? h('span', { class: 'visually-hidden' }, 'Vous : ') : h('p', { class: 'sender' }, from),
    h('p', { class: 'text', dir: 'auto' }, message.text),
    messageMeta(message),
    message.outgoing && message.id ? this.#memberStatuses(message) : null,
    sendError(this.client, message));
  }

  /** "Lu par 1 sur 2", and the detail per member. */
  #memberStatuses(message) {
    const statuses = History.memberStatuses(message);
    if (!statuses.length) return null;
    const read = statuses.filter((each) => each.status === 'read').length;
    const delivered = statuses.filter((each) => each.status !== 'sent').length;
    const summary = read ? `Lu par ${read} sur ${statuses.length}` : `Distribué à ${delivered} sur ${statuses.length}`;
    return h('details', {
      class: 'receipts', open: this.openReceipts.has(message.id),
      ontoggle: (event) => {
        if (event.currentTarget.open) this.openReceipts.add(message.id);
        else this.openReceipts.delete(message.id);
      },
    },
    h('summary', {}, summary),
    h('ul', {}, statuses.map(({ user, status, at }) => h('li', { dataset: { user, status } },
      `${displayName(this.client, user)} : ${MEMBER_STATUS[status]}${at ? ` (${formatTime(at)})` : ''}`))));
  }

  /** `user` is (or stopped) typing in the group. */
  showTyping(active, user) {
    if (!user || user === this.client.username) return;
    clearTimeout(this.typists.get(user));
    if (active) this.typists.set(user, setTimeout(() => this.showTyping(false, user), TYPING_SHOWN_MS));
    else this.typists.delete(user);
    const names = [...this.typists.keys()].map((each) => displayName(this.client, each));
    this.typing.textContent = !names.length ? ''
      : names.length === 1 ? `${names[0]} écrit…` : `${names.slice(0, -1).join(', ')} et ${names.at(-1)} écrivent…`;
  }

  focus() {
    this.composer.focus();
  }

  destroy() {
    this.composer.destroy();
    for (const timer of this.typists.values()) clearTimeout(timer);
  }
}
