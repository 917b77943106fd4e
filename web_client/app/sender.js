/**
 * Sending (docs/protocol.md §7.3, §6.6; `send_text`, `_build_send`, `_send_group` and
 * `_repair` of `lien/sdk/client.py`): a message is encrypted once per device of the
 * recipient and of the sender's other devices (to a group: once for every member device,
 * app/group_send.js), remembered in the keystore's outbox, saved, and only then written; it
 * stays pending (and is resent under the same client message id after each `ready`) until
 * `accepted`. A `devices-mismatch` (or, to a group, `stale-membership`) refreshes the device
 * lists (and the members) and builds again under the same id; a `decrypt-failed` receipt
 * opens a new session with that device and resends the message there. Over the fair-use rate
 * (`rate-limited`, §6.10) the refused sends stay pending in their place and nothing is written
 * until `retry_after` has passed; then every pending send goes again in the order first sent,
 * so a message typed later never overtakes a refused one.
 */
import { toBase64 } from '../src/crypto/bytes.js';
import { CryptoError } from '../src/crypto/errors.js';
import { Conversation, DeviceAddress, Payload } from '../src/crypto/payload.js';
import * as e2e from './e2e.js';
import { LienError, NETWORK_ERROR } from './errors.js';
import { buildGroupSend } from './group_send.js';
import { isGroupId, newClientId, resendFrame, sendFrame } from './protocol.js';

const MISMATCH_RETRIES = 3;
/** Refusals after which a send is built again from fresh device lists (and group members). */
const REFRESH_CODES = new Set(['devices-mismatch', 'stale-membership']);

/** Runs async sections one at a time, in call order. */
class Mutex {
  #tail = Promise.resolve();

  run(section) {
    const result = this.#tail.then(section);
    this.#tail = result.catch(() => {});
    return result;
  }
}

export class Sender {
  /**
   * Held from session look-up to the write of a send, so sessions advance in the order bodies leave.
   */
  #lock = new Mutex();
  #mismatchRetries = new Map();
  /** Repaired copies not yet accepted: resend client id -> the message and the device it repairs. */
  #resends = new Map();
  /** Set while over the fair-use rate: sends wait, pending, until it fires. */
  #holdTimer = null;

  /**
   * @param {{keystore: import('./keystore.js').Keystore, directory: import('./directory.js').Directory,
   *   groups: import('./groups.js').GroupBook,
   *   api: import('./api.js').Api, protocol: import('./protocol.js').ClientProtocol,
   *   history: import('./history.js').History, write: (data: string) => boolean,
   *   emit: (type: string, detail: object) => void, onContact: () => void}} parts
   */
  constructor({ keystore, directory, groups, api, protocol, history, write, emit, onContact }) {
    this.keystore = keystore;
    this.directory = directory;
    this.groups = groups;
    this.api = api;
    this.protocol = protocol;
    this.history = history;
    this.write = write;
    this.emit = emit;
    this.onContact = onContact;
    // Sends typed before a reload and never accepted: pending again, resent after `ready`.
    for (const entry of keystore.data.outbox) {
      if (entry.data) protocol.pending.set(entry.id, entry.data);
    }
  }

  get own() {
    return new DeviceAddress(this.keystore.username, this.keystore.deviceId);
  }

  /** Queue `text` for `to`; it is encrypted and sent now, or after the next `ready`. */
  async sendText(to, text) {
    const clientId = newClientId();
    const message = this.history.addOutgoing(to, { clientId, text, sentAt: Date.now(), from: this.keystore.username });
    this.keystore.data.outbox.push({ id: clientId, to, data: null });
    await this.keystore.save();
    this.emit('conversation', { peer: to });
    await this.#build(clientId, { refresh: false });
    return message;
  }

  /** Try a failed message again (after the user accepted a device change, for instance). */
  async retry(clientId) {
    const message = this.history.byClientId.get(clientId);
    if (!message || message.status !== 'failed') return;
    message.status = 'pending';
    message.error = null;
    if (!this.keystore.data.outbox.some((entry) => entry.id === clientId)) {
      this.keystore.data.outbox.push({ id: clientId, to: message.peer, data: null });
    }
    this.emit('status', { message });
    await this.#build(clientId, { refresh: true });
  }

  /** Build what was typed while the device lists could not be fetched. */
  buildWaiting() {
    for (const entry of this.keystore.data.outbox) {
      if (!entry.data) this.#build(entry.id, { refresh: false });
    }
  }

