/**
 * Conversation history, kept inside the encrypted keystore so a reload keeps it.
 *
 * Pure data: conversations keyed by the other party (a username, `kind: 'user'`, or a group
 * id, `kind: 'group'`), each an ordered list of messages. Outgoing messages move through
 * `pending` (typed, not yet accepted) → `sent` (the server accepted it) → `delivered`
 * (a recipient device decrypted it) → `read`; `failed` holds an error code. In a group, an
 * outgoing message names its `audience` (the other members when it was sent) and keeps each
 * member's receipts (`byMember`): it is delivered once every one of them decrypted it, read
 * once every one read it. Group events are `system` lines (never unread).
 */
import { isGroupId } from './protocol.js';


export const STATUS_ORDER = Object.freeze({ pending: 0, failed: 0, sent: 1, delivered: 2, read: 3 });
const RECEIPT_STATUS = Object.freeze({ delivered: 'delivered', decrypted: 'delivered', read: 'read' });

export class History {
  /** @param {Record<string, any>} conversations the keystore's `conversations` object (mutated in place) */
  constructor(conversations, { kept = 1000 } = {}) {
    this.conversations = conversations;
    this.kept = kept;
    /** @type {Map<string, any>} server message id -> message */
    this.byServerId = new Map();
    /** @type {Map<string, any>} client message id -> outgoing message */
    this.byClientId = new Map();
    for (const conversation of Object.values(conversations)) {
      for (const message of conversation.messages) this.#index(message);
    }
  }

  #index(message) {
    if (message.id) this.byServerId.set(message.id, message);
    if (message.outgoing && message.clientId) this.byClientId.set(message.clientId, message);
  }

  conversation(peer, { create = true } = {}) {
    let conversation = this.conversations[peer];
    if (!conversation && create) {
      conversation = { peer, kind: isGroupId(peer) ? 'group' : 'user', messages: [], unread: 0, updatedAt: 0 };
      this.conversations[peer] = conversation;
    }
    return conversation ?? null;
  }

  /** Conversations, most recent first. */
  list() {
    return Object.values(this.conversations).sort((a, b) => b.updatedAt - a.updatedAt || a.peer.localeCompare(b.peer));
  }

  totalUnread() {
    return Object.values(this.conversations).reduce((sum, each) => sum + each.unread, 0);
  }

  #append(peer, message) {
    const conversation = this.conversation(peer);
    message.peer = peer;
    conversation.messages.push(message);
    conversation.messages.sort((a, b) => (a.at ?? a.sentAt) - (b.at ?? b.sentAt));
    conversation.updatedAt = Math.max(conversation.updatedAt, message.at ?? message.sentAt);
    while (conversation.messages.length > this.kept) {
      const dropped = conversation.messages.shift();
      this.byServerId.delete(dropped.id);
      this.byClientId.delete(dropped.clientId);
    }
    this.#index(message);
    return message;
  }

  /** A message this device is sending: pending until accepted. */
  addOutgoing(peer, { clientId, text, sentAt, from }) {
    return this.#append(peer, {
      id: null, clientId, from, outgoing: true, text, sentAt, at: null, status: 'pending', error: null,
    });
  }

  /**
   * A message received, or a copy of one sent from another of one's devices (`outgoing`).
   * `proof` is the signed payload kept for non-repudiation: `{payload, signature, signer}` in base64.
   */
  addReceived(peer, { id, clientId, from, fromDevice, outgoing, text, sentAt, at, hash = null, proof = null }) {
    if (this.byServerId.has(id)) return null;
    const message = this.#append(peer, {
      id, clientId, from, fromDevice, outgoing, text, sentAt, at, hash, proof,
      status: outgoing ? 'sent' : 'received', readByMe: outgoing, error: null,
    });
    if (!outgoing) this.conversation(peer).unread += 1;
    return message;
  }

  /**
   * A line saying what happened to a group (a member added, the group renamed…): `event` is
   * the `group_event` frame's fields. Shown once (by `id`), never counted unread.
   */
  addSystem(peer, { id, at, event }) {
    if (this.byServerId.has(id)) return null;
    return this.#append(peer, {
      id, clientId: null, from: event.actor, outgoing: false, system: true, event, text: '', sentAt: at, at,
      status: 'received', readByMe: true, error: null,
    });
  }

  /** The other members a group message goes to, for its per-member status. */
  setAudience(clientId, users) {
    const message = this.byClientId.get(clientId);
    if (message) message.audience = [...users].sort();
  }

  /** The server accepted the send `clientId` as message `id` at `at`. */
  accepted(clientId, id, at) {
    const message = this.byClientId.get(clientId);
    if (!message) return null;
    message.id = id;
    message.at = at;
    if (STATUS_ORDER[message.status] < STATUS_ORDER.sent) message.status = 'sent';
    message.error = null;
    this.byServerId.set(id, message);
    return message;
  }

  failed(clientId, code) {
    const message = this.byClientId.get(clientId);
    if (!message || message.id) return null;
    message.status = 'failed';
    message.error = code;
    return message;
  }

  /** A receipt about a message this user sent; returns the message when its status (or a member's) moved. */
  receipt(id, kind, by, at) {
    const message = this.byServerId.get(id);
    const status = RECEIPT_STATUS[kind];
    if (!message || !message.outgoing || !status) return null;
    message.receipts ??= {};
    message.receipts[kind] ??= at;
    if (Array.isArray(message.audience)) return this.#memberReceipt(message, status, by, at);
    if (STATUS_ORDER[status] > STATUS_ORDER[message.status]) {
      message.status = status;
      return message;
    }
    return null;
  }

  /** A group message: the member's own status, then the message's (the least advanced member's). */
  #memberReceipt(message, status, by, at) {
    message.byMember ??= {};
    const member = (message.byMember[by] ??= {});
    if (member[status] !== undefined) return null;
    member[status] = at;
    if (status === 'read') member.delivered ??= at;
    const reached = (wanted) => message.audience.length > 0
      && message.audience.every((user) => message.byMember[user]?.[wanted] !== undefined);
    const overall = reached('read') ? 'read' : reached('delivered') ? 'delivered' : message.status;
    if (STATUS_ORDER[overall] > STATUS_ORDER[message.status]) message.status = overall;
    return message;
  }

  /**
   * Each member of a group message's audience and where the message stands for them:
   * `[{user, status: 'read' | 'delivered' | 'sent', at}]`, in audience order.
   */
  static memberStatuses(message) {
    return (message.audience ?? []).map((user) => {
      const member = message.byMember?.[user] ?? {};
      if (member.read !== undefined) return { user, status: 'read', at: member.read };
      if (member.delivered !== undefined) return { user, status: 'delivered', at: member.delivered };
      return { user, status: 'sent', at: null };
    });
  }

  /** Incoming messages of `peer` not yet marked read; marks them read and clears the count. */
  takeUnread(peer) {
    const conversation = this.conversation(peer, { create: false });
    if (!conversation) return [];
    const unread = conversation.messages.filter((message) => !message.outgoing && !message.readByMe && message.id);
    for (const message of unread) message.readByMe = true;
    conversation.unread = 0;
    return unread;
  }

  /** Another of this user's devices read message `id`. */
  readElsewhere(id) {
    const message = this.byServerId.get(id);
    if (!message || message.outgoing || message.readByMe) return null;
    message.readByMe = true;
    const conversation = this.conversation(message.peer);
    conversation.unread = Math.max(0, conversation.unread - 1);
    return message;
  }
}
