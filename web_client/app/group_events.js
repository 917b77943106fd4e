/**
 * Group events in plain French: the system lines of a group conversation ("Dr Martin a
 * ajouté Claire Petit", "Claire Petit a quitté le groupe") and the names of roles.
 * Pure: names come from `nameOf(username)`; `me` is this user's username.
 */

/** What a role is called on screen. */
export const ROLE_LABELS = Object.freeze({ owner: 'Propriétaire', admin: 'Administrateur', member: 'Membre' });

const ROLE_WORDS = Object.freeze({ owner: 'propriétaire', admin: 'administrateur', member: 'membre' });

/**
 * The sentence for one `group_event` (its `event`, `actor`, `subject`, `name`, `role`).
 * @param {{event: string, actor: string, subject?: string | null, name?: string | null, role?: string | null}} event
 * @param {{me: string, nameOf: (username: string) => string}} context
 */
export function describeGroupEvent(event, { me, nameOf }) {
  const byMe = event.actor === me;
  const actor = byMe ? 'Vous' : nameOf(event.actor);
  const subject = event.subject ?? null;
  const aboutMe = subject === me;
  const who = subject === null ? '' : nameOf(subject);
  switch (event.event) {
    case 'created':
      return `${actor} ${byMe ? 'avez' : 'a'} créé le groupe « ${event.name ?? ''} »`;
    case 'member-added': {
      const as = event.role === 'admin' ? ' comme administrateur' : '';
      if (aboutMe) return `${actor} vous a ajouté au groupe${as}`;
      return `${actor} ${byMe ? 'avez' : 'a'} ajouté ${who}${as}`;
    }
    case 'member-removed':
      if (aboutMe) return `${actor} vous a retiré du groupe`;
      return `${actor} ${byMe ? 'avez' : 'a'} retiré ${who} du groupe`;
    case 'member-left':
      return aboutMe ? 'Vous avez quitté le groupe' : `${who} a quitté le groupe`;
    case 'renamed':
      return `${actor} ${byMe ? 'avez' : 'a'} renommé le groupe en « ${event.name ?? ''} »`;
    case 'role-changed': {
      const role = ROLE_WORDS[event.role] ?? event.role ?? '';
      return aboutMe ? `Vous êtes maintenant ${role} du groupe` : `${who} est maintenant ${role} du groupe`;
    }
    case 'devices-changed':
      return aboutMe
        ? 'Les appareils de votre compte ont changé : les clés du groupe sont renouvelées'
        : `Les appareils de ${who} ont changé : les clés du groupe sont renouvelées`;
    default:
      return 'Le groupe a changé';
  }
}
