// Care-team groups in the app layer, without a server: the group book (app/groups.js), a group
// message built and opened by two devices (app/group_send.js, app/group_inbound.js), the history's
// per-member status and system lines (app/history.js), event sentences (app/group_events.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fromBase64, toBase64 } from '../src/crypto/bytes.js';
import { IdentityKeyPair, SignedPrekeyPair } from '../src/crypto/keys.js';
import { DeviceAddress } from '../src/crypto/payload.js';
import { describeGroupEvent } from '../app/group_events.js';
import { openGroupMessage } from '../app/group_inbound.js';
import { buildGroupSend } from '../app/group_send.js';
import { GroupBook } from '../app/groups.js';
import { History } from '../app/history.js';
import * as e2e from '../app/e2e.js';
import { LienError } from '../app/errors.js';
import { ClientProtocol, groupSendFrame, isGroupId, typingFrame } from '../app/protocol.js';
import { Sender } from '../app/sender.js';
import { errorCode } from '../test-support/vectors.js';

const GROUP = 'GABCDEFGH';

/** The parts of a Keystore the group code uses, in memory. */
class MemoryKeystore {
  constructor(username, deviceId) {
    this.identity = IdentityKeyPair.generate();
    this.data = {
      username, device_id: deviceId, groups: {}, sender_keys: {}, sender_key_receivers: {}, sessions: {},
      signed_prekeys: [], one_time_prekeys: {}, next_prekey_id: 1, outbox: [], sent: {},
    };
    this.saves = 0;
  }

  get username() { return this.data.username; }

  get deviceId() { return this.data.device_id; }

  async save() { this.saves += 1; }

  rememberSent(id, record) { this.data.sent[id] = record; }

  sentMessage(id) { return this.data.sent[id] ?? null; }

  group(id) { return this.data.groups[id] ?? null; }

  setGroup(id, record) { this.data.groups[id] = record; }

  senderKey(id) { return this.data.sender_keys[id] ?? null; }

  setSenderKey(id, state) { if (state === null) delete this.data.sender_keys[id]; else this.data.sender_keys[id] = state; }

  senderKeyReceiver(name) { return this.data.sender_key_receivers[name] ?? null; }

  setSenderKeyReceiver(name, state) {
    if (state === null) delete this.data.sender_key_receivers[name]; else this.data.sender_key_receivers[name] = state;
  }

  session(name) { return this.data.sessions[name] ?? null; }

  setSession(name, state) { if (state === null) delete this.data.sessions[name]; else this.data.sessions[name] = state; }
}

/** A device of the app layer: its keystore, its group book, and the directory answer for it. */
class AppDevice {
  constructor(user, deviceId) {
    this.keystore = new MemoryKeystore(user, deviceId);
    this.own = new DeviceAddress(user, BigInt(deviceId));
    this.groups = new GroupBook(this.keystore, this.own, this.keystore.identity.public);
  }
}

/** The key bundle a device publishes, with no one-time prekey (what claimKeys answers). */
const bundleOf = (device, id, spk) => ({
  device: id,
  identity_signing_key: toBase64(device.keystore.identity.public.signingKey),
  identity_exchange_key: toBase64(device.keystore.identity.public.exchangeKey),
  signed_prekey: { id: 1, key: toBase64(spk.publicKey), signature: toBase64(spk.signature) },
  prekey: null,
});

const info = (epoch, members, name = 'Équipe') => ({
  id: GROUP, name, epoch, created_at: 1, members: members.map(([user, role]) => ({ user, role, joined_at: 1 })),
});

