/**
 * The page: sign-in, then the messenger shell (conversations on the left, the open
 * conversation, the directory or a safety number on the right).
 */
import { ready as sodiumReady } from '../src/crypto/sodium.js';
import { userMessage } from './errors.js';
import { keystoreExists, lastUsername } from './keystore.js';
import { renderAuth } from './ui/auth.js';
import { ConversationView } from './ui/conversation.js';
import { announce, clear, describe, displayName, formatTime, h } from './ui/dom.js';
import { enableNotifications, notificationsEnabled, notificationsSupported, notifyNewMessage, updateBadge } from './ui/notify.js';
import { renderSafety } from './ui/safety.js';
import { SearchView } from './ui/search.js';

const CONNECTION_TEXT = {
  connecting: 'Connexion…',
  ready: 'Connecté',
  offline: 'Hors ligne : nouvelle tentative automatique…',
  replaced: 'Ouvert dans un autre onglet',
  'signed-out': 'Session expirée',
  closed: 'Déconnecté',
};

const root = document.getElementById('app');
const baseUrl = window.location.origin;

async function boot() {
  await sodiumReady();
  let lastUser = null;
  try {
    lastUser = await lastUsername();
    if (lastUser && !(await keystoreExists(lastUser))) lastUser = null;
  } catch (error) {
    showAuth(null, userMessage(error));
    return;
  }
  showAuth(lastUser);
}

function showAuth(lastUser, message = null) {
  root.removeAttribute('aria-busy');
  updateBadge(0);
  renderAuth(root, { baseUrl, lastUser, message, onSignedIn: (client) => new Messenger(client) });
}

class Messenger {
  /** @param {import('./client.js').Client} client */
  constructor(client) {
    this.client = client;
    this.view = null;
    this.current = null;
    this.status = h('p', { class: 'connection', role: 'status', dataset: { state: client.state } });
    this.notifyButton = h('button', { type: 'button', class: 'secondary small', onclick: () => this.#enableNotifications() });
    this.list = h('ul', { class: 'conversation-list' });
    this.pane = h('div', { class: 'pane' });
    this.toasts = h('div', { class: 'toasts' });
    this.sidebar = h('nav', { class: 'sidebar', 'aria-label': 'Conversations' },
      h('button', { type: 'button', class: 'primary wide', onclick: () => this.showSearch() }, 'Rechercher un confrère'),
      h('h2', { class: 'visually-hidden' }, 'Conversations'),
      this.list);
    const me = displayName(client, client.username);
    clear(root).append(
      h('header', { class: 'topbar' },
        h('div', { class: 'brand small' }, h('img', { src: '/assets/icons/lien.svg', alt: '', width: 28, height: 28 }), h('span', {}, 'Lien')),
        this.status,
        h('div', { class: 'me' },
          h('span', { class: 'me-name', title: `@${client.username}` }, me),
          this.notifyButton,
          h('button', { type: 'button', class: 'secondary small', onclick: () => this.signOut() }, 'Se déconnecter'))),
      h('main', { id: 'main', class: 'layout' }, this.sidebar, this.pane),
      this.toasts);
    root.removeAttribute('aria-busy');
    this.#listen();
    this.#renderNotifyButton();
    this.#renderList();
    this.showEmpty();
    client.start();
  }

  #listen() {
    const client = this.client;
    client.addEventListener('connection', ({ detail }) => {
      this.status.textContent = CONNECTION_TEXT[detail.state] ?? detail.state;
      this.status.dataset.state = detail.state;
      if (detail.state === 'replaced') this.#replaced();
    });
    this.status.textContent = CONNECTION_TEXT[client.state];
    client.addEventListener('conversation', ({ detail }) => {
      this.#renderList();
      if (this.current === detail.peer && this.view instanceof ConversationView) {
        this.view.refresh();
        this.#markReadIfSeen();
      }
    });
    client.addEventListener('message', ({ detail: { message } }) => {
      if (message.outgoing) return;
      const name = displayName(client, message.from);
      const seen = this.current === message.peer && document.visibilityState === 'visible';
      announce(`Nouveau message de ${name} : ${message.text}`);
      if (!seen) notifyNewMessage(name, () => this.open(message.peer));
    });
    client.addEventListener('status', ({ detail: { message } }) => {
      if (this.current === message.peer && this.view instanceof ConversationView) this.view.refresh();
      this.#renderList();
    });
    client.addEventListener('typing', ({ detail }) => {
      if (this.current === detail.user && this.view instanceof ConversationView) this.view.showTyping(detail.active);
    });
    client.addEventListener('presence', ({ detail }) => {
      this.#renderList();
      const concerned = detail.user === null || this.current === detail.user;
      if (concerned && this.view instanceof ConversationView) this.view.refresh();
    });
    client.addEventListener('identity', ({ detail }) => {
      this.#renderList();
      if (detail.own && detail.change) announce('Un nouvel appareil a été ajouté à votre compte.');
      else if (detail.change) announce(`Attention : les appareils de ${displayName(client, detail.user)} ont changé.`);
      if (this.current === detail.user && this.view instanceof ConversationView) this.view.refresh();
    });
    client.addEventListener('notice', ({ detail }) => {
      if (detail.code === 'undecryptable') {
        this.#toast(`Un message de ${displayName(client, detail.user)} n’a pas pu être déchiffré ; son expéditeur va le renvoyer.`);
      } else {
        this.#toast(userMessage({ code: detail.code }));
      }
    });
    client.addEventListener('fatal', ({ detail }) => {
      this.client.close();
      showAuth(client.username, userMessage(detail.error));
    });
    document.addEventListener('visibilitychange', () => this.#markReadIfSeen());
    window.addEventListener('focus', () => this.#markReadIfSeen());
    window.addEventListener('online', () => client.reconnectNow());
  }

  #markReadIfSeen() {
    if (this.current && this.view instanceof ConversationView && document.visibilityState === 'visible') {
      this.client.markRead(this.current);
    }
  }

  #renderList() {
    const client = this.client;
    const conversations = client.history.list();
    clear(this.list);
    if (!conversations.length) {
      this.list.append(h('li', { class: 'empty' }, 'Aucune conversation. Recherchez un confrère pour commencer.'));
    }
    for (const conversation of conversations) {
      const last = conversation.messages.at(-1);
      const name = displayName(client, conversation.peer);
      const online = client.presence.get(conversation.peer);
      const unread = conversation.unread;
      const warn = client.directory.pendingChange(conversation.peer);
      this.list.append(h('li', {},
        h('button', {
          type: 'button', class: this.current === conversation.peer ? 'conversation-item current' : 'conversation-item',
          'aria-current': this.current === conversation.peer ? 'true' : null,
          dataset: { peer: conversation.peer },
          onclick: () => this.open(conversation.peer),
        },
        online === undefined
          ? h('span', { class: 'dot', 'aria-hidden': 'true' })
          : h('span', { class: online ? 'dot online' : 'dot', role: 'img', 'aria-label': online ? 'En ligne' : 'Hors ligne' }),
        h('span', { class: 'item-main' },
          h('span', { class: 'item-name' }, name, warn ? h('span', { class: 'warn-badge', title: 'Appareils modifiés' }, ' ⚠') : null),
          h('span', { class: 'item-preview' }, last ? `${last.outgoing ? 'Vous : ' : ''}${last.text}` : describe(client.profileOf(conversation.peer)))),
        h('span', { class: 'item-side' },
          last ? h('span', { class: 'item-time' }, formatTime(last.at ?? last.sentAt)) : null,
          unread ? h('span', { class: 'unread', 'aria-label': `${unread} non lu${unread > 1 ? 's' : ''}` }, String(unread)) : null))));
    }
    updateBadge(client.history.totalUnread());
  }

  #show(view, element) {
    this.view?.destroy?.();
    this.view = view;
    clear(this.pane).append(element);
    this.pane.parentElement.classList.toggle('pane-open', Boolean(this.current));
  }

