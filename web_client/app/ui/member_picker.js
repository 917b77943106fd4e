/**
 * Choosing colleagues for a group: search the directory by name (GET /v1/directory), or give
 * a username (colleagues on the "liste rouge" are not in the directory). Each choice goes to
 * `onPick(username, profile)`; the caller decides what it means (add to a list, add to the group).
 */
import { LienError, userMessage } from '../errors.js';
import { clear, describe, h } from './dom.js';

const USERNAME = /^[a-z0-9][a-z0-9._-]{2,31}$/;

export class MemberPicker {
  /**
   * @param {import('../client.js').Client} client
   * @param {{id: string, onPick: (username: string, profile: object) => Promise<void> | void,
   *   excluded: () => Set<string>}} options `id` prefixes the element ids; `excluded` usernames are not offered
   */
  constructor(client, { id, onPick, excluded }) {
    this.client = client;
    this.onPick = onPick;
    this.excluded = excluded;
    this.query = h('input', { id: `${id}-search`, type: 'search', autocomplete: 'off' });
    this.results = h('ul', { class: 'results compact', 'aria-label': 'Confrères trouvés' });
    this.status = h('p', { class: 'search-status', role: 'status' });
    this.username = h('input', { id: `${id}-username`, autocapitalize: 'none', spellcheck: 'false' });
    this.error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    this.element = h('div', { class: 'member-picker' },
      h('div', { class: 'picker-row' },
        h('div', { class: 'field' }, h('label', { for: this.query.id }, 'Rechercher un confrère'), this.query),
        h('button', { type: 'button', class: 'secondary', onclick: () => this.#search() }, 'Chercher')),
      this.status,
      this.results,
      h('div', { class: 'picker-row' },
        h('div', { class: 'field' },
          h('label', { for: this.username.id }, 'Ou son identifiant'),
          this.username,
          h('p', { class: 'hint' }, 'Pour un confrère sur liste rouge, absent de l’annuaire.')),
        h('button', { type: 'button', class: 'secondary', onclick: () => this.#pickUsername() }, 'Ajouter cet identifiant')),
      this.error);
    this.query.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        this.#search();
      }
    });
    this.username.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        this.#pickUsername();
      }
    });
  }

  async #search() {
    this.error.hidden = true;
    clear(this.results);
    this.status.textContent = 'Recherche…';
    try {
      const page = await this.client.searchDirectory({ q: this.query.value.trim(), limit: 10 });
      const excluded = this.excluded();
      const found = page.results.filter((entry) => !excluded.has(entry.user));
      for (const entry of found) this.results.append(this.#result(entry));
      this.status.textContent = found.length ? `${found.length} résultat${found.length > 1 ? 's' : ''}.` : 'Aucun professionnel ne correspond.';
    } catch (error) {
      this.status.textContent = userMessage(error);
    }
  }

  #result({ user, profile }) {
    return h('li', { class: 'result', dataset: { user } },
      h('div', {},
        h('p', { class: 'name' }, profile.display_name),
        h('p', { class: 'sub' }, describe(profile) || `@${user}`)),
      h('button', {
        type: 'button', class: 'primary small', 'aria-label': `Ajouter ${profile.display_name}`,
        onclick: async (event) => {
          this.client.rememberProfile(user, profile);
          event.currentTarget.closest('li')?.remove();
          if (!this.results.children.length) this.status.textContent = '';
          await this.#pick(user, profile);
        },
      }, 'Ajouter'));
  }

  async #pickUsername() {
    this.error.hidden = true;
    const username = this.username.value.trim().toLowerCase();
    try {
      if (!USERNAME.test(username)) throw new LienError('invalid-username');
      if (this.excluded().has(username)) throw new LienError('already-member');
      const found = await this.client.api.profile(username);
      this.client.rememberProfile(username, found.profile);
      this.username.value = '';
      await this.#pick(username, found.profile);
    } catch (error) {
      this.showError(error);
    }
  }

  async #pick(username, profile) {
    try {
      await this.onPick(username, profile);
    } catch (error) {
      this.showError(error);
    }
  }

  /** Show an error in plain words under the picker. */
  showError(error) {
    this.error.textContent = userMessage(error);
    this.error.hidden = false;
  }
}