test('the group book: learning, events, rotation after a join, a departure or a device change', () => {
  const alice = new AppDevice('alice', 1);
  const book = alice.groups;
  book.learn(info(1, [['alice', 'owner'], ['bob', 'member']]));
  assert.deepEqual(book.record(GROUP).members, ['alice', 'bob']);
  assert.equal(book.roleOf(GROUP, 'alice'), 'owner');
  const first = book.senderKey(GROUP);
  assert.equal(book.senderKey(GROUP).keyId, first.keyId, 'kept while nothing changes');
  book.markDistributed(GROUP, ['bob/2']);
  assert.deepEqual(book.lackingKey(GROUP, [new DeviceAddress('bob', 2n), new DeviceAddress('carol', 3n)])
    .map(String), ['carol/3']);

  book.applyEvent({ group: GROUP, epoch: 2, event: 'member-added', actor: 'alice', subject: 'carol', role: 'admin', at: 5 });
  assert.deepEqual(book.record(GROUP).members, ['alice', 'bob', 'carol']);
  assert.equal(book.roleOf(GROUP, 'carol'), 'admin');
  const joined = book.senderKey(GROUP);
  assert.notEqual(joined.keyId, first.keyId, 'rotated after a join: the newcomer gets no key that opened an earlier message');
  assert.deepEqual(book.record(GROUP).distributed, [], 'and nobody holds the new key yet');

  book.applyEvent({ group: GROUP, epoch: 2, event: 'member-left', actor: 'bob', subject: 'bob', at: 6 });
  assert.deepEqual(book.record(GROUP).members, ['alice', 'bob', 'carol'], 'an event at a known epoch changes nothing');
  book.applyEvent({ group: GROUP, epoch: 3, event: 'member-left', actor: 'bob', subject: 'bob', at: 6 });
  assert.deepEqual(book.record(GROUP).members, ['alice', 'carol']);
  const second = book.senderKey(GROUP);
  assert.notEqual(second.keyId, joined.keyId, 'rotated after a departure');

  book.applyEvent({ group: GROUP, epoch: 4, event: 'devices-changed', actor: 'carol', subject: 'carol', at: 7 });
  assert.notEqual(book.senderKey(GROUP).keyId, second.keyId, 'rotated after a device change');

  book.senderKey(GROUP);
  book.learn(info(5, [['alice', 'owner'], ['carol', 'admin']]));
  assert.equal(book.record(GROUP).rotate, false);
  book.applyEvent({ group: GROUP, epoch: 5, event: 'devices-changed', actor: 'carol', subject: 'carol', at: 7 });
  assert.equal(book.record(GROUP).rotate, true, 'a device change rotates even when the group info came first');
  book.senderKey(GROUP);
  book.learn(info(6, [['alice', 'owner']]));
  assert.equal(book.record(GROUP).rotate, true, 'a member missing from the server\'s list means a rotation');
  book.applyEvent({ group: GROUP, epoch: 7, event: 'member-removed', actor: 'zoe', subject: 'alice', at: 8 });
  assert.equal(book.record(GROUP).active, false);
  assert.equal(alice.keystore.senderKey(GROUP), null, 'a removed member keeps no key');
});