  showEmpty() {
    this.current = null;
    this.#show(null, h('section', { class: 'placeholder' },
      h('h2', {}, 'Bienvenue'),
      h('p', {}, 'Choisissez une conversation, ou recherchez un confrère dans l’annuaire.')));
    this.#renderList();
  }

  showSearch() {
    this.current = null;
    const view = new SearchView(this.client, { open: (user) => this.open(user) });
    this.#show(view, view.element);
    this.#renderList();
    this.pane.parentElement.classList.add('pane-open');
    view.focus();
  }

  open(peer) {
    this.current = peer;
    const view = new ConversationView(this.client, peer, {
      openSafety: (user) => this.showSafety(user),
      back: () => this.showEmpty(),
    });
    this.#show(view, view.element);
    this.#renderList();
    this.#markReadIfSeen();
    view.focus();
  }

  async showSafety(peer) {
    this.current = peer;
    const element = await renderSafety(this.client, peer, { back: () => this.open(peer) });
    this.#show(null, element);
    element.querySelector('button')?.focus();
  }

  async #enableNotifications() {
    await enableNotifications();
    this.#renderNotifyButton();
  }

  #renderNotifyButton() {
    const supported = notificationsSupported();
    this.notifyButton.hidden = !supported || notificationsEnabled();
    this.notifyButton.textContent = 'Activer les notifications';
  }

  /** A short message in plain words (an error the server reported, a message that did not open). */
  #toast(text) {
    this.toasts.append(h('p', { class: 'toast', role: 'alert' }, text));
    const shown = this.toasts.lastElementChild;
    setTimeout(() => shown.remove(), 8000);
  }

  #replaced() {
    this.pane.prepend(h('div', { class: 'identity-warning', role: 'alert' },
      h('p', {}, 'Lien est ouvert avec ce compte dans un autre onglet ou une autre fenêtre ; cet onglet est en pause.'),
      h('button', { type: 'button', class: 'primary', onclick: () => this.client.reconnectNow() }, 'Utiliser cet onglet')));
  }

  async signOut() {
    await this.client.signOut();
    showAuth(this.client.username, 'Vous êtes déconnecté. Vos clés et votre historique restent chiffrés dans ce navigateur.');
  }
}

boot().catch((error) => {
  console.error('lien: start-up failed', error?.name);
  clear(root).append(h('p', { class: 'form-error', role: 'alert' }, 'Lien n’a pas pu démarrer dans ce navigateur. Rechargez la page.'));
});
