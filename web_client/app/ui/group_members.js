/**
 * A group's members and their roles, and what one's role allows (docs/protocol.md §4.6):
 * the owner and admins add members and rename the group; the owner removes anyone and names
 * or demotes admins; admins remove plain members; anyone may leave. The server has the last
 * word: a refusal (`role-required`…) is shown in plain words. Removing someone takes a
 * confirmation; so does leaving.
 */
import { ROLE_LABELS } from '../group_events.js';
import { userMessage } from '../errors.js';
import { clear, displayName, h } from './dom.js';
import { MemberPicker } from './member_picker.js';

const MANAGERS = new Set(['owner', 'admin']);

export class GroupMembersView {
  /**
   * @param {import('../client.js').Client} client
   * @param {string} groupId
   * @param {{back: () => void, left: () => void}} actions `back` to the group, `left` once one left it
   */
  constructor(client, groupId, actions) {
    this.client = client;
    this.peer = groupId;
    this.actions = actions;
    this.confirming = null;
    this.title = h('h2', { id: 'members-title', class: 'grow', tabindex: '-1' });
    this.status = h('p', { class: 'form-error', role: 'alert', hidden: true });
    this.done = h('p', { class: 'ok', role: 'status' });
    this.body = h('div', { class: 'panel-body' });
    this.role = h('select', { id: 'member-role' },
      h('option', { value: 'member' }, ROLE_LABELS.member),
      h('option', { value: 'admin' }, ROLE_LABELS.admin));
    this.picker = new MemberPicker(client, {
      id: 'group-add',
      excluded: () => new Set(client.groups.record(groupId)?.members ?? []),
      onPick: (user) => this.#run(() => client.teams.addMember(groupId, user, this.role.value),
        `${displayName(client, user)} a été ajouté au groupe.`),
    });
    this.rename = h('input', { id: 'group-rename', maxlength: '128', autocomplete: 'off' });
    this.element = h('section', { class: 'panel group-members', 'aria-labelledby': 'members-title' },
      h('header', { class: 'conversation-header' },
        this.title,
        h('button', { type: 'button', class: 'secondary', onclick: () => actions.back() }, 'Retour au groupe')),
      this.body);
    this.refresh();
  }

  get #record() {
    return this.client.groups.record(this.peer);
  }

  refresh() {
    const record = this.#record;
    const mine = record?.roles[this.client.username] ?? null;
    this.title.textContent = `Membres du groupe « ${record?.name ?? ''} »`;
    clear(this.body).append(
      record?.active === false
        ? h('p', { class: 'notice' }, 'Vous ne faites plus partie de ce groupe.')
        : h('p', {}, 'Votre rôle : ', h('strong', { class: 'my-role' }, ROLE_LABELS[mine] ?? '—'), '. ',
          MANAGERS.has(mine) ? '' : 'Seuls le propriétaire et les administrateurs modifient le groupe.'),
      this.done,
      this.status,
      h('ul', { class: 'members', 'aria-label': 'Membres' }, (record?.members ?? []).map((user) => this.#member(user, mine))),
      record?.active !== false && MANAGERS.has(mine) ? this.#manage(record) : null,
      record?.active !== false ? this.#leave() : null);
  }

  #member(user, mine) {
    const record = this.#record;
    const role = record.roles[user] ?? 'member';
    const me = user === this.client.username;
    const name = me ? `${displayName(this.client, user)} (vous)` : displayName(this.client, user);
    const actions = [];
    if (!me && mine === 'owner') {
      actions.push(role === 'admin'
        ? this.#button(`Retirer le rôle d’administrateur à ${name}`, 'Retirer le rôle d’administrateur',
          () => this.client.teams.changeRole(this.peer, user, 'member'), `${name} est maintenant membre.`)
        : this.#button(`Nommer ${name} administrateur`, 'Nommer administrateur',
          () => this.client.teams.changeRole(this.peer, user, 'admin'), `${name} est maintenant administrateur.`));
    }
    if (!me && (mine === 'owner' || (mine === 'admin' && role === 'member'))) {
      actions.push(this.confirming === user
        ? h('span', { class: 'confirm' },
          this.#button(`Confirmer le retrait de ${name}`, 'Confirmer le retrait',
            () => this.client.teams.removeMember(this.peer, user), `${name} a été retiré du groupe.`, 'primary danger'),
          h('button', { type: 'button', class: 'link', onclick: () => { this.confirming = null; this.refresh(); } }, 'Annuler'))
        : h('button', {
          type: 'button', class: 'secondary small', 'aria-label': `Retirer ${name} du groupe`,
          onclick: () => { this.confirming = user; this.refresh(); },
        }, 'Retirer'));
    }
    return h('li', { class: 'member', dataset: { user, role } },
      h('div', {},
        h('p', { class: 'name' }, name),
        h('p', { class: 'sub' }, `@${user} · `, h('span', { class: `role role-${role}` }, ROLE_LABELS[role] ?? role))),
      h('div', { class: 'actions' }, actions));
  }

  #button(label, text, action, success, kind = 'secondary small') {
    return h('button', { type: 'button', class: kind, 'aria-label': label, onclick: () => this.#run(action, success) }, text);
  }

  #manage(record) {
    this.rename.value = record.name;
    return h('div', { class: 'manage' },
      h('h3', {}, 'Ajouter un membre'),
      h('div', { class: 'field' }, h('label', { for: 'member-role' }, 'Rôle du nouveau membre'), this.role,
        h('p', { class: 'hint' }, 'Seul le propriétaire nomme des administrateurs.')),
      this.picker.element,
      h('h3', {}, 'Renommer le groupe'),
      h('form', {
        class: 'picker-row',
        onsubmit: (event) => {
          event.preventDefault();
          const name = this.rename.value.trim();
          if (name) this.#run(() => this.client.teams.rename(this.peer, name), 'Le groupe a été renommé.');
        },
      },
      h('div', { class: 'field' }, h('label', { for: 'group-rename' }, 'Nouveau nom'), this.rename),
      h('button', { type: 'submit', class: 'secondary' }, 'Renommer')));
  }

  #leave() {
    if (this.confirming === '\0leave') {
      return h('div', { class: 'leave' },
        h('p', {}, 'Vous ne recevrez plus les messages de ce groupe.'),
        h('button', {
          type: 'button', class: 'primary danger', onclick: async () => {
            await this.#run(() => this.client.teams.leave(this.peer), 'Vous avez quitté le groupe.');
            if (this.#record?.active === false) this.actions.left();
          },
        }, 'Confirmer : quitter le groupe'),
        h('button', { type: 'button', class: 'link', onclick: () => { this.confirming = null; this.refresh(); } }, 'Annuler'));
    }
    return h('div', { class: 'leave' },
      h('button', { type: 'button', class: 'secondary', onclick: () => { this.confirming = '\0leave'; this.refresh(); } }, 'Quitter le groupe'));
  }

  /** Run a change; show the server's refusal in plain words, or what was done. */
  async #run(action, success) {
    this.status.hidden = true;
    this.done.textContent = '';
    try {
      await action();
      this.confirming = null;
      this.refresh();
      this.done.textContent = success;
    } catch (error) {
      this.confirming = null;
      this.refresh();
      this.status.textContent = userMessage(error);
      this.status.hidden = false;
    }
  }

  focus() {
    this.title.focus();
  }
}
