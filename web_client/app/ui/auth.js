/**
 * Sign in, sign up, and unlock this browser's keystore.
 *
 * `renderAuth(root, {lastUser, message, onSignedIn})`: when this browser already holds a
 * keystore, the password unlocks it (argon2id, done in the page); otherwise signing in
 * registers this browser as a new device of the account.
 */
import { Client } from '../client.js';
import { LienError, userMessage } from '../errors.js';
import { clear, h } from './dom.js';

const USERNAME = /^[a-z0-9][a-z0-9._-]{2,31}$/;
const PRACTITIONER_ID = /^([0-9]{9}|[0-9]{11})?$/;

function field(label, input, hint = null) {
  const id = input.id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null);
}

function errorBox() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

function showError(box, error) {
  box.textContent = typeof error === 'string' ? error : userMessage(error);
  box.hidden = false;
  if (!(error instanceof LienError) && typeof error !== 'string' && !('code' in Object(error))) {
    console.warn('lien: unexpected error', error);
  }
}

/** Let the page paint "…" before argon2id blocks the main thread for a moment. */
function nextFrame() {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

async function busy(form, label, action) {
  const button = form.querySelector('button[type=submit]');
  const text = button.textContent;
  form.setAttribute('aria-busy', 'true');
  for (const control of form.elements) control.disabled = true;
  button.textContent = label;
  await nextFrame();
  try {
    return await action();
  } finally {
    for (const control of form.elements) control.disabled = false;
    button.textContent = text;
    form.removeAttribute('aria-busy');
  }
}

export function renderAuth(root, { baseUrl, lastUser = null, message = null, onSignedIn }) {
  let mode = lastUser ? 'unlock' : 'signin';

  function render() {
    clear(root);
    const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Compte' },
      tab('signin', 'Se connecter'),
      tab('signup', 'Créer un compte'));
    const body = mode === 'signup' ? signUpForm() : signInForm();
    root.append(h('main', { id: 'main', class: 'auth' },
      h('div', { class: 'auth-card' },
        h('div', { class: 'brand' },
          h('img', { src: '/assets/icons/lien.svg', alt: '', width: 40, height: 40 }),
          h('div', {}, h('h1', {}, 'Lien'), h('p', { class: 'tagline' }, 'Messagerie sécurisée des professionnels de santé'))),
        message ? h('p', { class: 'notice', role: 'status' }, message) : null,
        mode === 'unlock' ? null : tabs,
        h('div', { role: mode === 'unlock' ? null : 'tabpanel', id: 'auth-panel' }, body),
        h('p', { class: 'fine' }, 'Vos messages sont chiffrés de bout en bout dans ce navigateur : le serveur ne voit que des données chiffrées.'))));
    root.querySelector('input:not([hidden])')?.focus();
  }

  function tab(name, label) {
    const selected = mode === name || (mode === 'unlock' && name === 'signin');
    return h('button', {
      type: 'button', role: 'tab', id: `tab-${name}`, 'aria-selected': String(selected), 'aria-controls': 'auth-panel',
      tabindex: selected ? '0' : '-1', class: selected ? 'tab selected' : 'tab',
      onclick: () => { mode = name; message = null; render(); },
      onkeydown: (event) => {
        if (event.key === 'ArrowRight' || event.key === 'ArrowLeft') {
          mode = mode === 'signup' ? 'signin' : 'signup';
          render();
          root.querySelector('[role=tab][aria-selected=true]')?.focus();
        }
      },
    }, label);
  }

  function signInForm() {
    const unlocking = mode === 'unlock';
    const username = h('input', {
      id: 'signin-username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none',
      spellcheck: 'false', value: unlocking ? lastUser : '',
    });
    const password = h('input', { id: 'signin-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const error = errorBox();
    const form = h('form', { class: 'form', novalidate: true, 'aria-labelledby': 'signin-title' },
      h('h2', { id: 'signin-title' }, unlocking ? 'Déverrouiller' : 'Se connecter'),
      unlocking ? h('p', { class: 'hint' }, `Ce navigateur garde les clés et l’historique de ${lastUser}, chiffrés par votre mot de passe.`) : null,
      unlocking ? h('input', { type: 'text', name: 'username', value: lastUser, autocomplete: 'username', hidden: true, readonly: true }) : field('Identifiant', username),
      field('Mot de passe', password),
      error,
      h('button', { type: 'submit', class: 'primary' }, unlocking ? 'Déverrouiller' : 'Se connecter'),
      unlocking ? h('button', { type: 'button', class: 'link', onclick: () => { mode = 'signin'; render(); } }, 'Utiliser un autre compte') : null);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      const name = unlocking ? lastUser : username.value.trim().toLowerCase();
      if (!USERNAME.test(name)) return showError(error, new LienError('invalid-username'));
      if (!password.value) return showError(error, 'Saisissez votre mot de passe.');
      try {
        const client = await busy(form, 'Ouverture du coffre…', () => Client.signIn(baseUrl, name, password.value));
        password.value = '';
        onSignedIn(client);
      } catch (failure) {
        if (unlocking && failure?.code === 'unknown-device') {
          offerNewDevice(form, error, name, password);
          return undefined;
        }
        showError(error, failure);
        password.focus();
      }
      return undefined;
    });
    return form;
  }

  /** This browser's device was removed from the account: say so, and offer to start afresh here. */
  function offerNewDevice(form, error, name, password) {
    const erase = h('button', { type: 'button', class: 'primary danger' }, 'Effacer les données de ce navigateur et me reconnecter');
    clear(error);
    error.append(
      h('span', {}, 'Cet appareil a été retiré de votre compte (depuis un autre appareil). Ses clés ne servent plus : '
        + 'pour utiliser Lien ici, ce navigateur doit devenir un nouvel appareil, ce qui efface les clés et '
        + 'l’historique gardés ici. Vos correspondants verront un nouvel appareil.'),
      erase);
    error.hidden = false;
    erase.addEventListener('click', async () => {
      try {
        const client = await busy(form, 'Nouvel appareil…', () => Client.signInAsNewDevice(baseUrl, name, password.value));
        password.value = '';
        onSignedIn(client);
      } catch (failure) {
        showError(error, failure);
      }
    });
    erase.focus();
  }

  function signUpForm() {
    const input = (id, attributes = {}) => h('input', { id, name: id.replace('signup-', ''), ...attributes });
    const username = input('signup-username', { autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
    const password = input('signup-password', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
    const displayName = input('signup-display-name', { autocomplete: 'name', required: true, maxlength: 128 });
    const profession = input('signup-profession', { autocomplete: 'organization-title', maxlength: 128, list: 'professions' });
    const rpps = input('signup-rpps', { inputmode: 'numeric', maxlength: 11, pattern: '[0-9]{9}|[0-9]{11}' });
    const organisation = input('signup-organisation', { autocomplete: 'organization', maxlength: 128 });
    const city = input('signup-city', { autocomplete: 'address-level2', maxlength: 128 });
    const unlisted = h('input', { id: 'signup-unlisted', name: 'unlisted', type: 'checkbox' });
    const error = errorBox();
    const professions = h('datalist', { id: 'professions' },
      ['Médecin généraliste', 'Biologiste', 'Infirmier(ère)', 'Pharmacien(ne)', 'Kinésithérapeute', 'Sage-femme', 'Cardiologue', 'Pédiatre']
        .map((each) => h('option', { value: each })));
    const form = h('form', { class: 'form', novalidate: true, 'aria-labelledby': 'signup-title' },
      h('h2', { id: 'signup-title' }, 'Créer un compte'),
      field('Identifiant', username, '3 à 32 caractères : minuscules, chiffres, « . », « _ », « - ». Il ne change plus.'),
      field('Mot de passe', password, 'Au moins 10 caractères. Il protège aussi vos clés dans ce navigateur.'),
      field('Nom affiché', displayName, 'Par exemple « Dr Hélène Martin ».'),
      field('Profession', profession),
      professions,
      field('N° RPPS ou ADELI', rpps, '11 chiffres (RPPS) ou 9 chiffres (ADELI), facultatif.'),
      field('Établissement ou cabinet', organisation),
      field('Ville', city),
      h('div', { class: 'field check' }, unlisted,
        h('label', { for: 'signup-unlisted' }, 'Liste rouge : ne pas apparaître dans l’annuaire'),
        h('p', { class: 'hint' }, 'Vos correspondants pourront toujours vous écrire s’ils connaissent votre identifiant.')),
      error,
      h('button', { type: 'submit', class: 'primary' }, 'Créer mon compte'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      const name = username.value.trim().toLowerCase();
      if (!USERNAME.test(name)) return showError(error, new LienError('invalid-username'));
      if (password.value.length < 10) return showError(error, new LienError('password-too-short'));
      if (!displayName.value.trim()) return showError(error, 'Indiquez le nom que vos confrères verront.');
      if (!PRACTITIONER_ID.test(rpps.value.trim())) return showError(error, new LienError('invalid-rpps'));
      const profile = {
        display_name: displayName.value.trim(),
        profession: profession.value.trim(),
        rpps: rpps.value.trim(),
        organisation: organisation.value.trim(),
        city: city.value.trim(),
        unlisted: unlisted.checked,
      };
      try {
        const client = await busy(form, 'Création du compte…', () => (
          Client.register(baseUrl, { username: name, password: password.value, profile })));
        password.value = '';
        onSignedIn(client);
      } catch (failure) {
        showError(error, failure);
      }
      return undefined;
    });
    return form;
  }

  render();
}
