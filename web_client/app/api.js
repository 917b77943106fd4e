/**
 * The HTTP half of the client: accounts, directory, key directory, receipts (docs/protocol.md §4).
 *
 * The token travels only in the `Authorization` header (§2.3). Server errors come back as
 * a `LienError` with the server's code; an unreachable server as code `network`.
 */
import { LienError, NETWORK_ERROR } from './errors.js';

export class Api {
  /** @param {string} baseUrl @param {string|null} [token] */
  constructor(baseUrl, token = null) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.token = token;
  }

  async call(method, path, body = undefined) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let response;
    try {
      response = await fetch(this.baseUrl + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store',
        credentials: 'omit',
      });
    } catch {
      throw new LienError(NETWORK_ERROR, 'The server cannot be reached.');
    }
    if (response.status === 204) return null;
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const error = parsed?.error;
      if (error && typeof error.code === 'string') {
        throw new LienError(error.code, error.message, error.details ?? null, error.retry_after ?? null);
      }
      throw new LienError(response.status >= 500 ? 'internal-error' : 'invalid-request', `HTTP ${response.status}`);
    }
    return parsed;
  }

  register(request) {
    return this.call('POST', '/v1/register', request);
  }

  login(request) {
    return this.call('POST', '/v1/login', request);
  }

  logout() {
    return this.call('POST', '/v1/logout');
  }

  me() {
    return this.call('GET', '/v1/me');
  }

  updateProfile(update) {
    return this.call('PATCH', '/v1/me', update);
  }

  profile(username) {
    return this.call('GET', `/v1/users/${encodeURIComponent(username)}`);
  }

  /** @param {{q?: string, profession?: string, organisation?: string, city?: string, limit?: number, cursor?: string}} query */
  searchDirectory(query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== '') params.set(name, String(value));
    }
    return this.call('GET', `/v1/directory?${params}`);
  }

  devices(username) {
    return this.call('GET', `/v1/users/${encodeURIComponent(username)}/devices`);
  }

  claimKeys(username, devices = null) {
    return this.call('POST', `/v1/users/${encodeURIComponent(username)}/keys/claim`, devices ? { devices } : undefined);
  }

  uploadPrekeys(prekeys) {
    return this.call('POST', '/v1/devices/self/prekeys', { prekeys });
  }

  receipts(messageId) {
    return this.call('GET', `/v1/messages/${encodeURIComponent(messageId)}/receipts`);
  }
}
