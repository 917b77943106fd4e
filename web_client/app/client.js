/**
 * The browser client: one WebSocket per device driven by `ClientProtocol`, the keystore,
 * the end-to-end layer and the history (the behaviour of `lien/sdk/client.py`,
 * docs/protocol.md §6 and §7).
 *
 * - Reconnects with capped, jittered backoff; resends unaccepted sends under the same
 *   client message id after `ready`, before anything else; sends typed while offline
 *   go out after the next `ready`.
 * - Saves the keystore before any ciphertext leaves and before acking.
 * - Shows each message once (server message id, then sender device + client message id).
 * - Receipts: `decrypted` when a body opened, `read` when the user saw it,
 *   `decrypt-failed` to have the sender repair its session and `resend` (§6.6).
 *
 * - Care-team groups (docs/protocol-group.md): `client.teams` (app/group_service.js) changes
 *   them; group messages are opened with sender keys (app/group_inbound.js) and sent once
 *   for every member device (app/group_send.js); group events become system lines.
 *
 * Events (`addEventListener`): `connection` {state}, `conversation` {peer}, `message`
 * {message}, `status` {message}, `typing` {user, group, active}, `presence` {user, online},
 * `identity` {user, change}, `group` {group}, `profile` {profile}, `notice` {code}, `fatal` {error}.
 */
import { fromBase64, toBase64 } from '../src/crypto/bytes.js';
import { CryptoError } from '../src/crypto/errors.js';
import { sodium } from '../src/crypto/sodium.js';
import { Conversation, DeviceAddress } from '../src/crypto/payload.js';
import { Api } from './api.js';
import { Connection } from './connection.js';
import { Directory } from './directory.js';
import * as e2e from './e2e.js';
import { LienError, NETWORK_ERROR } from './errors.js';
import { openGroupMessage } from './group_inbound.js';
import { GroupService } from './group_service.js';
import { GroupBook } from './groups.js';
import { History } from './history.js';
import { Keystore, destroyKeystore, keystoreExists } from './keystore.js';
import { Sender } from './sender.js';
import {
  ClientProtocol, FATAL_CLOSE_CODES, encodeFrame, receiptFrame, receiptSigningInput, typingFrame, watchFrame,
} from './protocol.js';

const ACK_EVERY = 32;
const ACK_DELAY_MS = 20;
const OUTBOX_LIMIT = 10_000;
const DEVICE_NAME = 'Navigateur';
const TOKEN_MARGIN_MS = 60 * 60 * 1000;
const REPLACED = 4409;

