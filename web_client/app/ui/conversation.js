/**
 * One conversation: messages with their status ticks, the typing line, presence, the
 * warning when the correspondent's devices changed, and the composer.
 */
import { userMessage, USER_MESSAGES } from '../errors.js';
import { clear, describe, displayName, formatTime, h } from './dom.js';

const TYPING_IDLE_MS = 4000;
const TYPING_SHOWN_MS = 7000;

/** What each status tick means, for the eye (symbol) and for screen readers (label). */
export const TICKS = Object.freeze({
  pending: { symbol: '🕓', label: 'En attente d’envoi' },
  sent: { symbol: '✓', label: 'Envoyé : accepté par le serveur' },
  delivered: { symbol: '✓✓', label: 'Distribué : déchiffré par le destinataire' },
  read: { symbol: '✓✓', label: 'Lu' },
  failed: { symbol: '!', label: 'Non envoyé' },
});

function changeText(change) {
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
    this.typingTimer = null;
    this.typingSent = false;
    this.typingShownTimer = null;
    this.header = h('header', { class: 'conversation-header' });
    this.warning = h('div', { class: 'warning-area' });
    this.list = h('ol', { class: 'messages', role: 'log', 'aria-label': `Messages avec ${displayName(client, peer)}`, tabindex: '0' });
    this.typing = h('p', { class: 'typing', 'aria-live': 'polite' });
    this.input = h('textarea', {
      id: 'composer-input', rows: '2', maxlength: '20000', placeholder: 'Écrire un message…',
      'aria-label': `Message à ${displayName(client, peer)}`,
      oninput: () => this.#typed(),
      onkeydown: (event) => {
        if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this.form.requestSubmit();
        }
      },
    });
    this.sendButton = h('button', { type: 'submit', class: 'primary' }, 'Envoyer');
    this.form = h('form', { class: 'composer', 'aria-label': 'Nouveau message', onsubmit: (event) => this.#submit(event) },
      this.input, this.sendButton);
    this.element = h('section', { class: 'conversation', 'aria-labelledby': 'conversation-title' },
      this.header, this.warning, this.list, this.typing, this.form);
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
    const blocked = Boolean(change);
    this.input.disabled = blocked;
    this.sendButton.disabled = blocked;
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
            this.input.focus();
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
    const tick = message.outgoing ? TICKS[message.status] : null;
    const time = formatTime(message.at ?? message.sentAt);
    return h('li', {
      class: `message ${message.outgoing ? 'outgoing' : 'incoming'}`,
      dataset: { status: message.status, id: message.id ?? '', clientId: message.clientId ?? '' },
    },
    h('span', { class: 'visually-hidden' }, message.outgoing ? 'Vous : ' : `${displayName(this.client, message.from)} : `),
    h('p', { class: 'text', dir: 'auto' }, message.text),
    h('p', { class: 'meta' },
      h('time', { datetime: new Date(message.at ?? message.sentAt).toISOString() }, time),
      tick ? h('span', { class: `tick ${message.status}`, role: 'img', 'aria-label': tick.label, title: tick.label }, tick.symbol) : null),
    message.status === 'failed'
      ? h('p', { class: 'send-error', role: 'alert' },
        USER_MESSAGES[message.error] ?? userMessage({ code: message.error }), ' ',
        h('button', { type: 'button', class: 'link', onclick: () => this.client.retry(message.clientId) }, 'Réessayer'))
      : null);
  }

  showTyping(active) {
    clearTimeout(this.typingShownTimer);
    this.typing.textContent = active ? `${displayName(this.client, this.peer)} écrit…` : '';
    if (active) this.typingShownTimer = setTimeout(() => { this.typing.textContent = ''; }, TYPING_SHOWN_MS);
  }

  #typed() {
    if (!this.typingSent && this.input.value.trim()) {
      this.client.setTyping(this.peer, true);
      this.typingSent = true;
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.#stopTyping(), TYPING_IDLE_MS);
  }

  #stopTyping() {
    clearTimeout(this.typingTimer);
    if (this.typingSent) this.client.setTyping(this.peer, false);
    this.typingSent = false;
  }

  async #submit(event) {
    event.preventDefault();
    const text = this.input.value;
    if (!text.trim()) return;
    this.input.value = '';
    this.#stopTyping();
    this.showTyping(false);
    await this.client.sendText(this.peer, text);
    this.input.focus();
  }

  focus() {
    if (!this.input.disabled) this.input.focus();
  }

  destroy() {
    this.#stopTyping();
    clearTimeout(this.typingShownTimer);
  }
}
