/**
 * The safety number of a correspondent (docs/protocol-crypto.md §3.10): 60 digits both
 * users see when nobody came between them. Compared out of band, it proves that the keys
 * this browser encrypts to are the correspondent's own devices.
 */
import { userMessage } from '../errors.js';
import { displayName, h } from './dom.js';

export async function renderSafety(client, peer, { back }) {
  const name = displayName(client, peer);
  const body = h('div', { class: 'safety-body', 'aria-live': 'polite' }, h('p', {}, 'Calcul…'));
  const element = h('section', { class: 'safety', 'aria-labelledby': 'safety-title' },
    h('header', { class: 'conversation-header' },
      h('h2', { id: 'safety-title', class: 'grow' }, `Numéro de sécurité avec ${name}`),
      h('button', { type: 'button', class: 'secondary', onclick: back }, 'Retour à la conversation')),
    body);
  queueMicrotask(async () => {
    try {
      const number = await client.safetyNumber(peer);
      const change = client.directory.pendingChange(peer);
      body.replaceChildren(
        h('p', {}, `Comparez ce numéro avec celui que ${name} voit dans Lien, de vive voix ou par téléphone. `
          + 'S’ils sont identiques, personne ne s’est interposé entre vous.'),
        h('p', { class: 'safety-number', 'aria-label': `Numéro de sécurité : ${number.groups().join(' ')}` },
          ...number.groups().map((group) => h('span', {}, group))),
        change
          ? h('div', { class: 'identity-warning', role: 'alert' },
            h('p', {}, 'Les appareils de ce correspondant ont changé depuis votre dernière vérification.'),
            h('button', {
              type: 'button', class: 'primary', onclick: async () => {
                await client.acceptIdentity(peer);
                back();
              },
            }, 'J’ai vérifié'))
          : h('p', { class: 'ok' }, 'Aucun changement d’appareil en attente de vérification.'));
    } catch (error) {
      body.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, userMessage(error)));
    }
  });
  return element;
}
