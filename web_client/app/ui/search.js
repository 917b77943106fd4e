/**
 * The directory: find a colleague by name, profession or city (GET /v1/directory), or
 * write to a username directly (professionals on the "liste rouge" are reachable that way).
 */
import { LienError, userMessage } from '../errors.js';
import { clear, describe, h } from './dom.js';

const USERNAME = /^[a-z0-9][a-z0-9._-]{2,31}$/;

export class SearchView {
  /** @param {import('../client.js').Client} client @param {{open: (username: string) => void}} actions */
  constructor(client, actions) {
    this.client = client;
    this.actions = actions;
    this.cursor = null;
    const input = (id, label, attributes = {}) => {
      const element = h('input', { id, name: id.replace('search-', ''), type: 'search', autocomplete: 'off', ...attributes });
      return [element, h('div', { class: 'field' }, h('label', { for: id }, label), element)];
    };
    [this.q, this.qField] = input('search-q', 'Nom');
    [this.profession, this.professionField] = input('search-profession', 'Profession');
    [this.city, this.cityField] = input('search-city', 'Ville');
    this.status = h('p', { class: 'search-status', role: 'status' });
    this.results = h('ul', { class: 'results', 'aria-label': 'Résultats' });
    this.more = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => this.#search(true) }, 'Plus de résultats');
    this.form = h('form', { class: 'search-form', role: 'search', onsubmit: (event) => { event.preventDefault(); this.#search(false); } },
      this.qField, this.professionField, this.cityField,
      h('button', { type: 'submit', class: 'primary' }, 'Rechercher'));
    this.direct = h('input', { id: 'direct-username', name: 'username', autocapitalize: 'none', spellcheck: 'false' });
    this.directError = h('p', { class: 'form-error', role: 'alert', hidden: true });
    this.directForm = h('form', { class: 'direct-form', onsubmit: (event) => this.#openDirect(event) },
      h('div', { class: 'field' }, h('label', { for: 'direct-username' }, 'Écrire à un identifiant'), this.direct,
        h('p', { class: 'hint' }, 'Pour un correspondant sur liste rouge, qui n’apparaît pas dans l’annuaire.')),
      this.directError,
      h('button', { type: 'submit', class: 'secondary' }, 'Ouvrir la conversation'));
    this.element = h('section', { class: 'search', 'aria-labelledby': 'search-title' },
      h('h2', { id: 'search-title' }, 'Annuaire des professionnels'),
      this.form, this.status, this.results, this.more,
      h('hr'), this.directForm);
  }

  focus() {
    this.q.focus();
  }

  async #search(more) {
    if (!more) {
      this.cursor = null;
      clear(this.results);
    }
    this.status.textContent = 'Recherche…';
    try {
      const page = await this.client.searchDirectory({
        q: this.q.value.trim(), profession: this.profession.value.trim(), city: this.city.value.trim(),
        limit: 20, cursor: more ? this.cursor : null,
      });
      for (const entry of page.results) this.results.append(this.#result(entry));
      this.cursor = page.next;
      this.more.hidden = !page.next;
      const count = this.results.children.length;
      this.status.textContent = count === 0 ? 'Aucun professionnel ne correspond.' : `${count} résultat${count > 1 ? 's' : ''}.`;
    } catch (error) {
      this.status.textContent = userMessage(error);
    }
  }

  #result(entry) {
    const { user, profile } = entry;
    return h('li', { class: 'result', dataset: { user } },
      h('div', {},
        h('p', { class: 'name' }, profile.display_name),
        h('p', { class: 'sub' }, describe(profile) || `@${user}`),
        profile.rpps ? h('p', { class: 'sub' }, `${profile.rpps.length === 11 ? 'RPPS' : 'ADELI'} ${profile.rpps}`) : null),
      h('button', {
        type: 'button', class: 'primary', 'aria-label': `Écrire à ${profile.display_name}`,
        onclick: () => {
          this.client.rememberProfile(user, profile);
          this.actions.open(user);
        },
      }, 'Écrire'));
  }

  async #openDirect(event) {
    event.preventDefault();
    this.directError.hidden = true;
    const username = this.direct.value.trim().toLowerCase();
    try {
      if (!USERNAME.test(username)) throw new LienError('invalid-username');
      const found = await this.client.api.profile(username);
      this.client.rememberProfile(username, found.profile);
      this.actions.open(username);
    } catch (error) {
      this.directError.textContent = userMessage(error);
      this.directError.hidden = false;
    }
  }
}
