/**
 * "Mon compte": the profile colleagues see (with the "liste rouge"), this account's devices
 * — each browser or program signed in — with a way to sign one out for good (a lost laptop),
 * the account's password asked again,
 * and the audit export (app/ui/export.js).
 */
import { LienError, userMessage } from '../errors.js';
import { clear, h } from './dom.js';
import { ExportSection } from './export.js';

const PRACTITIONER_ID = /^([0-9]{9}|[0-9]{11})?$/;
const dayFormat = new Intl.DateTimeFormat('fr-FR', { day: 'numeric', month: 'long', year: 'numeric' });
const FIELDS = [
  ['display_name', 'Nom affiché', { autocomplete: 'name', required: true, maxlength: 128 }],
  ['profession', 'Profession', { autocomplete: 'organization-title', maxlength: 128 }],
  ['rpps', 'N° RPPS ou ADELI', { inputmode: 'numeric', maxlength: 11 }],
  ['organisation', 'Établissement ou cabinet', { autocomplete: 'organization', maxlength: 128 }],
  ['city', 'Ville', { autocomplete: 'address-level2', maxlength: 128 }],
];

export class AccountView {
  /** @param {import('../client.js').Client} client @param {{back: () => void}} actions */
  constructor(client, actions) {
    this.client = client;
    this.confirming = null;
    this.inputs = Object.fromEntries(FIELDS.map(([name, , attributes]) => [name, h('input', { id: `account-${name}`, name, ...attributes })]));
    this.unlisted = h('input', { id: 'account-unlisted', name: 'unlisted', type: 'checkbox' });
    this.profileStatus = h('p', { class: 'search-status', role: 'status' });
    this.profileError = h('p', { class: 'form-error', role: 'alert', hidden: true });
    this.profileForm = h('form', { class: 'form', novalidate: true, 'aria-labelledby': 'profile-title', onsubmit: (event) => this.#save(event) },
      h('h3', { id: 'profile-title' }, 'Mon profil'),
      h('div', { class: 'grid-2' },
        FIELDS.map(([name, label]) => h('div', { class: 'field' }, h('label', { for: `account-${name}` }, label), this.inputs[name]))),
      h('div', { class: 'field check' }, this.unlisted,
        h('label', { for: 'account-unlisted' }, 'Liste rouge : ne pas apparaître dans l’annuaire'),
        h('p', { class: 'hint' }, 'Vos correspondants pourront toujours vous écrire s’ils connaissent votre identifiant.')),
      this.profileError,
      h('button', { type: 'submit', class: 'primary' }, 'Enregistrer le profil'),
      this.profileStatus);
    this.devices = h('ul', { class: 'devices', 'aria-label': 'Appareils' });
    this.devicesStatus = h('p', { class: 'search-status', role: 'status' });
    this.title = h('h2', { id: 'account-title', class: 'grow', tabindex: '-1' }, 'Mon compte');
    this.element = h('section', { class: 'panel account', 'aria-labelledby': 'account-title' },
      h('header', { class: 'conversation-header' },
        h('button', { type: 'button', class: 'icon back', 'aria-label': 'Retour aux conversations', onclick: () => actions.back() }, '←'),
        this.title,
        h('p', { class: 'sub' }, `@${client.username}`)),
      h('div', { class: 'panel-body' },
        h('section', { class: 'account-section' }, this.profileForm),
        h('section', { class: 'account-section', 'aria-labelledby': 'devices-title' },
          h('h3', { id: 'devices-title' }, 'Mes appareils'),
          h('p', { class: 'hint' }, 'Chaque navigateur ou logiciel connecté à votre compte a ses propres clés. '
            + 'Déconnectez pour de bon un appareil perdu ou que vous n’utilisez plus : il ne reçoit plus rien.'),
          this.devices, this.devicesStatus),
        new ExportSection(client).element));
    this.#fill(client.profileOf(client.username));
    this.#setBusy(true); // until the server's profile is in: what is typed meanwhile would be overwritten
    this.#load();
  }

  #setBusy(busy) {
    for (const control of this.profileForm.elements) control.disabled = busy;
    if (busy) this.profileForm.setAttribute('aria-busy', 'true');
    else this.profileForm.removeAttribute('aria-busy');
  }