test('a group message built by one device opens on another; the key copy is installed only from members', async () => {
  const alice = new AppDevice('alice', 1);
  const bob = new AppDevice('bob', 2);
  for (const device of [alice, bob]) device.groups.learn(info(3, [['alice', 'owner'], ['bob', 'member']]));
  // Bob's keys as the server would hand them out.
  const spk = SignedPrekeyPair.generate(1, bob.keystore.identity);
  bob.keystore.signedPrekey = (id) => (id === 1 ? spk : null);
  bob.keystore.oneTimePrekey = () => null;
  bob.keystore.consumeOneTimePrekey = () => {};
  const identities = {
    alice: new Map([[1, alice.keystore.identity.public]]),
    bob: new Map([[2, bob.keystore.identity.public]]),
  };
  const directory = {
    devices: async (user) => identities[user],
    checkAccepted: () => {},
  };
  const api = { group: async () => info(3, [['alice', 'owner'], ['bob', 'member']]) };
  const bobBundle = () => bundleOf(bob, 2, spk);
  const openMissingSessions = async (targets) => {
    for (const peer of targets) e2e.startSession(alice.keystore, alice.own, peer, bobBundle());
  };
  const parts = { keystore: alice.keystore, groups: alice.groups, directory, api, own: alice.own, openMissingSessions };
  const built = await buildGroupSend(parts, { clientId: 'c1', groupId: GROUP, text: 'Pansement à 9 h', sentAt: 1, refresh: false });
  assert.equal(built.frame.type, 'group_send');
  assert.equal(built.frame.epoch, 3);
  assert.deepEqual(built.given, ['bob/2']);
  assert.deepEqual(built.audience, ['bob']);
  assert.equal(built.frame.keys.length, 1);

  const message = {
    groupId: GROUP, sender: alice.own, identity: alice.keystore.identity.public,
    body: fromBase64(built.frame.body), key: fromBase64(built.frame.keys[0].body),
  };
  // from a device the book does not count as a member, the key is not installed: the body stays closed
  const stranger = new AppDevice('bob', 2);
  Object.assign(stranger.keystore, { signedPrekey: bob.keystore.signedPrekey, oneTimePrekey: () => null, consumeOneTimePrekey: () => {} });
  stranger.keystore.identity = bob.keystore.identity;
  stranger.groups.learn(info(3, [['bob', 'member'], ['carol', 'owner']]));
  assert.equal(errorCode(() => openGroupMessage({ keystore: stranger.keystore, groups: stranger.groups, own: stranger.own }, message)),
    'unknown-sender-key');

  const opened = openGroupMessage({ keystore: bob.keystore, groups: bob.groups, own: bob.own }, message);
  assert.equal(opened.payload.text, 'Pansement à 9 h');
  assert.equal(opened.payload.groupId, GROUP);
  alice.groups.markDistributed(GROUP, built.given);

  // the next message carries no key copy, and opens with the installed receiver
  const next = await buildGroupSend(parts, { clientId: 'c2', groupId: GROUP, text: 'Merci', sentAt: 2, refresh: false });
  assert.deepEqual(next.frame.keys, []);
  const again = openGroupMessage({ keystore: bob.keystore, groups: bob.groups, own: bob.own },
    { ...message, body: fromBase64(next.frame.body), key: null });
  assert.equal(again.payload.text, 'Merci');
  assert.equal(errorCode(() => openGroupMessage({ keystore: bob.keystore, groups: bob.groups, own: bob.own },
    { ...message, body: fromBase64(next.frame.body), key: null })), 'replayed-message');

  // once removed, sending is refused here, before the server
  alice.groups.learn(info(4, [['bob', 'owner']]));
  await assert.rejects(buildGroupSend({ ...parts, api: { group: async () => info(4, [['bob', 'owner']]) } },
    { clientId: 'c3', groupId: GROUP, text: 'x', sentAt: 3, refresh: false }), { code: 'not-a-member' });
});

test('a stale membership: built again under the same id for the new epoch; accepted, its key copies count; rate-limited: sent again', async () => {
  const alice = new AppDevice('alice', 1);
  const bob = new AppDevice('bob', 2);
  const spk = SignedPrekeyPair.generate(1, bob.keystore.identity);
  let epoch = 3;
  const members = () => info(epoch, [['alice', 'owner'], ['bob', 'member']]);
  alice.groups.learn(members());
  const bundle = bundleOf(bob, 2, spk);
  const written = [];
  const api = { group: async () => members(), claimKeys: async () => ({ bundles: [bundle] }) };
  const directory = {
    devices: async (user) => new Map([[user === 'alice' ? 1 : 2, (user === 'alice' ? alice : bob).keystore.identity.public]]),
    checkAccepted: () => {},
  };
  const history = new History({});
  const sender = new Sender({
    keystore: alice.keystore, directory, groups: alice.groups, api, protocol: new ClientProtocol(), history,
    write: (data) => written.push(JSON.parse(data)) > 0, emit: () => {}, onContact: () => {},
  });
  const message = await sender.sendText(GROUP, 'Réunion à 18 h');
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(written.length, 1);
  assert.deepEqual([written[0].type, written[0].epoch, written[0].keys.length], ['group_send', 3, 1]);
  assert.deepEqual(message.audience, ['bob']);

  epoch = 4; // someone changed the group meanwhile: the server refuses the old epoch
  await sender.onRefused(written[0].id, new LienError('stale-membership', 'changed', { epoch: 4 }));
  assert.equal(written.length, 2);
  assert.deepEqual([written[1].id, written[1].epoch], [written[0].id, 4]);
  assert.notEqual(written[1].body, written[0].body, 'a new body: a chain key is never used twice');

  await sender.onAccepted({ id: written[1].id, message: 'S1', at: 10 });
  assert.equal(message.status, 'sent');
  assert.deepEqual(alice.groups.record(GROUP).distributed, ['bob/2']);
  assert.equal(alice.keystore.sentMessage('S1').to, GROUP);
  assert.deepEqual(alice.keystore.data.outbox, []);

  // over the fair-use rate: the same frame again after the delay the server gave
  const later = await sender.sendText(GROUP, 'plus tard');
  await new Promise((resolve) => setTimeout(resolve, 10));
  const limited = written.at(-1);
  await sender.onRefused(limited.id, new LienError('rate-limited', 'slow down', null, 0.05));
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.deepEqual(written.at(-1), limited);
  await sender.onAccepted({ id: limited.id, message: 'S2', at: 11 });
  assert.equal(later.status, 'sent');

  await sender.onRefused('other', new LienError('not-a-member'));
  const refused = await sender.sendText(GROUP, 'encore');
  await new Promise((resolve) => setTimeout(resolve, 10));
  await sender.onRefused(written.at(-1).id, new LienError('not-a-member'));
  assert.deepEqual([refused.status, refused.error], ['failed', 'not-a-member']);
});

