/**
 * The device's keystore in IndexedDB, encrypted under the password (docs/protocol.md §3.16).
 *
 * One record per account in the `keystores` object store, holding the bytes of the
 * Python SDK's file layout:
 *
 *     "LIENKS" || version (1) || opslimit (u32 be) || memlimit (u64 be) || salt (16)
 *     || nonce (24) || XChaCha20-Poly1305-IETF ciphertext
 *
 * key = argon2id(password, salt, opslimit, memlimit) (libsodium's interactive costs),
 * the header is the associated data, a fresh nonce at every save. The plaintext here is
 * UTF-8 JSON (bytes as standard base64), this client's own encoding of the same contents
 * plus the conversation history, so a reload keeps keys, sessions and messages.
 *
 * Saving is one IndexedDB transaction (all or nothing). Saves are serialised: each
 * encrypts the state as it is when that save starts, so `await save()` after a change
 * means the change is on disk.
 */
import { sodium } from '../src/crypto/sodium.js';
import { concat, fromBase64, fromUtf8, toBase64, utf8 } from '../src/crypto/bytes.js';
import { KeystoreCorrupt, WrongPassword } from '../src/crypto/errors.js';
import { IdentityKeyPair, OneTimePrekeyPair, SignedPrekeyPair } from '../src/crypto/keys.js';
import { LienError } from './errors.js';

const DB_NAME = 'lien';
const DB_VERSION = 1;
const STORE = 'keystores';
const SETTINGS = 'settings';
const MAGIC = utf8('LIENKS');
const VERSION = 1;
const HEADER_SIZE = 6 + 1 + 4 + 8 + 16;
const NONCE_SIZE = 24;
export const SENT_KEPT = 1000;
export const SEEN_KEPT = 20_000;
export const HISTORY_KEPT = 1000;

function openDatabase() {
  return new Promise((resolve, reject) => {
    if (typeof indexedDB === 'undefined') {
      reject(new LienError('storage-unavailable'));
      return;
    }
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
      if (!db.objectStoreNames.contains(SETTINGS)) db.createObjectStore(SETTINGS);
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new LienError('storage-unavailable'));
  });
}

let databasePromise = null;
function database() {
  databasePromise ??= openDatabase();
  return databasePromise;
}

async function run(storeName, mode, action) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(storeName, mode);
    const request = action(transaction.objectStore(storeName));
    let result;
    request.onsuccess = () => {
      result = request.result;
    };
    transaction.oncomplete = () => resolve(result);
    transaction.onerror = () => reject(new LienError('storage-unavailable'));
    transaction.onabort = () => reject(new LienError('storage-unavailable'));
  });
}

/** The username last unlocked in this browser, to offer it at the next visit. */
export async function lastUsername() {
  return (await run(SETTINGS, 'readonly', (store) => store.get('last'))) ?? null;
}

async function setLastUsername(username) {
  await run(SETTINGS, 'readwrite', (store) => (username === null ? store.delete('last') : store.put(username, 'last')));
}

export async function keystoreExists(username) {
  return (await run(STORE, 'readonly', (store) => store.getKey(username))) !== undefined;
}

export async function destroyKeystore(username) {
  await run(STORE, 'readwrite', (store) => store.delete(username));
  if ((await lastUsername()) === username) await setLastUsername(null);
}

function header(opslimit, memlimit, salt) {
  const out = new Uint8Array(HEADER_SIZE);
  out.set(MAGIC, 0);
  out[6] = VERSION;
  const view = new DataView(out.buffer);
  view.setUint32(7, opslimit);
  view.setBigUint64(11, BigInt(memlimit));
  out.set(salt, 19);
  return out;
}

function deriveKey(password, salt, opslimit, memlimit) {
  return sodium.crypto_pwhash(
    32, utf8(password), salt, opslimit, memlimit, sodium.crypto_pwhash_ALG_ARGON2ID13,
  );
}

/** Every field the contents hold; fields added later get their default here, so older records still open. */
function emptyContents(username, serverUrl, identity = null) {
  const [seed, exchange] = identity ? identity.secretBytes().map(toBase64) : ['', ''];
  return {
    username,
    server_url: serverUrl,
    device_id: null,
    identity_seed: seed,
    identity_exchange: exchange,
    signed_prekeys: [],
    one_time_prekeys: {},
    next_prekey_id: 1,
    token: null,
    token_expires_at: null,
    seen_messages: [],
    seen_client_ids: [],
    sessions: {},
    trusted: {},
    identity_changes: {},
    sent: {},
    outbox: [],
    conversations: {},
    profiles: {},
  };
}

/** An unlocked keystore. Build with {@link Keystore.create} or {@link Keystore.open}. */
export class Keystore {
  #key;
  #header;
  #saving = Promise.resolve();
  #identity;
  #remembered = false;

  constructor(key, headerBytes, contents) {
    this.#key = key;
    this.#header = headerBytes;
    /** The decrypted contents; mutate through the methods, then `save()`. */
    this.data = contents;
    this.#identity = IdentityKeyPair.fromSecretBytes(fromBase64(contents.identity_seed), fromBase64(contents.identity_exchange));
    this.seen = new Set(contents.seen_messages);
    this.seenClientIds = new Set(contents.seen_client_ids);
  }

  /** A new keystore with a fresh identity (argon2id at interactive costs). Not saved yet. */
  static create(username, password, serverUrl) {
    const salt = sodium.randombytes_buf(sodium.crypto_pwhash_SALTBYTES);
    const opslimit = sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE;
    const memlimit = sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE;
    const headerBytes = header(opslimit, memlimit, salt);
    const key = deriveKey(password, salt, opslimit, memlimit);
    return new Keystore(key, headerBytes, emptyContents(username, serverUrl, IdentityKeyPair.generate()));
  }

