/**
 * The page: sign-in, then the messenger shell (conversations and groups on the left; on the
 * right the open conversation, a group and its members, the directory, a safety number,
 * a new group, or the account).
 */
import { ready as sodiumReady } from '../src/crypto/sodium.js';
import { desktopAttach, desktopAuthShown, desktopSignedOut } from './desktop.js';
import { userMessage } from './errors.js';
import { keystoreExists, lastUsername } from './keystore.js';
import { isGroupId } from './protocol.js';
import { AccountView } from './ui/account.js';
import { renderAuth } from './ui/auth.js';
import { ConversationView } from './ui/conversation.js';
import { conversationItem } from './ui/conversation_list.js';
import { announce, clear, displayName, h } from './ui/dom.js';
import { GroupCreateView } from './ui/group_create.js';
import { GroupMembersView } from './ui/group_members.js';
import { GroupView } from './ui/group_view.js';
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
  const onSignedIn = (client) => new Messenger(client);
  renderAuth(root, { baseUrl, lastUser, message, onSignedIn });
  desktopAuthShown(root, { baseUrl, lastUser, onSignedIn });
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
      h('button', { type: 'button', class: 'secondary wide', onclick: () => this.showGroupCreate() }, 'Nouveau groupe'),
      h('h2', { class: 'visually-hidden' }, 'Conversations'),
      this.list);
    const me = displayName(client, client.username);
    this.meName = h('span', { class: 'me-name', title: `@${client.username}` }, me);
    clear(root).append(
      h('header', { class: 'topbar' },
        h('div', { class: 'brand small' }, h('img', { src: '/assets/icons/lien.svg', alt: '', width: 28, height: 28 }), h('span', {}, 'Lien')),
        this.status,
        h('div', { class: 'me' },
          this.meName,
          h('button', { type: 'button', class: 'secondary small', onclick: () => this.showAccount() }, 'Mon compte'),
          this.notifyButton,
          h('button', { type: 'button', class: 'secondary small', onclick: () => this.signOut() }, 'Se déconnecter'))),
      h('main', { id: 'main', class: 'layout' }, this.sidebar, this.pane),
      this.toasts);
    root.removeAttribute('aria-busy');
    this.#listen();
    desktopAttach(client, root);
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
      if (this.#showing(detail.peer)) {
        this.view.refresh();
        this.#markReadIfSeen();
      }
    });
    client.addEventListener('group', ({ detail }) => {
      if (this.current === detail.group) this.view?.refresh?.();
    });
    client.addEventListener('profile', ({ detail }) => {
      this.meName.textContent = detail.profile.display_name || client.username;
    });
    client.addEventListener('message', ({ detail: { message } }) => {
      if (message.outgoing) return;
      const name = displayName(client, message.from);
      const seen = this.current === message.peer && document.visibilityState === 'visible';
      announce(`Nouveau message de ${name} : ${message.text}`);
      if (!seen) notifyNewMessage(name, () => this.open(message.peer));
    });
    client.addEventListener('status', ({ detail: { message } }) => {
      if (this.#showing(message.peer)) this.view.refresh();
      this.#renderList();
    });
    client.addEventListener('typing', ({ detail }) => {
      if (this.#showing(detail.group ?? detail.user)) this.view.showTyping(detail.active, detail.user);
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
      else if (this.view instanceof GroupView) this.view.refresh();
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

  /** Whether the conversation (or group) `peer` is the one on screen. */
  #showing(peer) {
    return this.current === peer && (this.view instanceof ConversationView || this.view instanceof GroupView);
  }

  #markReadIfSeen() {
    if (this.current && this.#showing(this.current) && document.visibilityState === 'visible') {
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
      this.list.append(conversationItem(client, conversation, {
        current: this.current === conversation.peer, open: (peer) => this.open(peer),
      }));
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
    const view = isGroupId(peer)
      ? new GroupView(this.client, peer, {
        back: () => this.showEmpty(),
        members: (group) => this.showGroupMembers(group),
        openSafety: (user) => this.showSafety(user, { back: () => this.open(peer) }),
      })
      : new ConversationView(this.client, peer, {
        openSafety: (user) => this.showSafety(user),
        back: () => this.showEmpty(),
      });
    this.#show(view, view.element);
    this.#renderList();
    this.#markReadIfSeen();
    view.focus();
  }

  async showSafety(peer, { back = () => this.open(peer) } = {}) {
    this.current = peer;
    const element = await renderSafety(this.client, peer, { back });
    this.#show(null, element);
    element.querySelector('button')?.focus();
  }

  /** A screen of its own on the right (a new group, a group's members, the account). */
  #showPanel(current, view) {
    this.current = current;
    this.#show(view, view.element);
    this.#renderList();
    this.pane.parentElement.classList.add('pane-open');
    view.focus();
  }

  showGroupCreate() {
    this.#showPanel(null, new GroupCreateView(this.client, { open: (group) => this.open(group), back: () => this.showEmpty() }));
  }

  showGroupMembers(groupId) {
    this.#showPanel(groupId, new GroupMembersView(this.client, groupId, {
      back: () => this.open(groupId), left: () => this.open(groupId),
    }));
  }

  showAccount() {
    this.#showPanel(null, new AccountView(this.client, { back: () => this.showEmpty() }));
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
    desktopSignedOut(this.client.username);
    showAuth(this.client.username, 'Vous êtes déconnecté. Vos clés et votre historique restent chiffrés dans ce navigateur.');
  }
}

boot().catch((error) => {
  console.error('lien: start-up failed', error?.name);
  clear(root).append(h('p', { class: 'form-error', role: 'alert' }, 'Lien n’a pas pu démarrer dans ce navigateur. Rechargez la page.'));
});
