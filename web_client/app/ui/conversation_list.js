/**
 * One entry of the conversation list: a colleague (presence dot, device-change mark) or a
 * care-team group (its name, who wrote last), with the last message, its time and the
 * unread count.
 */
import { describeGroupEvent } from '../group_events.js';
import { describe, displayName, formatTime, h } from './dom.js';

/** The list's text for a message: "Vous : …", "Dr Martin : …" in a group, a system line in words. */
export function previewOf(client, conversation, message) {
  if (!message) return '';
  if (message.system) {
    return describeGroupEvent(message.event, { me: client.username, nameOf: (user) => displayName(client, user) });
  }
  if (message.outgoing) return `Vous : ${message.text}`;
  return conversation.kind === 'group' ? `${displayName(client, message.from)} : ${message.text}` : message.text;
}

/** The name shown for a conversation: the colleague's, or the group's. */
export function conversationName(client, conversation) {
  if (conversation.kind !== 'group') return displayName(client, conversation.peer);
  return client.groups.record(conversation.peer)?.name || 'Groupe de soins';
}

/**
 * @param {import('../client.js').Client} client
 * @param {{peer: string, kind: string, messages: any[], unread: number}} conversation
 * @param {{current: boolean, open: (peer: string) => void}} options
 */
export function conversationItem(client, conversation, { current, open }) {
  const group = conversation.kind === 'group';
  const last = conversation.messages.at(-1);
  const name = conversationName(client, conversation);
  const unread = conversation.unread;
  let mark;
  if (group) {
    mark = h('span', { class: 'group-mark', role: 'img', 'aria-label': 'Groupe' }, '👥');
  } else {
    const online = client.presence.get(conversation.peer);
    mark = online === undefined
      ? h('span', { class: 'dot', 'aria-hidden': 'true' })
      : h('span', { class: online ? 'dot online' : 'dot', role: 'img', 'aria-label': online ? 'En ligne' : 'Hors ligne' });
  }
  const warn = !group && client.directory.pendingChange(conversation.peer);
  const preview = last ? previewOf(client, conversation, last) : (group ? '' : describe(client.profileOf(conversation.peer)));
  return h('li', {},
    h('button', {
      type: 'button', class: current ? 'conversation-item current' : 'conversation-item',
      'aria-current': current ? 'true' : null,
      dataset: { peer: conversation.peer, kind: conversation.kind },
      onclick: () => open(conversation.peer),
    },
    mark,
    h('span', { class: 'item-main' },
      h('span', { class: 'item-name' }, name, warn ? h('span', { class: 'warn-badge', title: 'Appareils modifiés' }, ' ⚠') : null),
      h('span', { class: 'item-preview' }, preview)),
    h('span', { class: 'item-side' },
      last ? h('span', { class: 'item-time' }, formatTime(last.at ?? last.sentAt)) : null,
      unread ? h('span', { class: 'unread', 'aria-label': `${unread} non lu${unread > 1 ? 's' : ''}` }, String(unread)) : null)));
}
