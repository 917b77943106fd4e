/**
 * Creating a care-team group: its name and its members, chosen from the directory (or by
 * username). The creator becomes its owner; every member sees the group at once.
 */
import { LienError, userMessage } from '../errors.js';
import { clear, describe, displayName, h } from './dom.js';
import { MemberPicker } from './member_picker.js';

const MAX_NAME_CHARS = 128;

export class GroupCreateView {
  /**
   * @param {import('../client.js').Client} client
   * @param {{open: (groupId: string) => void, back: () => void}} actions
   */
  constructor(client, actions) {
    this.client = client;
    this.actions = actions;
    /** @type {Map<string, object>} username -> profile, in the order chosen */
    this.chosen = new Map();
    this.name = h('input', { id: 'group-name', required: true, maxlength: String(MAX_NAME_CHARS), autocomplete: 'off' });
    this.list = h('ul', { class: 'chosen', 'aria-label': 'Membres choisis', 'aria-live': 'polite' });
    this.picker = new MemberPicker(client, {
      id: 'group-create',
      excluded: () => new Set([client.username, ...this.chosen.keys()]),
      onPick: (user, profile) => {
        this.chosen.set(user, profile);
        this.#renderChosen();
      },
    });
    this.error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    this.submit = h('button', { type: 'submit', class: 'primary' }, 'Créer le groupe');
    this.form = h('form', { class: 'form group-form', novalidate: true, onsubmit: (event) => this.#create(event) },
      h('div', { class: 'field' },
        h('label', { for: 'group-name' }, 'Nom du groupe'),
        this.name,
        h('p', { class: 'hint' }, 'Par exemple « Mme Lefèvre — soins à domicile ». Tous les membres le voient.')),
      h('h3', {}, 'Membres'),
      h('p', { class: 'hint' }, 'Vous en êtes le propriétaire. Chaque message est chiffré une fois pour tous les appareils des membres.'),
      this.list,
      this.picker.element,
      this.error,
      this.submit);
    this.element = h('section', { class: 'panel group-create', 'aria-labelledby': 'group-create-title' },
      h('header', { class: 'conversation-header' },
        h('button', { type: 'button', class: 'icon back', 'aria-label': 'Retour aux conversations', onclick: () => actions.back() }, '←'),
        h('h2', { id: 'group-create-title', class: 'grow' }, 'Nouveau groupe de soins')),
      h('div', { class: 'panel-body' }, this.form));
    this.#renderChosen();
  }

  #renderChosen() {
    clear(this.list);
    if (!this.chosen.size) {
      this.list.append(h('li', { class: 'empty' }, 'Aucun membre choisi pour l’instant.'));
      return;
    }
    for (const [user, profile] of this.chosen) {
      const name = displayName(this.client, user);
      this.list.append(h('li', { class: 'chip', dataset: { user } },
        h('span', {}, name, h('span', { class: 'sub' }, ` ${describe(profile) || `@${user}`}`)),
        h('button', {
          type: 'button', class: 'link', 'aria-label': `Retirer ${name} de la liste`,
          onclick: () => {
            this.chosen.delete(user);
            this.#renderChosen();
          },
        }, 'Retirer')));
    }
  }

  async #create(event) {
    event.preventDefault();
    this.error.hidden = true;
    const name = this.name.value.trim();
    try {
      if (!name) throw new LienError('group-name-required');
      this.submit.disabled = true;
      const groupId = await this.client.teams.create(name, [...this.chosen.keys()]);
      this.actions.open(groupId);
    } catch (error) {
      this.error.textContent = userMessage(error);
      this.error.hidden = false;
      this.submit.disabled = false;
    }
  }

  focus() {
    this.name.focus();
  }
}
