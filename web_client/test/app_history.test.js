// Conversation history (app/history.js): statuses only move forward, unread counts, dedupe.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { userMessage, USER_MESSAGES } from '../app/errors.js';
import { LienError } from '../app/errors.js';
import { History } from '../app/history.js';

test('an outgoing message goes pending, sent, delivered, read, never backwards', () => {
  const history = new History({});
  history.addOutgoing('bob', { clientId: 'c1', text: 'Kaliémie 6,8 🧪', sentAt: 1, from: 'alice' });
  assert.equal(history.conversation('bob').messages[0].status, 'pending');
  history.accepted('c1', 'S1', 2);
  assert.equal(history.byServerId.get('S1').status, 'sent');
  assert.ok(history.receipt('S1', 'decrypted', 'bob', 3));
  assert.ok(history.receipt('S1', 'read', 'bob', 4));
  assert.equal(history.receipt('S1', 'delivered', 'bob', 5), null);
  assert.equal(history.byServerId.get('S1').status, 'read');
});

test('received messages count as unread until taken, once each', () => {
  const conversations = {};
  const history = new History(conversations);
  const fields = { id: 'S2', clientId: 'x', from: 'bob', fromDevice: 2, outgoing: false, text: 'Bonjour', sentAt: 1, at: 2 };
  assert.ok(history.addReceived('bob', fields));
  assert.equal(history.addReceived('bob', fields), null);
  assert.equal(history.totalUnread(), 1);
  assert.deepEqual(history.takeUnread('bob').map((message) => message.id), ['S2']);
  assert.equal(history.totalUnread(), 0);
  assert.deepEqual(history.takeUnread('bob'), []);
  // the state is plain data: a reload rebuilds the same history from it
  const reloaded = new History(JSON.parse(JSON.stringify(conversations)));
  assert.equal(reloaded.byServerId.get('S2').text, 'Bonjour');
});

test('a read mark from another own device clears the unread count', () => {
  const history = new History({});
  history.addReceived('bob', { id: 'S3', clientId: 'y', from: 'bob', fromDevice: 2, outgoing: false, text: 'a', sentAt: 1, at: 2 });
  assert.ok(history.readElsewhere('S3'));
  assert.equal(history.totalUnread(), 0);
});

test('every server error code has plain words, and unknown ones a fallback', () => {
  for (const code of ['invalid-credentials', 'username-taken', 'unknown-user', 'devices-mismatch', 'auth-failed', 'network']) {
    assert.equal(userMessage(new LienError(code)), USER_MESSAGES[code]);
  }
  assert.match(userMessage(new LienError('something-new')), /erreur/);
  assert.match(userMessage(new Error('stack')), /erreur/);
});

test('a refusal with a delay says how long to wait', () => {
  assert.equal(userMessage(new LienError('rate-limited', 'x', null, 41.2)), 'Trop de tentatives ; réessayez dans 42 s.');
  assert.equal(userMessage(new LienError('rate-limited', 'x', null, 0.2)), USER_MESSAGES['rate-limited']);
  assert.equal(userMessage(new LienError('rate-limited')), USER_MESSAGES['rate-limited']);
});