  /** Encrypt for every device, remember the frame, save, then send if connected. */
  #build(clientId, { refresh }) {
    return this.#lock.run(async () => {
      const entry = this.keystore.data.outbox.find((each) => each.id === clientId);
      const message = this.history.byClientId.get(clientId);
      if (!entry || entry.data || !message || message.id) return; // gone, built already, or accepted
      let frame;
      try {
        if (isGroupId(entry.to)) {
          const built = await buildGroupSend(this.#groupParts(), {
            clientId, groupId: entry.to, text: message.text, sentAt: message.sentAt, refresh,
          });
          frame = built.frame;
          entry.given = built.given;
          this.history.setAudience(clientId, built.audience);
        } else {
          frame = await this.#buildSend(clientId, entry.to, message.text, message.sentAt, { refresh });
        }
      } catch (error) {
        if (error instanceof LienError && error.code === NETWORK_ERROR) return; // built again after `ready`
        this.#fail(clientId, error);
        return;
      }
      entry.data = this.protocol.send(frame);
      await this.keystore.save(); // before any body leaves: a ratchet key must never be used twice
      this.#writeUnlessHeld(entry.data);
    });
  }

  /** Write a send now, or leave it pending until the fair-use hold ends. */
  #writeUnlessHeld(data) {
    if (this.#holdTimer === null) this.write(data);
  }

  /** Over the fair-use rate: write nothing for `seconds`, then every pending send, in order. */
  #hold(seconds) {
    if (this.#holdTimer !== null) return;
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = null;
      for (const data of this.protocol.pendingSends()) this.write(data);
    }, Math.max(0.1, seconds ?? 1) * 1000);
  }

  #fail(clientId, error) {
    this.protocol.forget(clientId);
    this.keystore.data.outbox = this.keystore.data.outbox.filter((each) => each.id !== clientId);
    const code = error?.code ?? 'error';
    if (!(error instanceof LienError) && !(error instanceof CryptoError)) console.warn('lien: send failed', error);
    const message = this.history.failed(clientId, code);
    this.keystore.save();
    if (message) this.emit('status', { message });
  }

  async #buildSend(clientId, to, text, sentAt, { refresh }) {
    const targets = await this.#targets(to, { refresh });
    if (!targets.length) throw new LienError('no-device');
    await this.#openMissingSessions(targets);
    const conversation = Conversation.user(to);
    const copies = [];
    for (const peer of targets) {
      if (!e2e.hasSession(this.keystore, peer)) continue; // the server will say which devices are missing
      const payload = new Payload({
        sender: this.own, recipient: peer, conversation, clientMessageId: clientId, sentAtMs: sentAt, text,
      });
      copies.push({ device: Number(peer.device), body: toBase64(e2e.encrypt(this.keystore, payload)) });
    }
    if (!copies.length) throw new LienError('no-device');
    return sendFrame(clientId, to, copies);
  }

  /** Every device of `to` and this user's other devices; stale sessions dropped. */
  async #targets(to, { refresh }) {
    const recipients = await this.directory.devices(to, { refresh });
    const own = to === this.keystore.username ? recipients : await this.directory.devices(this.keystore.username, { refresh });
    this.directory.checkAccepted(to);
    const listed = [];
    for (const [user, devices] of [[to, recipients], [this.keystore.username, own]]) {
      for (const [device, identity] of devices) {
        const peer = new DeviceAddress(user, device);
        if (peer.equals(this.own) || listed.some(([each]) => each.equals(peer))) continue;
        const session = e2e.loadSession(this.keystore, peer);
        if (session !== null && !session.peerIdentity.equals(identity)) e2e.dropSession(this.keystore, peer);
        listed.push([peer, identity]);
      }
    }
    return listed.map(([peer]) => peer).sort((a, b) => a.user.localeCompare(b.user) || Number(a.device - b.device));
  }

  #groupParts() {
    return {
      keystore: this.keystore, groups: this.groups, directory: this.directory, api: this.api, own: this.own,
      openMissingSessions: (targets) => this.#openMissingSessions(targets),
    };
  }

  async #openMissingSessions(targets) {
    const missing = new Map();
    for (const peer of targets) {
      if (!e2e.hasSession(this.keystore, peer)) {
        if (!missing.has(peer.user)) missing.set(peer.user, []);
        missing.get(peer.user).push(Number(peer.device));
      }
    }
    for (const [username, devices] of missing) {
      const claimed = await this.api.claimKeys(username, devices);
      const listed = await this.directory.devices(username);
      for (const bundle of claimed.bundles) {
        const peer = new DeviceAddress(username, bundle.device);
        const known = listed.get(bundle.device);
        // The claim and the device list must agree: never start a session on anything else.
        if (!known || toBase64(known.signingKey) !== bundle.identity_signing_key) continue;
        if (!e2e.hasSession(this.keystore, peer)) e2e.startSession(this.keystore, this.own, peer, bundle);
      }
    }
  }

  /** The server stored a send (or a repaired resend). */
  async onAccepted(accepted) {
    this.#resends.delete(accepted.id);
    const message = this.history.accepted(accepted.id, accepted.message, accepted.at);
    const entry = this.keystore.data.outbox.find((each) => each.id === accepted.id);
    if (entry?.given && isGroupId(entry.to)) this.groups.markDistributed(entry.to, entry.given);
    this.keystore.data.outbox = this.keystore.data.outbox.filter((each) => each.id !== accepted.id);
    this.#mismatchRetries.delete(accepted.id);
    if (!message) return; // a repaired resend
    this.keystore.rememberSent(accepted.message, {
      to: message.peer, client_id: message.clientId, sent_at: message.sentAt, text: message.text, resent_to: [],
    });
    await this.keystore.save();
    this.emit('status', { message });
    this.onContact();
  }

  /**
   * The server refused a pending send: retry a devices mismatch or a stale membership (built
   * again), send it again after the delay when over the fair-use rate, else fail it. A refused
   * repair may be tried again at the next `decrypt-failed` from that device.
   */
  async onRefused(clientId, error) {
    if (error.code === 'rate-limited') {
      this.#hold(error.retryAfter); // still pending, in its place: written again when the hold ends
      return;
    }
    this.protocol.forget(clientId);
    const resend = this.#resends.get(clientId);
    if (resend) {
      this.#resends.delete(clientId);
      const record = this.keystore.sentMessage(resend.messageId);
      if (record) {
        this.keystore.rememberSent(resend.messageId, {
          ...record, resent_to: record.resent_to.filter((device) => device !== resend.device),
        });
        await this.keystore.save();
      }
      return;
    }
    const entry = this.keystore.data.outbox.find((each) => each.id === clientId);
    if (REFRESH_CODES.has(error.code) && this.history.byClientId.has(clientId)) {
      const tries = (this.#mismatchRetries.get(clientId) ?? 0) + 1;
      this.#mismatchRetries.set(clientId, tries);
      if (tries <= MISMATCH_RETRIES) {
        if (entry) entry.data = null;
        await this.#build(clientId, { refresh: true }); // same client id (§6.1)
        return;
      }
    }
    this.#mismatchRetries.delete(clientId);
    this.#fail(clientId, error);
  }

  /**
   * `peer` could not decrypt a message this device sent: new session, then resend it (§6.6);
   * a group message goes to that device alone as a pairwise copy, in the group's conversation.
   */
  async repair(messageId, peer) {
    const record = this.keystore.sentMessage(messageId);
    if (!record || record.resent_to.includes(Number(peer.device)) || peer.equals(this.own)) return;
    try {
      await this.#lock.run(async () => {
        e2e.dropSession(this.keystore, peer);
        await this.#openMissingSessions([peer]);
        if (!e2e.hasSession(this.keystore, peer)) return;
        const group = isGroupId(record.to);
        const payload = new Payload({
          sender: this.own, recipient: peer, conversation: group ? Conversation.group(record.to) : Conversation.user(record.to),
          clientMessageId: record.client_id, sentAtMs: record.sent_at, text: record.text,
        });
        const body = toBase64(e2e.encrypt(this.keystore, payload));
        if (group) this.groups.forgetDistributionTo(record.to, peer); // the next message carries the key again
        this.keystore.rememberSent(messageId, { ...record, resent_to: [...record.resent_to, Number(peer.device)] });
        const resendId = newClientId();
        this.#resends.set(resendId, { messageId, device: Number(peer.device) });
        const data = this.protocol.send(resendFrame(resendId, messageId, [{ device: Number(peer.device), body }]));
        await this.keystore.save();
        this.#writeUnlessHeld(data);
      });
    } catch (error) {
      console.warn('lien: could not repair a message', error?.code ?? error?.name);
    }
  }
}
