/**
 * The WebSocket of one device, and reconnecting it (docs/protocol.md §2.2, §7.1, §7.2).
 *
 * Thin I/O around `ClientProtocol`: open the socket, send the `auth` frame first, hand
 * every frame to the client one at a time in arrival order, and reconnect after a loss
 * with capped, jittered backoff. Each socket has a generation number: frames of a
 * socket already given up are dropped unhandled (the server pushes them again), so a
 * late frame can never be acked on the next connection.
 */
import { Backoff, wsUrl } from './protocol.js';

export class Connection {
  #generation = 0;
  #frames = Promise.resolve();
  #backoff = new Backoff();
  #closed = true;
  #retryTimer = null;
  #socket = null;

  /**
   * @param {string} baseUrl
   * @param {{auth: () => string, onFrame: (data: string, generation: number) => Promise<void>,
   *   onState: (state: string) => void, onLost: (code: number | null) => string | null}} handlers
   *   `onLost` returns null to reconnect, or the final state (`signed-out`, `replaced`) to stop.
   */
  constructor(baseUrl, handlers) {
    this.url = wsUrl(baseUrl);
    this.handlers = handlers;
    this.state = 'offline';
  }

  get generation() {
    return this.#generation;
  }

  open() {
    this.#closed = false;
    this.#connect();
  }

  #setState(state) {
    this.state = state;
    this.handlers.onState(state);
  }

  #connect() {
    if (this.#closed) return;
    const generation = ++this.#generation;
    this.#setState('connecting');
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    socket.onopen = () => {
      if (generation === this.#generation) socket.send(this.handlers.auth()); // the token never goes in the URL
    };
    socket.onmessage = (event) => {
      this.#frames = this.#frames
        .then(() => (generation === this.#generation ? this.handlers.onFrame(event.data, generation) : undefined))
        .catch((error) => {
          console.warn('lien: frame handling failed', error?.code ?? error?.name);
          this.drop(generation);
        });
    };
    socket.onclose = (event) => {
      if (generation === this.#generation) this.#lost(event.code);
    };
  }

  /** The server said `ready`: sends may go out, and the next loss starts the backoff over. */
  ready() {
    this.#backoff.reset();
    this.#setState('ready');
  }

  /** Give up socket `generation` without handling what it still brings (it comes again). */
  drop(generation) {
    if (generation !== this.#generation) return;
    const socket = this.#socket;
    this.#lost(null);
    try {
      socket?.close();
    } catch {
      // already closed
    }
  }

  #lost(code) {
    this.#generation += 1;
    this.#socket = null;
    const final = this.handlers.onLost(code);
    if (this.#closed) return;
    if (final) {
      this.#closed = true;
      this.#setState(final);
      return;
    }
    this.#setState('offline');
    this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    if (this.#closed || this.#retryTimer !== null) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#connect();
    }, this.#backoff.next());
  }

  /** Try now (the browser came back online, or the user asked). */
  reconnectNow() {
    if (this.state === 'ready' || this.state === 'connecting') return;
    this.#closed = false;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#backoff.reset();
    this.#connect();
  }

  /** Write now if ready; false otherwise (the caller queues, or relies on the resend after `ready`). */
  write(data) {
    if (this.state !== 'ready' || !this.#socket || this.#socket.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(data);
    return true;
  }

  close() {
    this.#closed = true;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#generation += 1;
    const socket = this.#socket;
    this.#socket = null;
    try {
      socket?.close(1000);
    } catch {
      // already closed
    }
    this.#setState('closed');
  }
}
