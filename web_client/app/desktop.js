/**
 * The page inside Lien's desktop application (desktop_client/, pywebview).
 *
 * There, `window.pywebview.api` is a bridge to the desktop side (desktop_client/bridge.py):
 * native notifications, the unread count and the connection in the window title, and the
 * password kept in the operating system's keyring when the user ticks the box that says so.
 * The bridge appears a moment after the page loads (`pywebviewready`); everything here
 * waits for it. In a browser it never appears and nothing here does anything.
 *
 * Hooks: `ui/notify.js` (title badge, notifications) and `main.js` (the sign-in screen,
 * the messenger, signing out). Python reaches back only through `window.lienDesktop`.
 */
import { WrongPassword } from '../src/crypto/errors.js';
import { Client } from './client.js';
import { userMessage } from './errors.js';
import { h } from './ui/dom.js';

const KEPT_OPENERS = 50;

let bridge = null;
let unread = 0;
let nextKey = 0;
const openers = new Map();
let screen = null;
let autoUnlockTried = false;
/** The last sign-in form's username, password and choice, until the messenger opens. */
let pending = null;
const watchedRoots = new WeakSet();

const bridgeReady = new Promise((resolve) => {
  const found = () => (typeof window.pywebview?.api?.notify === 'function' ? window.pywebview.api : null);
  if (found()) resolve(found());
  else window.addEventListener('pywebviewready', () => { if (found()) resolve(found()); });
});

bridgeReady.then((api) => {
  bridge = api;
  document.head.append(h('link', { rel: 'stylesheet', href: '/assets/desktop.css' }));
  window.lienDesktop = Object.freeze({ activate });
  if (unread) call('set_unread', unread);
});

/** A bridge call; failures are logged (never with arguments) and give null. */
function call(name, ...args) {
  if (!bridge) return Promise.resolve(null);
  return bridge[name](...args).catch((error) => {
    console.warn('lien: desktop bridge call failed', name, error?.name);
    return null;
  });
}

export function desktopActive() {
  return bridge !== null;
}

/** The unread count, for the window title. */
export function desktopUnread(count) {
  unread = count;
  if (bridge) call('set_unread', count);
}

/** A native notification (sender only, never the text); false in a browser. */
export function desktopNotify(senderName, onOpen) {
  if (!bridge) return false;
  const key = String(++nextKey);
  openers.set(key, onOpen);
  for (const old of openers.keys()) {
    if (openers.size <= KEPT_OPENERS) break;
    openers.delete(old);
  }
  call('notify', 'Lien', `Nouveau message de ${senderName}`, `lien-${senderName}`, key);
  return true;
}

/** Called by Python when a notification was clicked (the window is already in front). */
function activate(key) {
  openers.get(String(key))?.();
}

// --- sign-in: "remember the password" and unlocking with the keyring -----------------

/** The sign-in, sign-up or unlock screen is showing (main.js, after renderAuth). */
export function desktopAuthShown(root, { baseUrl, lastUser, onSignedIn }) {
  const shown = Symbol('auth screen');
  screen = shown;
  bridgeReady.then(async () => {
    const status = await call('keyring_status');
    if (screen !== shown || !status?.available) return;
    offerRemember(root);
    if (lastUser && !autoUnlockTried) {
      autoUnlockTried = true; // once per start: never again after a sign-out or an expired session
      await autoUnlock(root, shown, { baseUrl, lastUser, onSignedIn });
    }
  });
}

function offerRemember(root) {
  addRememberBoxes(root);
  if (watchedRoots.has(root)) return;
  watchedRoots.add(root);
  new MutationObserver(() => addRememberBoxes(root)).observe(root, { childList: true, subtree: true });
  root.addEventListener('submit', rememberSubmission, true); // before auth.js reads and clears the form
}

function addRememberBoxes(root) {
  for (const form of root.querySelectorAll('form')) {
    if (!form.querySelector('input[type=password]') || form.querySelector('.desktop-remember')) continue;
    const id = `${form.getAttribute('aria-labelledby') ?? 'form'}-remember`;
    const box = h('div', { class: 'field check desktop-remember' },
      h('input', { id, name: 'remember-password', type: 'checkbox' }),
      h('label', { for: id }, 'Retenir le mot de passe dans le trousseau de cet ordinateur'),
      h('p', { class: 'hint' },
        'Lien s’ouvrira sans le demander. Toute personne qui utilise votre session sur cet ordinateur pourra alors lire vos messages.'));
    form.insertBefore(box, form.querySelector('.form-error') ?? form.querySelector('button[type=submit]'));
  }
}

function rememberSubmission(event) {
  const form = event.target;
  const password = form.querySelector?.('input[type=password]');
  const remember = form.querySelector?.('input[name=remember-password]');
  if (!password || !remember) return;
  pending = {
    username: (form.querySelector('input[name=username]')?.value ?? '').trim().toLowerCase(),
    password: password.value,
    remember: remember.checked,
  };
}

async function autoUnlock(root, shown, { baseUrl, lastUser, onSignedIn }) {
  const secret = await call('stored_passphrase', lastUser);
  const form = root.querySelector('form');
  if (!secret || screen !== shown || !form) return;
  const note = h('p', { class: 'notice', role: 'status' }, 'Déverrouillage avec le trousseau de cet ordinateur…');
  form.prepend(note);
  for (const control of form.elements) control.disabled = true;
  try {
    const client = await Client.signIn(baseUrl, lastUser, secret);
    if (screen === shown) onSignedIn(client);
  } catch (error) {
    for (const control of form.elements) control.disabled = false;
    if (error instanceof WrongPassword) {
      call('forget_passphrase', lastUser);
      note.textContent = 'Le mot de passe retenu ne déverrouille plus ce coffre ; il a été oublié. Saisissez votre mot de passe.';
    } else {
      note.textContent = userMessage(error);
    }
    form.querySelector('input[type=password]')?.focus();
  }
}

// --- the messenger -------------------------------------------------------------------

/** The messenger opened with `client` (main.js): keep or forget the password as chosen; the banner. */
export function desktopAttach(client, root) {
  screen = null;
  const choice = pending;
  pending = null;
  if (!bridge) return;
  if (choice && choice.username === client.username) {
    if (choice.remember) call('remember_passphrase', client.username, choice.password);
    else call('forget_passphrase', client.username);
  }
  watchConnection(client, root);
}

/** A banner while the server cannot be reached; the window title says it too. */
function watchConnection(client, root) {
  const banner = h('div', { class: 'desktop-banner', role: 'alert', hidden: true },
    h('p', {},
      h('strong', {}, 'Serveur injoignable. '),
      'Lien réessaie automatiquement ; vos messages partiront dès le retour de la connexion.'),
    h('button', { type: 'button', class: 'secondary small', onclick: () => client.reconnectNow() }, 'Réessayer maintenant'));
  root.prepend(banner);
  client.addEventListener('connection', ({ detail: { state } }) => {
    call('connection_state', state);
    // The retries go offline → connecting → offline: the banner stays until `ready`.
    if (state === 'offline') banner.hidden = false;
    else if (state !== 'connecting') banner.hidden = true;
  });
}

/** The user signed out: the password is not kept for the next start. */
export function desktopSignedOut(username) {
  if (bridge) call('forget_passphrase', username);
}
