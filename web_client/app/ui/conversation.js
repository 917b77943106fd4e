/**
 * One conversation: messages with their status ticks, the typing line, presence, the
 * warning when the correspondent's devices changed, and the composer.
 */
import { userMessage, USER_MESSAGES } from '../errors.js';
import { Composer } from './composer.js';
import { clear, describe, displayName, formatTime, h } from './dom.js';

/** How long "… écrit…" stays without news from the writer. */
export const TYPING_SHOWN_MS = 7000;

/** What each status tick means, for the eye (symbol) and for screen readers (label). */
export const TICKS = Object.freeze({
  pending: { symbol: '🕓', label: 'En attente d’envoi' },
  sent: { symbol: '✓', label: 'Envoyé : accepté par le serveur' },
  delivered: { symbol: '✓✓', label: 'Distribué : déchiffré par le destinataire' },
  read: { symbol: '✓✓', label: 'Lu' },
  failed: { symbol: '!', label: 'Non envoyé' },
});

/** The status tick of an outgoing message (or null), and its time: the `meta` line of a message. */
export function messageMeta(message) {
  const tick = message.outgoing ? TICKS[message.status] : null;
  return h('p', { class: 'meta' },
    h('time', { datetime: new Date(message.at ?? message.sentAt).toISOString() }, formatTime(message.at ?? message.sentAt)),
    tick ? h('span', { class: `tick ${message.status}`, role: 'img', 'aria-label': tick.label, title: tick.label }, tick.symbol) : null);
}

/** Under a message that could not be sent: why, in plain words, and "Réessayer". */
export function sendError(client, message) {
  if (message.status !== 'failed') return null;
  return h('p', { class: 'send-error', role: 'alert' },
    USER_MESSAGES[message.error] ?? userMessage({ code: message.error }), ' ',
    h('button', { type: 'button', class: 'link', onclick: () => client.retry(message.clientId) }, 'Réessayer'));
}

export function changeText(change) {
  const parts = [];
  if (change.added?.length) parts.push(change.added.length > 1 ? `${change.added.length} nouveaux appareils` : 'un nouvel appareil');
  if (change.replaced?.length) parts.push('des clés remplacées sur un appareil existant');
  return parts.join(' et ') || 'une modification de ses appareils';
}

export class ConversationView {
  /**
   * @param {import('../client.js').Client} client
   * @param {string} peer
   * @param {{openSafety: (peer: string) => void, back: () => void}} actions
   */
  constructor(client, peer, actions) {
    this.client = client;
    this.peer = peer;
    this.actions = actions;
    this.typingShownTimer = null;
    this.header = h('header', { class: 'conversation-header' });
    this.warning = h('div', { class: 'warning-area' });
    this.list = h('ol', { class: 'messages', role: 'log', 'aria-label': `Messages avec ${displayName(client, peer)}`, tabindex: '0' });
    this.typing = h('p', { class: 'typing', 'aria-live': 'polite' });
    this.composer = new Composer({
      label: `Message à ${displayName(client, peer)}`,
      onSend: (text) => {
        this.showTyping(false);
        return this.client.sendText(this.peer, text);
      },
      onTyping: (active) => this.client.setTyping(this.peer, active),
    });
    this.element = h('section', { class: 'conversation', 'aria-labelledby': 'conversation-title' },
      this.header, this.warning, this.list, this.typing, this.composer.element);
    this.refresh();
  }

  refresh() {
    this.#renderHeader();
    this.#renderWarning();
    this.#renderMessages();
  }

  #renderHeader() {
    const profile = this.client.profileOf(this.peer);
    const online = this.client.presence.get(this.peer);
    clear(this.header).append(
      h('button', { type: 'button', class: 'icon back', 'aria-label': 'Retour aux conversations', onclick: () => this.actions.back() }, '←'),
      h('div', { class: 'who' },
        h('h2', { id: 'conversation-title' }, displayName(this.client, this.peer)),
        h('p', { class: 'sub' },
          online === undefined ? null : h('span', { class: online ? 'presence online' : 'presence', dataset: { presence: online ? 'online' : 'offline' } },
            online ? 'En ligne' : 'Hors ligne'),
          online === undefined ? null : ' · ',
          describe(profile) || `@${this.peer}`)),
      h('button', { type: 'button', class: 'secondary', onclick: () => this.actions.openSafety(this.peer) }, 'Numéro de sécurité'));
  }

  #renderWarning() {
    const change = this.client.directory.pendingChange(this.peer);
    clear(this.warning);
    this.composer.disabled = Boolean(change);
    if (!change) return;
    this.warning.append(h('div', { class: 'identity-warning', role: 'alert' },
      h('p', {}, h('strong', {}, 'Attention : '),
        `les appareils de ${displayName(this.client, this.peer)} ont changé (${changeText(change)}). `,
        'Avant d’envoyer, comparez le numéro de sécurité avec votre correspondant (de vive voix ou par téléphone).'),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => this.actions.openSafety(this.peer) }, 'Voir le numéro de sécurité'),
        h('button', {
          type: 'button', class: 'primary', onclick: async () => {
            await this.client.acceptIdentity(this.peer);
            this.refresh();
            this.composer.focus();
          },
        }, 'J’ai vérifié'))));
  }

  #renderMessages() {
    const conversation = this.client.history.conversation(this.peer, { create: false });
    const messages = conversation ? conversation.messages : [];
    clear(this.list);
    if (!messages.length) {
      this.list.append(h('li', { class: 'empty' }, 'Aucun message pour l’instant. Les messages sont chiffrés de bout en bout.'));
      return;
    }
    for (const message of messages) this.list.append(this.#messageItem(message));
    this.list.scrollTop = this.list.scrollHeight;
  }

  #messageItem(message) {
    return h('li', {
      class: `message ${message.outgoing ? 'outgoing' : 'incoming'}`,
      dataset: { status: message.status, id: message.id ?? '', clientId: message.clientId ?? '' },
    },
    h('span', { class: 'visually-hidden' }, message.outgoing ? 'Vous : ' : `${displayName(this.client, message.from)} : `),
    h('p', { class: 'text', dir: 'auto' }, message.text),
    messageMeta(message),
    sendError(this.client, message));
  }

  showTyping(active) {
    clearTimeout(this.typingShownTimer);
    this.typing.textContent = active ? `${displayName(this.client, this.peer)} écrit…` : '';
    if (active) this.typingShownTimer = setTimeout(() => { this.typing.textContent = ''; }, TYPING_SHOWN_MS);
  }

  focus() {
    this.composer.focus();
  }

  destroy() {
    this.composer.destroy();
    clearTimeout(this.typingShownTimer);
  }
}