test('over the fair-use rate: nothing is written until the delay passed, then every pending send in the order typed', async () => {
  const alice = new AppDevice('alice', 1);
  const bob = new AppDevice('bob', 2);
  const spk = SignedPrekeyPair.generate(1, bob.keystore.identity);
  alice.groups.learn(info(3, [['alice', 'owner'], ['bob', 'member']]));
  const bundle = bundleOf(bob, 2, spk);
  const written = [];
  const protocol = new ClientProtocol();
  const sender = new Sender({
    keystore: alice.keystore,
    directory: {
      devices: async (user) => new Map([[user === 'alice' ? 1 : 2, (user === 'alice' ? alice : bob).keystore.identity.public]]),
      checkAccepted: () => {},
    },
    groups: alice.groups,
    api: { group: async () => info(3, [['alice', 'owner'], ['bob', 'member']]), claimKeys: async () => ({ bundles: [bundle] }) },
    protocol, history: new History({}),
    write: (data) => written.push(JSON.parse(data)) > 0, emit: () => {}, onContact: () => {},
  });
  const settle = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  // What client.js does with the server's answers: through the protocol, then to the sender.
  const answer = async (frame) => {
    const event = protocol.receive(JSON.stringify(frame));
    if (event.kind === 'accepted') await sender.onAccepted(event.accepted);
    else await sender.onRefused(event.clientId, event.error);
  };
  const limited = (id) => ({ type: 'error', code: 'rate-limited', message: 'Too many.', ref: id, retry_after: 0.1 });

  for (const text of ['un', 'deux', 'trois']) await sender.sendText(GROUP, text);
  await settle(10);
  const [one, two, three] = written;
  assert.equal(written.length, 3);
  await answer({ type: 'accepted', id: one.id, message: 'S1', at: 1, duplicate: false });
  await answer(limited(two.id));
  await answer(limited(three.id));
  await sender.sendText(GROUP, 'quatre'); // typed during the hold: pending, not written
  await settle(10);
  assert.equal(written.length, 3, 'nothing is written while over the rate');

  await settle(150);
  assert.equal(written.length, 6);
  assert.deepEqual(written.slice(3, 5), [two, three], 'the refused frames again, unchanged, first');
  assert.ok(![one.id, two.id, three.id].includes(written[5].id), 'then the one typed during the hold');
});

