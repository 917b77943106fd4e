/**
 * Small DOM helpers: build elements without innerHTML (text is always text, never markup),
 * announce to screen readers, format times the French way.
 */

/**
 * `h('button', {class: 'primary', onclick: fn, 'aria-label': '…'}, 'text', child)`.
 * Attributes starting with `on` become listeners; `null`/`false` attributes are left out.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

export function clear(element) {
  while (element.firstChild) element.firstChild.remove();
  return element;
}

/** Say `text` through the polite live region (new messages, connection changes). */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A fresh text node in a later task is what screen readers reliably pick up.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

const timeFormat = new Intl.DateTimeFormat('fr-FR', { hour: '2-digit', minute: '2-digit' });
const dateFormat = new Intl.DateTimeFormat('fr-FR', { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

/** "14:05" today, "3 janv., 14:05" otherwise. */
export function formatTime(ms) {
  if (!ms) return '';
  const date = new Date(ms);
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeFormat.format(date) : dateFormat.format(date);
}

/** The name shown for a user: the profile's display name, else the username. */
export function displayName(client, username) {
  return client.profileOf(username)?.display_name || username;
}

/** "Médecin généraliste · Lyon": what helps tell two namesakes apart. */
export function describe(profile) {
  if (!profile) return '';
  return [profile.profession, profile.organisation, profile.city].filter(Boolean).join(' · ');
}