  /** Unlock the stored keystore of `username`; `WrongPassword` or `KeystoreCorrupt` otherwise. */
  static async open(username, password) {
    const blob = await run(STORE, 'readonly', (store) => store.get(username));
    if (!(blob instanceof Uint8Array) || blob.length < HEADER_SIZE + NONCE_SIZE + 16) throw new KeystoreCorrupt();
    const headerBytes = blob.slice(0, HEADER_SIZE);
    if (fromUtf8(headerBytes.subarray(0, 6)) !== 'LIENKS' || headerBytes[6] !== VERSION) throw new KeystoreCorrupt();
    const view = new DataView(headerBytes.buffer);
    const opslimit = view.getUint32(7);
    const memlimit = Number(view.getBigUint64(11));
    const salt = headerBytes.slice(19, HEADER_SIZE);
    let key;
    try {
      key = deriveKey(password, salt, opslimit, memlimit);
    } catch {
      throw new KeystoreCorrupt();
    }
    let plaintext;
    try {
      plaintext = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
        null, blob.subarray(HEADER_SIZE + NONCE_SIZE), headerBytes,
        blob.subarray(HEADER_SIZE, HEADER_SIZE + NONCE_SIZE), key,
      );
    } catch {
      throw new WrongPassword();
    }
    let contents;
    try {
      contents = { ...emptyContents(username, ''), ...JSON.parse(fromUtf8(plaintext)) };
    } catch {
      throw new KeystoreCorrupt();
    }
    if (contents.username !== username || !contents.identity_seed) throw new KeystoreCorrupt();
    const keystore = new Keystore(key, headerBytes, contents);
    await setLastUsername(username);
    return keystore;
  }

  get username() {
    return this.data.username;
  }

  get deviceId() {
    return this.data.device_id;
  }

  get identity() {
    return this.#identity;
  }

  /** Encrypt and store the state as it is when this save starts; saves never overlap. */
  save() {
    const next = this.#saving.then(() => this.#write());
    this.#saving = next.catch(() => {});
    return next;
  }

  async #write() {
    this.data.seen_messages = [...this.seen];
    this.data.seen_client_ids = [...this.seenClientIds];
    const nonce = sodium.randombytes_buf(NONCE_SIZE);
    const ciphertext = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
      utf8(JSON.stringify(this.data)), this.#header, null, nonce, this.#key,
    );
    const blob = concat(this.#header, nonce, ciphertext);
    await run(STORE, 'readwrite', (store) => store.put(blob, this.username));
    if (!this.#remembered) {
      await setLastUsername(this.username);
      this.#remembered = true;
    }
  }

  // --- session token

  setToken(token, expiresAt) {
    this.data.token = token;
    this.data.token_expires_at = expiresAt;
  }

  // --- prekeys (§7.5)

  #takePrekeyIds(count) {
    const start = this.data.next_prekey_id;
    this.data.next_prekey_id = start + count;
    return start;
  }

  /** A new signed prekey; the previous one is kept for sessions begun against it. */
  newSignedPrekey() {
    const prekey = SignedPrekeyPair.generate(this.#takePrekeyIds(1), this.#identity);
    const kept = this.data.signed_prekeys.slice(-1);
    kept.push({ id: prekey.prekeyId, private: toBase64(prekey.privateBytes()), signature: toBase64(prekey.signature) });
    this.data.signed_prekeys = kept;
    return prekey;
  }

  signedPrekey(prekeyId) {
    const secret = this.data.signed_prekeys.find((each) => each.id === prekeyId);
    return secret ? SignedPrekeyPair.fromSecretBytes(secret.id, fromBase64(secret.private), fromBase64(secret.signature)) : null;
  }

  newOneTimePrekeys(count) {
    const prekeys = OneTimePrekeyPair.generateBatch(this.#takePrekeyIds(count), count);
    for (const prekey of prekeys) this.data.one_time_prekeys[prekey.prekeyId] = toBase64(prekey.privateBytes());
    return prekeys;
  }

  oneTimePrekey(prekeyId) {
    const secret = this.data.one_time_prekeys[prekeyId];
    return secret ? OneTimePrekeyPair.fromPrivateBytes(prekeyId, fromBase64(secret)) : null;
  }

  consumeOneTimePrekey(prekeyId) {
    delete this.data.one_time_prekeys[prekeyId];
  }

  // --- sessions and trust (opaque here)

  session(name) {
    return this.data.sessions[name] ?? null;
  }

  setSession(name, state) {
    if (state === null) delete this.data.sessions[name];
    else this.data.sessions[name] = state;
  }

  trusted(username) {
    return this.data.trusted[username] ?? null;
  }

  setTrusted(username, encoded) {
    this.data.trusted[username] = encoded;
  }

  // --- sent messages, for repair (§6.6)

  rememberSent(messageId, record) {
    this.data.sent[messageId] = record;
    const ids = Object.keys(this.data.sent);
    for (const id of ids.slice(0, Math.max(0, ids.length - SENT_KEPT))) delete this.data.sent[id];
  }

  sentMessage(messageId) {
    return this.data.sent[messageId] ?? null;
  }

  // --- delivery (§7.4)

  wasSeen(messageId) {
    return this.seen.has(messageId);
  }

  rememberSeen(messageId, clientKey) {
    this.seen.add(messageId);
    this.seenClientIds.add(clientKey);
    for (const set of [this.seen, this.seenClientIds]) {
      while (set.size > SEEN_KEPT) set.delete(set.values().next().value);
    }
  }

  toString() {
    return `Keystore(username=${this.username}, device=${this.deviceId})`;
  }

  toJSON() {
    return this.toString();
  }
}
