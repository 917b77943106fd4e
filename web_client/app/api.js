/**
 * The HTTP half of the client: accounts and devices, directory, key directory, receipts,
 * care-team groups, the audit export (docs/protocol.md §4).
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

  /** The raw response of a request (a `LienError` with code `network` when unreachable). */
  async #fetch(method, path, body, accept) {
    const headers = { accept };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    try {
      return await fetch(this.baseUrl + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store',
        credentials: 'omit',
      });
    } catch {
      throw new LienError(NETWORK_ERROR, 'The server cannot be reached.');
    }
  }

  async call(method, path, body = undefined) {
    const response = await this.#fetch(method, path, body, 'application/json');
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

  // --- this account's devices

  /** `{devices: [{device, name, created_at, current}]}`. */
  myDevices() {
    return this.call('GET', '/v1/devices');
  }

  /**
   * Sign a device of this account out for good (a lost phone): its sessions, keys and inbox go.
   * The account's password is asked again (`invalid-password` otherwise).
   */
  removeDevice(deviceId, password) {
    return this.call('DELETE', `/v1/devices/${encodeURIComponent(deviceId)}`, { password });
  }

  // --- care-team groups (§4.6): each change answers the group as it is after it (`GroupInfo`)

  groups() {
    return this.call('GET', '/v1/groups');
  }

  group(groupId) {
    return this.call('GET', `/v1/groups/${encodeURIComponent(groupId)}`);
  }

  createGroup(name, members) {
    return this.call('POST', '/v1/groups', { name, members });
  }

  renameGroup(groupId, name) {
    return this.call('PATCH', `/v1/groups/${encodeURIComponent(groupId)}`, { name });
  }

  /** @param {'admin' | 'member'} role */
  addMember(groupId, user, role = 'member') {
    return this.call('POST', `/v1/groups/${encodeURIComponent(groupId)}/members`, { user, role });
  }

  removeMember(groupId, user) {
    return this.call('DELETE', `/v1/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(user)}`);
  }

  /** @param {'owner' | 'admin' | 'member'} role `owner` hands the ownership over */
  changeRole(groupId, user, role) {
    return this.call('PUT', `/v1/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(user)}`, { role });
  }

  leaveGroup(groupId) {
    return this.call('POST', `/v1/groups/${encodeURIComponent(groupId)}/leave`);
  }

  // --- audit export

  /**
   * This account's audit export over a period (`GET /v1/me/export`): metadata only, no
   * message text. `from` and `to` are `YYYY-MM-DD` (UTC midnight; `to` is exclusive).
   * @param {{from: string, to: string, format: 'csv' | 'html'}} query
   * @returns {Promise<Blob>}
   */
  async exportHistory({ from, to, format }) {
    const params = new URLSearchParams({ from, to, format });
    const response = await this.#fetch('GET', `/v1/me/export?${params}`, undefined, format === 'csv' ? 'text/csv' : 'text/html');
    if (!response.ok) {
      let error = null;
      try {
        error = (await response.json())?.error;
      } catch {
        error = null;
      }
      throw new LienError(typeof error?.code === 'string' ? error.code : 'invalid-request', error?.message ?? `HTTP ${response.status}`);
    }
    return response.blob();
  }
}
