/**
 * The message composer of a conversation (one to one or group): the text area, Enter to
 * send (Shift+Enter for a new line), and the typing notice — sent once when the user starts,
 * and "stopped" after a pause or when the message goes.
 */
import { h } from './dom.js';

const TYPING_IDLE_MS = 4000;

export class Composer {
  /**
   * @param {{label: string, onSend: (text: string) => Promise<unknown>, onTyping: (active: boolean) => void}} options
   *   `label` names the text area for screen readers ("Message à …")
   */
  constructor({ label, onSend, onTyping }) {
    this.onSend = onSend;
    this.onTyping = onTyping;
    this.typingTimer = null;
    this.typingSent = false;
    this.input = h('textarea', {
      id: 'composer-input', rows: '2', maxlength: '20000', placeholder: 'Écrire un message…', 'aria-label': label,
      oninput: () => this.#typed(),
      onkeydown: (event) => {
        if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this.element.requestSubmit();
        }
      },
    });
    this.sendButton = h('button', { type: 'submit', class: 'primary' }, 'Envoyer');
    this.element = h('form', { class: 'composer', 'aria-label': 'Nouveau message', onsubmit: (event) => this.#submit(event) },
      this.input, this.sendButton);
  }

  /** Disable or enable typing and sending (a device change to confirm, a group left…). */
  set disabled(value) {
    this.input.disabled = value;
    this.sendButton.disabled = value;
  }

  get disabled() {
    return this.input.disabled;
  }

  #typed() {
    if (!this.typingSent && this.input.value.trim()) {
      this.onTyping(true);
      this.typingSent = true;
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (this.typingSent) this.onTyping(false);
    this.typingSent = false;
  }

  async #submit(event) {
    event.preventDefault();
    const text = this.input.value;
    if (!text.trim()) return;
    this.input.value = '';
    this.stopTyping();
    await this.onSend(text);
    this.input.focus();
  }

  focus() {
    if (!this.input.disabled) this.input.focus();
  }

  destroy() {
    this.stopTyping();
  }
}
