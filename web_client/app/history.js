/**
 * Conversation history, kept inside the encrypted keystore so a reload keeps it.
 *
 * Pure data: conversations keyed by the other party (a username; a group id later, with
 * `kind: 'group'`), each an ordered list of messages. Outgoing messages move through
 * `pending` (typed, not yet accepted) → `sent` (the server accepted it) → `delivered`
 * (a recipient device decrypted it) → `read`; `failed` holds an error code.
 */

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
      conversation = { peer, kind: 'user', messages: [], unread: 0, updatedAt: 0 };
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

  /** A message received, or a copy of one sent from another of one's devices (`outgoing`). */
  addReceived(peer, { id, clientId, from, fromDevice, outgoing, text, sentAt, at, hash = null }) {
    if (this.byServerId.has(id)) return null;
    const message = this.#append(peer, {
      id, clientId, from, fromDevice, outgoing, text, sentAt, at, hash,
      status: outgoing ? 'sent' : 'received', readByMe: outgoing, error: null,
    });
    if (!outgoing) this.conversation(peer).unread += 1;
    return message;
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

  /** A receipt about a message this user sent; returns the message when its status moved. */
  receipt(id, kind, by, at) {
    const message = this.byServerId.get(id);
    const status = RECEIPT_STATUS[kind];
    if (!message || !message.outgoing || !status) return null;
    message.receipts ??= {};
    message.receipts[kind] ??= at;
    if (STATUS_ORDER[status] > STATUS_ORDER[message.status]) {
      message.status = status;
      return message;
    }
    return null;
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
