/**
 * Device lists of correspondents, as the server lists them and as the user accepted them
 * (docs/protocol.md §7.4; the rules of `lien/sdk/directory.py` and `lien/sdk/trust.py`).
 *
 * Trust on first use: the first device list seen for a user is accepted. A later list
 * with a device added, or a device's keys replaced, is a change the user must look at:
 * it is kept in the keystore (`identity_changes`) and sending to that user waits until
 * the user compares safety numbers and confirms ("block" policy). A removed device only
 * updates the accepted set. For one's own account a change is reported, not blocking.
 */
import { concat, fromBase64, toBase64, u64 } from '../src/crypto/bytes.js';
import { PublicIdentity } from '../src/crypto/keys.js';
import { safetyNumber } from '../src/crypto/safety.js';
import { IdentityNotAccepted } from './e2e.js';

/** `device id (u64) || Ed25519 key || X25519 key` per device, sorted (lien/sdk/trust.py). */
export function encodeIdentities(identities) {
  const parts = [...identities.entries()]
    .sort(([a], [b]) => a - b)
    .map(([device, identity]) => concat(u64(BigInt(device)), identity.signingKey, identity.exchangeKey));
  return toBase64(concat(...parts));
}

export function decodeIdentities(encoded) {
  const data = fromBase64(encoded);
  const found = new Map();
  for (let start = 0; start + 72 <= data.length; start += 72) {
    const device = Number(new DataView(data.buffer, data.byteOffset + start, 8).getBigUint64(0));
    found.set(device, new PublicIdentity(data.slice(start + 8, start + 40), data.slice(start + 40, start + 72)));
  }
  return found;
}

/** How `current` differs from `accepted`: device ids added, removed, and replaced (same id, new keys). */
export function compare(accepted, current) {
  const added = [...current.keys()].filter((d) => !accepted.has(d)).sort((a, b) => a - b);
  const removed = [...accepted.keys()].filter((d) => !current.has(d)).sort((a, b) => a - b);
  const replaced = [...current.keys()]
    .filter((d) => accepted.has(d) && !accepted.get(d).equals(current.get(d)))
    .sort((a, b) => a - b);
  return { added, removed, replaced };
}

export class Directory {
  /** @param {import('./api.js').Api} api @param {import('./keystore.js').Keystore} keystore */
  constructor(api, keystore, report) {
    this.api = api;
    this.keystore = keystore;
    this.report = report;
    /** @type {Map<string, Map<number, PublicIdentity>>} */
    this.current = new Map();
  }

  /** The user's devices and identity keys, fetched when not cached or when `refresh`. */
  async devices(username, { refresh = false } = {}) {
    if (refresh || !this.current.has(username)) {
      const listing = await this.api.devices(username);
      const found = new Map();
      for (const device of listing.devices) {
        found.set(device.device, new PublicIdentity(
          fromBase64(device.identity_signing_key), fromBase64(device.identity_exchange_key),
        ));
      }
      this.current.set(username, found);
      this.#compareWithAccepted(username, found);
    }
    return this.current.get(username);
  }

  /** One device's identity, refreshing the list once if the device is unknown. */
  async identityOf(username, device) {
    let known = await this.devices(username);
    if (!known.has(device)) known = await this.devices(username, { refresh: true });
    return known.get(device) ?? null;
  }

  #compareWithAccepted(username, current) {
    const encoded = current.size ? encodeIdentities(current) : '';
    const accepted = this.keystore.trusted(username);
    const changes = this.keystore.data.identity_changes;
    if (accepted === null) {
      this.keystore.setTrusted(username, encoded); // trust on first use
      return;
    }
    if (accepted === encoded) {
      if (changes[username]) {
        delete changes[username];
        this.report({ user: username, change: null });
      }
      return;
    }
    const change = compare(decodeIdentities(accepted), current);
    const own = username === this.keystore.username;
    if (own || (!change.added.length && !change.replaced.length)) {
      if (!change.replaced.length) this.keystore.setTrusted(username, encoded);
      if (own && change.added.length) this.report({ user: username, change, own: true });
      if (!change.replaced.length) return;
    }
    const previous = changes[username];
    changes[username] = { ...change, seen_at: Date.now() };
    if (!previous || JSON.stringify(previous.added) !== JSON.stringify(change.added)
        || JSON.stringify(previous.replaced) !== JSON.stringify(change.replaced)) {
      this.report({ user: username, change });
    }
  }

  /** The change waiting for the user's confirmation, or null. */
  pendingChange(username) {
    return this.keystore.data.identity_changes[username] ?? null;
  }

  /** Throw IdentityNotAccepted while `username`'s devices changed and the user has not confirmed. */
  checkAccepted(username) {
    if (this.pendingChange(username)) throw new IdentityNotAccepted();
  }

  /** The user compared safety numbers (or otherwise agrees): accept the current devices. */
  async accept(username) {
    const current = await this.devices(username, { refresh: true });
    this.keystore.setTrusted(username, encodeIdentities(current));
    delete this.keystore.data.identity_changes[username];
    this.report({ user: username, change: null });
  }

  /** The 60-digit number both users see (docs/protocol-crypto.md §3.10). */
  async safetyNumber(ownUsername, username) {
    const own = await this.devices(ownUsername, { refresh: true });
    const theirs = await this.devices(username, { refresh: true });
    return safetyNumber(ownUsername, own.values(), username, theirs.values());
  }
}