  #fill(profile) {
    if (!profile) return;
    for (const [name] of FIELDS) this.inputs[name].value = profile[name] ?? '';
    this.unlisted.checked = Boolean(profile.unlisted);
  }

  async #load() {
    try {
      const account = await this.client.api.me();
      this.client.rememberProfile(this.client.username, account.profile);
      this.#fill(account.profile);
    } catch (error) {
      this.profileStatus.textContent = userMessage(error);
    }
    this.#setBusy(false);
    await this.#loadDevices();
  }

  async #save(event) {
    event.preventDefault();
    this.profileError.hidden = true;
    this.profileStatus.textContent = '';
    const update = Object.fromEntries(FIELDS.map(([name]) => [name, this.inputs[name].value.trim()]));
    update.unlisted = this.unlisted.checked;
    try {
      if (!update.display_name) throw new Error('Indiquez le nom que vos confrères verront.');
      if (!PRACTITIONER_ID.test(update.rpps)) throw new LienError('invalid-rpps');
      this.#fill(await this.client.updateProfile(update));
      this.profileStatus.textContent = update.unlisted
        ? 'Profil enregistré. Vous êtes sur liste rouge : l’annuaire ne vous montre plus.'
        : 'Profil enregistré.';
    } catch (error) {
      this.profileError.textContent = error instanceof LienError || error?.code ? userMessage(error) : error.message;
      this.profileError.hidden = false;
    }
  }

  async #loadDevices() {
    try {
      const listing = await this.client.api.myDevices();
      clear(this.devices).append(...listing.devices.map((device) => this.#device(device)));
    } catch (error) {
      this.devicesStatus.textContent = userMessage(error);
    }
  }

  #device(device) {
    const name = device.name || `Appareil n° ${device.device}`;
    let action;
    if (device.current) {
      action = h('span', { class: 'tag' }, 'Cet appareil');
    } else if (this.confirming === device.device) {
      // The password again: a session token alone (a stolen one) must not sign devices out.
      const password = h('input', {
        id: `remove-password-${device.device}`, type: 'password', autocomplete: 'current-password', required: true, maxlength: 1024,
      });
      action = h('form', { class: 'confirm', onsubmit: (event) => { event.preventDefault(); this.#remove(device, name, password.value); } },
        h('label', { for: password.id }, 'Mot de passe de votre compte'),
        password,
        h('button', { type: 'submit', class: 'primary danger' }, 'Confirmer la déconnexion'),
        h('button', { type: 'button', class: 'link', onclick: () => { this.confirming = null; this.#loadDevices(); } }, 'Annuler'));
      queueMicrotask(() => password.focus());
    } else {
      action = h('button', {
        type: 'button', class: 'secondary small', 'aria-label': `Déconnecter ${name} (n° ${device.device})`,
        onclick: () => { this.confirming = device.device; this.#loadDevices(); },
      }, 'Déconnecter cet appareil');
    }
    return h('li', { class: 'device', dataset: { device: String(device.device), current: String(device.current) } },
      h('div', {},
        h('p', { class: 'name' }, `${name} (n° ${device.device})`),
        h('p', { class: 'sub' }, `Ajouté le ${dayFormat.format(new Date(device.created_at))}`)),
      action);
  }

  async #remove(device, name, password) {
    if (!password) {
      this.devicesStatus.textContent = 'Saisissez le mot de passe de votre compte pour déconnecter cet appareil.';
      return;
    }
    try {
      await this.client.api.removeDevice(device.device, password);
      this.confirming = null;
      this.devicesStatus.textContent = `${name} est déconnecté : il ne reçoit plus aucun message.`;
    } catch (error) {
      // A wrong password leaves the confirmation open, to try again; anything else closes it.
      if (error?.code !== 'invalid-password') this.confirming = null;
      this.devicesStatus.textContent = userMessage(error);
    }
    await this.#loadDevices();
  }

  focus() {
    this.title.focus();
  }
}