test('history: a group message is delivered once every member decrypted it, read once every member read it', () => {
  const history = new History({});
  history.addOutgoing(GROUP, { clientId: 'c1', text: 'Bonjour l’équipe', sentAt: 1, from: 'alice' });
  assert.equal(history.conversation(GROUP).kind, 'group');
  history.setAudience('c1', ['carol', 'bob']);
  history.accepted('c1', 'S1', 2);
  assert.ok(history.receipt('S1', 'decrypted', 'bob', 3));
  assert.equal(history.byServerId.get('S1').status, 'sent');
  assert.ok(history.receipt('S1', 'read', 'bob', 4));
  assert.equal(history.receipt('S1', 'read', 'bob', 5), null, 'a repeated receipt changes nothing');
  assert.ok(history.receipt('S1', 'decrypted', 'carol', 6));
  assert.equal(history.byServerId.get('S1').status, 'delivered');
  assert.deepEqual(History.memberStatuses(history.byServerId.get('S1')).map(({ user, status }) => [user, status]),
    [['bob', 'read'], ['carol', 'delivered']]);
  history.receipt('S1', 'read', 'carol', 7);
  assert.equal(history.byServerId.get('S1').status, 'read');

  const event = { event: 'member-added', actor: 'alice', subject: 'dave', name: null, role: 'member' };
  assert.ok(history.addSystem(GROUP, { id: `event:${GROUP}:2`, at: 8, event }));
  assert.equal(history.addSystem(GROUP, { id: `event:${GROUP}:2`, at: 8, event }), null, 'once');
  assert.equal(history.totalUnread(), 0, 'system lines are never unread');
  assert.equal(history.conversation(GROUP).messages.at(-1).system, true);
});

test('group events in plain French', () => {
  const names = { 'dr.martin': 'Dr Hélène Martin', 'inf.petit': 'Claire Petit' };
  const say = (event, me = 'someone') => describeGroupEvent(event, { me, nameOf: (user) => names[user] ?? user });
  assert.equal(say({ event: 'created', actor: 'dr.martin', name: 'Équipe' }), 'Dr Hélène Martin a créé le groupe « Équipe »');
  assert.equal(say({ event: 'member-added', actor: 'dr.martin', subject: 'inf.petit' }), 'Dr Hélène Martin a ajouté Claire Petit');
  assert.equal(say({ event: 'member-added', actor: 'dr.martin', subject: 'inf.petit' }, 'inf.petit'), 'Dr Hélène Martin vous a ajouté au groupe');
  assert.equal(say({ event: 'member-added', actor: 'dr.martin', subject: 'inf.petit', role: 'admin' }, 'dr.martin'),
    'Vous avez ajouté Claire Petit comme administrateur');
  assert.equal(say({ event: 'member-removed', actor: 'dr.martin', subject: 'inf.petit' }), 'Dr Hélène Martin a retiré Claire Petit du groupe');
  assert.equal(say({ event: 'member-left', actor: 'inf.petit', subject: 'inf.petit' }), 'Claire Petit a quitté le groupe');
  assert.equal(say({ event: 'renamed', actor: 'inf.petit', name: 'Suivi' }), 'Claire Petit a renommé le groupe en « Suivi »');
  assert.equal(say({ event: 'role-changed', actor: 'dr.martin', subject: 'inf.petit', role: 'admin' }),
    'Claire Petit est maintenant administrateur du groupe');
  assert.match(say({ event: 'devices-changed', actor: 'inf.petit', subject: 'inf.petit' }), /^Les appareils de Claire Petit ont changé/);
});

test('protocol: group ids, group sends, typing in a group', () => {
  assert.ok(isGroupId('GABC234'));
  assert.ok(!isGroupId('dr.martin') && !isGroupId('G') && !isGroupId('Gabc'));
  assert.deepEqual(groupSendFrame('c1', GROUP, 3, 'Ym9keQ==', []),
    { type: 'group_send', id: 'c1', group: GROUP, epoch: 3, body: 'Ym9keQ==', keys: [] });
  assert.throws(() => groupSendFrame('c1', 'dr.martin', 3, 'x', []), RangeError);
  assert.throws(() => groupSendFrame('c1', GROUP, 0, 'x', []), RangeError);
  assert.deepEqual(typingFrame(GROUP, true), { type: 'typing', group: GROUP, active: true });
  assert.deepEqual(typingFrame('dr.martin', false), { type: 'typing', to: 'dr.martin', active: false });
});
