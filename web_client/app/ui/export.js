/**
 * "Exporter mon historique": this account's audit export over a period (GET /v1/me/export),
 * as a CSV file to download or as a printable table. Metadata only — message ids, who,
 * when accepted, delivered, decrypted, read — never a message's text: the server never had it.
 *
 * The printable view is rebuilt here, as text, from the server's HTML export (the page's
 * Content-Security-Policy would block that document's own styles, and nothing from the
 * server is inserted as markup); then the browser's print dialog prints it alone.
 */
import { userMessage } from '../errors.js';
import { clear, h } from './dom.js';

const DEFAULT_MONTHS = 3;
const COLUMN_LABELS = Object.freeze({
  message: 'Message (identifiant)',
  accepted_at: 'Accepté par le serveur',
  direction: 'Sens',
  sender: 'Expéditeur',
  sender_device: 'Appareil',
  conversation: 'Conversation',
  recipient: 'Destinataire',
  delivered_at: 'Distribué',
  decrypted_at: 'Déchiffré',
  read_at: 'Lu',
  decrypt_failed_at: 'Échec de déchiffrement',
});
const DIRECTIONS = Object.freeze({ sent: 'envoyé', received: 'reçu' });

/** `YYYY-MM-DD` of a local date. */
export function isoDay(date) {
  const pad = (value) => String(value).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** The default period: the last three months, today included. */
export function defaultPeriod(today = new Date()) {
  const from = new Date(today);
  from.setMonth(from.getMonth() - DEFAULT_MONTHS);
  return { from: isoDay(from), to: isoDay(today) };
}

/** The day after `YYYY-MM-DD`: the server's `to` is the start of that day, so the chosen last day is included. */
export function dayAfter(day) {
  const [year, month, date] = day.split('-').map(Number);
  return isoDay(new Date(year, month - 1, date + 1));
}

/**
 * The table of the server's HTML export, as text: `{columns, rows}`.
 * @param {string} html
 */
export function exportTable(html) {
  const page = new DOMParser().parseFromString(html, 'text/html');
  const columns = [...page.querySelectorAll('thead th')].map((cell) => cell.textContent.trim().replaceAll(' ', '_'));
  const rows = [...page.querySelectorAll('tbody tr')].map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent));
  return { columns, rows };
}

function cellText(column, value) {
  if (column === 'direction') return DIRECTIONS[value] ?? value;
  if (column === 'conversation') return value === 'one to one' ? 'individuelle' : value.replace(/^group /, 'groupe ');
  if (column.endsWith('_at')) return value.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return value;
}

export class ExportSection {
  /** @param {import('../client.js').Client} client */
  constructor(client) {
    this.client = client;
    const period = defaultPeriod();
    this.from = h('input', { id: 'export-from', type: 'date', value: period.from, max: period.to, required: true });
    this.to = h('input', { id: 'export-to', type: 'date', value: period.to, max: period.to, required: true });
    this.status = h('p', { class: 'search-status', role: 'status' });
    this.printable = h('div', { class: 'printable', hidden: true });
    this.element = h('section', { class: 'account-section', 'aria-labelledby': 'export-title' },
      h('h3', { id: 'export-title' }, 'Exporter mon historique'),
      h('p', { class: 'hint' }, 'Pour un audit : les messages envoyés et reçus sur la période, avec les heures d’acceptation par le serveur, '
        + 'de distribution, de déchiffrement et de lecture, attestées par les accusés signés des appareils. '
        + 'Aucun contenu de message : chiffrés de bout en bout, le serveur ne les a jamais eus.'),
      h('div', { class: 'picker-row' },
        h('div', { class: 'field' }, h('label', { for: 'export-from' }, 'Du'), this.from),
        h('div', { class: 'field' }, h('label', { for: 'export-to' }, 'Au (inclus)'), this.to)),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'primary', onclick: () => this.#download() }, 'Télécharger (CSV)'),
        h('button', { type: 'button', class: 'secondary', onclick: () => this.#showPrintable() }, 'Version imprimable')),
      this.status,
      this.printable);
  }

  /** The chosen period as the server wants it, or null (with the reason shown). */
  #period() {
    const from = this.from.value;
    const to = this.to.value;
    if (!from || !to || from > to) {
      this.status.textContent = 'Choisissez une période : la date de début doit précéder la date de fin.';
      return null;
    }
    return { from, to, query: { from, to: dayAfter(to) } };
  }

  async #download() {
    const period = this.#period();
    if (!period) return;
    this.status.textContent = 'Préparation de l’export…';
    try {
      const blob = await this.client.api.exportHistory({ ...period.query, format: 'csv' });
      const url = URL.createObjectURL(blob);
      const link = h('a', { href: url, download: `lien-historique-${period.from}-${period.to}.csv`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      this.status.textContent = 'Export téléchargé (CSV).';
    } catch (error) {
      this.status.textContent = userMessage(error);
    }
  }

  async #showPrintable() {
    const period = this.#period();
    if (!period) return;
    this.status.textContent = 'Préparation de la version imprimable…';
    try {
      const blob = await this.client.api.exportHistory({ ...period.query, format: 'html' });
      const { columns, rows } = exportTable(await blob.text());
      const messages = new Set(rows.map((row) => row[columns.indexOf('message')])).size;
      clear(this.printable).append(
        h('h3', {}, `Historique de ${this.client.username}, du ${period.from} au ${period.to}`),
        h('p', {}, `${messages} message${messages > 1 ? 's' : ''}. Heures du serveur, en UTC. Aucun contenu de message.`),
        h('button', { type: 'button', class: 'secondary no-print', onclick: () => window.print() }, 'Imprimer'),
        h('div', { class: 'table-scroll' },
          h('table', { class: 'export-table' },
            h('thead', {}, h('tr', {}, columns.map((column) => h('th', { scope: 'col' }, COLUMN_LABELS[column] ?? column)))),
            h('tbody', {}, rows.map((row) => h('tr', {}, row.map((value, index) => h('td', {}, cellText(columns[index], value)))))))));
      this.printable.hidden = false;
      this.status.textContent = 'Version imprimable prête.';
    } catch (error) {
      this.status.textContent = userMessage(error);
    }
  }
}