export class Client extends EventTarget {
  /** @param {string} baseUrl @param {Keystore} keystore */
  constructor(baseUrl, keystore) {
    super();
    this.baseUrl = baseUrl;
    this.keystore = keystore;
    this.api = new Api(baseUrl, keystore.data.token);
    this.protocol = new ClientProtocol();
    this.directory = new Directory(this.api, keystore, (detail) => this.#emit('identity', detail));
    this.history = new History(keystore.data.conversations);
    this.watched = [];
    this.presence = new Map();
    this.connection = new Connection(baseUrl, {
      auth: () => this.protocol.auth(this.keystore.data.token ?? ''),
      onFrame: (data, generation) => this.#onFrame(data, generation),
      onState: (state) => this.#emit('connection', { state }),
      onLost: (code) => this.#onLost(code),
    });
    this.groups = new GroupBook(keystore, this.own, keystore.identity.public);
    this.teams = new GroupService({
      api: this.api, keystore, groups: this.groups, history: this.history, directory: this.directory,
      username: this.username, emit: (type, detail) => this.#emit(type, detail),
      fetchProfile: (username) => this.#fetchProfile(username),
    });
    this.sender = new Sender({
      keystore, directory: this.directory, groups: this.groups, api: this.api, protocol: this.protocol,
      history: this.history, write: (data) => this.#write(data), emit: (type, detail) => this.#emit(type, detail),
      onContact: () => this.#watchContacts(),
    });
  }

  #ackTimer = null;
  #outbox = [];
  #replenishing = false;

  // --- accounts ----------------------------------------------------------

  /**
   * Create the account and this device. The keystore is saved before the server hears of
   * the device (its private keys must exist wherever its public keys do) and removed again
   * if the server refuses.
   */
  static async register(baseUrl, { username, password, profile, invite = null }) {
    if (await keystoreExists(username)) throw new LienError('username-taken');
    return Client.#enrol(baseUrl, username, password, (api, device) => (
      api.register({ username, password, profile, device, invite })
    ), profile);
  }

  /**
   * Sign in: unlock this browser's keystore of `username` (argon2id on the password) and
   * reuse its device, or, without one here, register a new device of the account.
   */
  static async signIn(baseUrl, username, password) {
    if (!(await keystoreExists(username))) {
      return Client.#enrol(baseUrl, username, password, (api, device) => api.login({ username, password, device }));
    }
    const keystore = await Keystore.open(username, password);
    const expires = keystore.data.token_expires_at ?? 0;
    if (!keystore.data.token || expires - Date.now() < TOKEN_MARGIN_MS) {
      const grant = await new Api(baseUrl).login({ username, password, device_id: keystore.deviceId });
      keystore.setToken(grant.token, grant.expires_at);
      await keystore.save();
    }
    return new Client(baseUrl, keystore);
  }

  /**
   * Sign in on a browser whose device was removed from the account (`unknown-device` at
   * sign-in, protocol §4.4): the password must still open the keystore; then its keys and its
   * local history are erased and this browser is registered as a new device of the account.
   * The user is asked first (ui/auth.js): what is erased was only ever on this browser.
   */
  static async signInAsNewDevice(baseUrl, username, password) {
    await Keystore.open(username, password);
    await destroyKeystore(username);
    return Client.#enrol(baseUrl, username, password, (api, device) => api.login({ username, password, device }));
  }

  static async #enrol(baseUrl, username, password, request, profile = null) {
    const keystore = Keystore.create(username, password, baseUrl);
    const device = e2e.deviceRegistration(keystore, DEVICE_NAME);
    await keystore.save();
    let grant;
    try {
      grant = await request(new Api(baseUrl), device);
    } catch (error) {
      await destroyKeystore(username);
      throw error;
    }
    keystore.data.device_id = grant.device;
    keystore.setToken(grant.token, grant.expires_at);
    if (profile) keystore.data.profiles[username] = profile;
    await keystore.save();
    return new Client(baseUrl, keystore);
  }

  get username() {
    return this.keystore.username;
  }

  get own() {
    return new DeviceAddress(this.username, this.keystore.deviceId);
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // --- connection (§7.1, §7.2; app/connection.js) ---------------------------------

  connect() {
    this.connection.open();
  }

  get state() {
    return this.connection.state;
  }

  /** What to do when the socket is lost: null to reconnect, or the state to stop in. */
  #onLost(code) {
    if (this.#ackTimer !== null) {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = null;
    }
    if (this.presence.size) {
      this.presence.clear(); // unknown until the next `watch` answers
      this.#emit('presence', { user: null, online: false });
    }
    const fatal = FATAL_CLOSE_CODES.get(code);
    if (fatal) {
      if (fatal === 'auth-failed') {
        this.keystore.setToken(null, null); // the next sign-in asks the server for a new one
        this.keystore.save().catch(() => {});
      }
      queueMicrotask(() => this.#emit('fatal', { error: new LienError(fatal) }));
      return 'signed-out';
    }
    // 4409: another tab signed in as this device; reconnecting would only push it off again.
    return code === REPLACED ? 'replaced' : null;
  }

  /** Try now (the browser came back online, or the user asked). */
  reconnectNow() {
    this.connection.reconnectNow();
  }

  #write(data) {
    return this.connection.write(data);
  }

  #sendOrQueue(frame) {
    const data = encodeFrame(frame);
    if (!this.#write(data) && this.#outbox.length < OUTBOX_LIMIT) this.#outbox.push(data);
  }

  async #onFrame(data, generation) {
    let event;
    try {
      event = this.protocol.receive(data);
    } catch {
      console.warn('lien: ignored an undecodable frame from the server');
      return;
    }
    switch (event.kind) {
      case 'connected':
        this.#onReady(event.ready);
        break;
      case 'accepted':
        await this.sender.onAccepted(event.accepted);
        break;
      case 'refused':
        await this.sender.onRefused(event.clientId, event.error);
        break;
      case 'inbox':
        await this.#onInbox(event.frame, generation);
        break;
      case 'ephemeral':
        this.#onEphemeral(event.frame);
        break;
      case 'error':
        this.#onServerError(event.error);
        break;
      default:
        break;
    }
  }

  #onReady(ready) {
    this.connection.ready();
    // Unaccepted sends first, in the order first sent, under their ids (§7.3).
    for (const data of this.protocol.pendingSends()) this.#write(data);
    if (this.watched.length) this.#write(encodeFrame(watchFrame(this.watched)));
    const queued = this.#outbox;
    this.#outbox = [];
    for (const data of queued) this.#write(data);
    if (ready.replenish) this.#replenishPrekeys();
    this.sender.buildWaiting();
  }

  // --- sending (app/sender.js) ---------------------------------------------------

  /** Queue `text` for `to`; it is encrypted and sent now, or after the next `ready`. */
  sendText(to, text) {
    return this.sender.sendText(to, text);
  }

  /** Try a failed message again (after the user accepted a device change, for instance). */
  retry(clientId) {
    return this.sender.retry(clientId);
  }

  // --- receiving (§7.4) ---------------------------------------------------------

  async #onInbox(frame, generation) {
    if (frame.type === 'message') await this.#onMessage(frame, generation);
    else if (frame.type === 'status') await this.#onStatus(frame, generation);
    else if (frame.type === 'group_event') this.teams.onEvent(frame);
    if (generation === this.connection.generation) this.#handled(frame.seq);
  }

  async #onMessage(deliver, generation) {
    if (this.keystore.wasSeen(deliver.message)) return; // a redelivery of something already shown
    const group = deliver.group ?? null;
    if (group === null && deliver.to == null) return;
    const outgoing = deliver.sender === this.username;
    const sender = new DeviceAddress(deliver.sender, deliver.sender_device);
    const identity = await this.#identityOf(deliver.sender, deliver.sender_device, generation);
    if (group !== null) await this.#knowMembers(group, generation);
    const body = fromBase64(deliver.body);
    const hash = sodium.crypto_hash_sha256(body);
    let signed;
    try {
      if (identity === null) throw new e2e.UnknownSenderDevice();
      if (group !== null) {
        signed = openGroupMessage({ keystore: this.keystore, groups: this.groups, own: this.own }, {
          groupId: group, sender, identity, body, key: deliver.key == null ? null : fromBase64(deliver.key),
        });
        if (signed === null) return; // a repaired copy of the key alone
      } else {
        signed = e2e.decrypt(this.keystore, this.own, body, {
          deliveredBy: sender, senderIdentity: identity, conversation: Conversation.user(deliver.to),
        });
      }
    } catch (error) {
      if (!(error instanceof CryptoError)) throw error;
      console.warn('lien: a message could not be opened', error.code);
      this.#emit('notice', { code: 'undecryptable', user: deliver.sender });
      if (!outgoing) this.#sendOrQueue(this.#receipt(deliver.message, 'decrypt-failed', hash));
      return;
    }
    const payload = signed.payload;
    const clientKey = `${deliver.sender}/${deliver.sender_device}/${payload.clientMessageId}`;
    if (this.keystore.seenClientIds.has(clientKey)) {
      this.keystore.seen.add(deliver.message);
      return;
    }
    this.keystore.rememberSeen(deliver.message, clientKey);
    const peer = group ?? (outgoing ? deliver.to : deliver.sender);
    const message = this.history.addReceived(peer, {
      id: deliver.message, clientId: payload.clientMessageId, from: deliver.sender, fromDevice: deliver.sender_device,
      outgoing, text: payload.text, sentAt: Number(payload.sentAtMs), at: deliver.at, hash: toBase64(hash),
      proof: { payload: toBase64(signed.encoded), signature: toBase64(signed.signature), signer: toBase64(signed.signer) },
    });
    if (!outgoing) this.#sendOrQueue(this.#receipt(deliver.message, 'decrypted', hash));
    if (message) {
      await this.#fetchProfile(group === null ? peer : deliver.sender); // so the list and the notice name them
      this.#watchContacts();
      this.#emit('conversation', { peer });
      this.#emit('message', { message });
    }
  }

  /**
   * Before opening a group message: this device must know the group's members (a key copy is
   * installed only from a current member's device). A network failure gives the entry up.
   */
  async #knowMembers(groupId, generation) {
    const record = this.groups.record(groupId);
    if (record !== null && record.synced) return;
    try {
      await this.teams.refresh(groupId);
    } catch (error) {
      if (error instanceof LienError && error.code === NETWORK_ERROR) {
        this.connection.drop(generation);
        throw error;
      }
    }
  }

  /** A device's identity keys; a network failure gives the entry up unhandled (it comes again). */
  async #identityOf(username, device, generation) {
    try {
      return await this.directory.identityOf(username, device);
    } catch (error) {
      if (error instanceof LienError && error.code === NETWORK_ERROR) {
        this.connection.drop(generation); // not handled, so not acked
        throw error;
      }
      return null;
    }
  }

  /** A receipt signed by this device's identity key (docs/protocol.md §10.4). */
  #receipt(messageId, kind, ciphertextSha256) {
    const at = Date.now();
    const signed = receiptSigningInput({
      message: messageId, kind, ciphertextSha256, deviceTime: at, by: this.username, byDevice: this.keystore.deviceId,
    });
    return receiptFrame(messageId, kind, toBase64(ciphertextSha256), at, toBase64(this.keystore.identity.sign(signed)));
  }

  /** Whether a status carries the receiving device's valid signature. */
  async #verifiedStatus(status, generation) {
    const identity = await this.#identityOf(status.by, status.by_device, generation);
    if (identity === null) return false;
    try {
      const hash = fromBase64(status.hash);
      const signed = receiptSigningInput({
        message: status.message, kind: status.kind, ciphertextSha256: hash.length === 32 ? hash : new Uint8Array(32),
        deviceTime: status.device_time, by: status.by, byDevice: status.by_device,
      });
      return identity.verify(signed, fromBase64(status.signature));
    } catch {
      return false;
    }
  }

  async #onStatus(status, generation) {
    if (!(await this.#verifiedStatus(status, generation))) {
      console.warn('lien: a receipt without a valid signature was ignored', status.kind);
      return;
    }
    if (status.by === this.username) {
      if (status.kind === 'read') {
        const message = this.history.readElsewhere(status.message);
        if (message) this.#emit('conversation', { peer: message.peer });
      }
      return;
    }
    if (status.kind === 'decrypt-failed') {
      this.sender.repair(status.message, new DeviceAddress(status.by, status.by_device));
    }
    const message = this.history.receipt(status.message, status.kind, status.by, status.at);
    if (message) this.#emit('status', { message });
  }

  #handled(seq) {
    this.protocol.handled(seq);
    if (this.protocol.unacked >= ACK_EVERY) this.#flushAcks();
    else if (this.#ackTimer === null) this.#ackTimer = setTimeout(() => this.#flushAcks(), ACK_DELAY_MS);
  }

  async #flushAcks() {
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    if (!this.protocol.unacked) return;
    const generation = this.connection.generation;
    const upTo = this.protocol.handledSeq;
    await this.keystore.save(); // what is acked may be purged: the state it advanced must be saved first
    if (generation !== this.connection.generation) return;
    const data = this.protocol.ack(upTo);
    if (data !== null) this.#write(data);
  }

  #onEphemeral(frame) {
    switch (frame.type) {
      case 'typing':
        this.#emit('typing', { user: frame.sender, group: frame.group ?? null, active: frame.active });
        break;
      case 'presence':
        this.presence.set(frame.user, frame.online);
        this.#emit('presence', { user: frame.user, online: frame.online });
        break;
      case 'devices_changed':
        this.directory.devices(frame.user, { refresh: true }).catch(() => {});
        break;
      case 'prekeys_low':
        this.#replenishPrekeys();
        break;
      default:
        break;
    }
  }

  #onServerError(error) {
    if ((error.code === 'not-a-contact' || error.code === 'unknown-user') && Array.isArray(error.details?.users)) {
      const refused = new Set(error.details.users);
      this.watched = this.watched.filter((user) => !refused.has(user));
      if (this.watched.length) this.#sendOrQueue(watchFrame(this.watched));
      return;
    }
    console.warn('lien: server error', error.code);
    this.#emit('notice', { code: error.code });
  }

  async #replenishPrekeys() {
    if (this.#replenishing) return;
    this.#replenishing = true;
    try {
      const prekeys = e2e.newPrekeys(this.keystore);
      await this.keystore.save(); // private halves first
      await this.api.uploadPrekeys(prekeys);
    } catch (error) {
      console.warn('lien: prekey upload failed', error?.code);
    } finally {
      this.#replenishing = false;
    }
  }

  // --- read marks, typing, presence ------------------------------------------------

  /** The user sees the conversation with `peer`: send `read` for what was unread. */
  async markRead(peer) {
    const unread = this.history.takeUnread(peer);
    if (!unread.length) return;
    for (const message of unread) {
      if (message.hash) this.#sendOrQueue(this.#receipt(message.id, 'read', fromBase64(message.hash)));
    }
    this.#emit('conversation', { peer });
    await this.keystore.save();
  }

  /** Ephemeral, to a contact or in a group (`to` a group id); dropped rather than queued while disconnected (§7.6). */
  setTyping(to, active) {
    this.#write(encodeFrame(typingFrame(to, active)));
  }

  /** Follow the presence of the users one has exchanged messages with (contacts, §6.6). */
  #watchContacts() {
    const contacts = this.history.list()
      .filter((each) => each.kind === 'user' && each.peer !== this.username)
      .filter((each) => each.messages.some((message) => message.id))
      .map((each) => each.peer)
      .sort();
    if (contacts.join() === this.watched.join()) return;
    this.watched = contacts;
    this.#sendOrQueue(watchFrame(contacts));
  }

  start() {
    this.#watchContacts();
    this.connect();
    this.teams.syncAll().catch((error) => console.warn('lien: could not list the groups', error?.code));
  }

  // --- profiles and directory ------------------------------------------------

  profileOf(username) {
    return this.keystore.data.profiles[username] ?? null;
  }

  async #fetchProfile(username) {
    if (this.keystore.data.profiles[username]) return;
    try {
      const found = await this.api.profile(username);
      this.keystore.data.profiles[username] = found.profile;
      this.#emit('conversation', { peer: username });
    } catch {
      // shown by username until the next try
    }
  }

  rememberProfile(username, profile) {
    this.keystore.data.profiles[username] = profile;
  }

  /** Change this user's profile (`PATCH /v1/me`), "liste rouge" included; returns the new profile. */
  async updateProfile(update) {
    const account = await this.api.updateProfile(update);
    this.keystore.data.profiles[this.username] = account.profile;
    await this.keystore.save();
    this.#emit('profile', { profile: account.profile });
    return account.profile;
  }

  searchDirectory(query) {
    return this.api.searchDirectory(query);
  }

  async safetyNumber(username) {
    return this.directory.safetyNumber(this.username, username);
  }

  async acceptIdentity(username) {
    await this.directory.accept(username);
    await this.keystore.save();
  }

  /** Revoke this device's session on the server and close; keys and history stay in the keystore. */
  async signOut() {
    try {
      if (this.state === 'ready') await this.#flushAcks();
      await this.api.logout();
    } catch {
      // signed out locally all the same
    }
    this.keystore.setToken(null, null);
    await this.keystore.save();
    this.close();
  }

  close() {
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    this.connection.close();
  }
}
