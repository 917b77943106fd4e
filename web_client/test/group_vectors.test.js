// group.json (docs/protocol-group.md §3.17.11): sender keys, byte for byte.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { concat, toBase64 } from '../src/crypto/bytes.js';
import { SenderKeyReceiver, _createWithRandom } from '../src/crypto/group.js';
import {
  DISTRIBUTION_CONTENT_TYPE, GROUP_AD_DOMAIN, GROUP_BODY_SIGNATURE_DOMAIN, SenderKeyDistribution,
  groupAssociatedData, groupBodySigningInput, parseGroupBody,
} from '../src/crypto/group_wire.js';
import {
  Conversation, GROUP_SIGNATURE_DOMAIN, GroupPayload, encodePlaintext, groupSigningInput, signGroupPayload,
  verifyGroupPayload, verifyPayload,
} from '../src/crypto/payload.js';
import { GROUP_MESSAGE_KEY_INFO, kdfCk, messageAeadKey } from '../src/crypto/primitives.js';
import { addressFrom, errorCode, h, hex, identityFrom, loadVectors } from '../test-support/vectors.js';

const data = loadVectors('group.json');
const groupId = data.group_id;
const alice = addressFrom(data.sender.address);
const conversation = Conversation.group(groupId);

/** A GroupPayload from the vectors' JSON fields. */
function groupPayloadFrom(fields) {
  assert.equal(fields.conversation.kind, 'group');
  return new GroupPayload({
    sender: addressFrom(fields.sender),
    conversation: Conversation.group(fields.conversation.id),
    clientMessageId: fields.client_message_id,
    sentAtMs: BigInt(fields.sent_at_ms),
    text: fields.text,
    contentType: fields.content_type,
  });
}

test('the constants are those of the vectors', () => {
  const { constants } = data;
  assert.equal(hex(GROUP_MESSAGE_KEY_INFO), constants.group_message_key_info);
  assert.equal(hex(GROUP_AD_DOMAIN), constants.group_ad_domain);
  assert.equal(hex(GROUP_BODY_SIGNATURE_DOMAIN), constants.group_body_signature_domain);
  assert.equal(hex(GROUP_SIGNATURE_DOMAIN), constants.group_payload_signature_domain);
  assert.equal(DISTRIBUTION_CONTENT_TYPE, constants.distribution_content_type);
});

test('the group.json scenario replays byte for byte, failures leaving receivers unchanged', () => {
  const identity = identityFrom(data.sender.identity);
  const draws = data.sender.random.map((draw) => ({ size: draw.size, bytes: h(draw.bytes) }));
  let drawn = 0;
  const random = (size) => {
    assert.ok(drawn < draws.length, 'more random draws than the vectors list');
    assert.equal(size, draws[drawn].size);
    return draws[drawn++].bytes;
  };
  let key = null;
  const receivers = {};
  const bodies = {};
  const outcomes = { opened: 0, refused: 0 };
  for (const step of data.steps) {
    if (step.op === 'create' || step.op === 'rotate') {
      key = step.op === 'create'
        ? _createWithRandom(groupId, alice, identity.public, random, null)
        : key._rotateWithRandom(random);
      assert.equal(drawn, step.draws_so_far);
      assert.equal(key.keyId, step.key_id);
      assert.equal(key.iteration, 0);
      assert.equal(hex(key.distribution().chainKey), step.chain_key);
      assert.equal(hex(key.signingPublicKey), step.signing_key);
    } else if (step.op === 'distribute') {
      const distribution = key.distribution();
      assert.equal(hex(distribution.encode()), step.distribution);
      assert.equal(toBase64(distribution.encode()), step.carrier_text);
      const parsed = SenderKeyDistribution.decode(h(step.distribution));
      assert.deepEqual(
        [parsed.groupId, parsed.keyId, parsed.iteration, hex(parsed.chainKey), hex(parsed.signingKey)],
        [step.parsed.group_id, step.parsed.key_id, step.parsed.iteration, step.parsed.chain_key, step.parsed.signing_key],
      );
      for (const name of step.to) {
        receivers[name] ??= SenderKeyReceiver.create(groupId, alice, identity.public);
        receivers[name].install(h(step.distribution));
        assert.deepEqual(receivers[name].keyIds, step.key_ids_after[name], name);
      }
    } else if (step.op === 'encrypt') {
      checkEncryption(step, key, identity);
      const body = key.encrypt(groupPayloadFrom(step.payload), identity);
      assert.equal(hex(body), step.body, step.label);
      bodies[step.label] = body;
    } else {
      assert.equal(step.op, 'decrypt');
      const receiver = receivers[step.by];
      const before = JSON.stringify(receiver.toDict());
      const body = step.body === undefined ? bodies[step.label] : h(step.body);
      const code = errorCode(() => {
        const signed = receiver.decrypt(body, { deliveredBy: alice, conversation });
        assert.equal(hex(signed.encoded), step.payload_bytes, `${step.by} ${step.label}`);
        assert.equal(hex(signed.signature), step.payload_signature);
        assert.equal(hex(signed.signer), data.sender.identity.signing_key);
        assert.ok(signed.payload instanceof GroupPayload);
      });
      assert.equal(code, step.error ?? null, `${step.by} ${step.label} ${step.reason ?? ''}`);
      if (code === null) outcomes.opened += 1;
      else {
        outcomes.refused += 1;
        assert.equal(JSON.stringify(receiver.toDict()), before, 'a failure changes nothing');
      }
    }
  }
  assert.equal(drawn, draws.length, 'every random draw used');
  assert.deepEqual(outcomes, { opened: 11, refused: 6 });
});

/** Every intermediate value of one `encrypt` step, computed from the sender key's state. */
function checkEncryption(step, key, identity) {
  assert.equal(key.keyId, step.key_id);
  assert.equal(key.iteration, step.iteration);
  const chainKey = key.distribution().chainKey;
  assert.equal(hex(chainKey), step.chain_key);
  const payload = groupPayloadFrom(step.payload);
  const signed = signGroupPayload(identity, payload);
  assert.equal(hex(signed.encoded), step.payload_bytes);
  assert.equal(hex(signed.signature), step.payload_signature);
  assert.equal(hex(encodePlaintext(signed)), step.plaintext);
  const [, messageKey] = kdfCk(chainKey);
  assert.equal(hex(messageKey), step.message_key);
  const [aeadKey, nonce] = messageAeadKey(messageKey, GROUP_MESSAGE_KEY_INFO);
  assert.equal(hex(aeadKey), step.aead_key);
  assert.equal(hex(nonce), step.aead_nonce);
  const header = h(step.header);
  assert.equal(hex(groupAssociatedData(groupId, header)), step.associated_data);
  assert.equal(hex(groupBodySigningInput(groupId, concat(header, h(step.ciphertext)))), step.body_signing_input);
  const parsed = parseGroupBody(h(step.body));
  assert.deepEqual([parsed.keyId, parsed.iteration, hex(parsed.header)], [step.key_id, step.iteration, step.header]);
  assert.equal(hex(parsed.ciphertext), step.ciphertext);
  assert.equal(hex(parsed.signature), step.body_signature);
}

test('group payloads: encodings, signing inputs, signatures and plaintexts', () => {
  const { signer: signerData, cases, rejected } = data.group_payloads;
  const signer = identityFrom(signerData);
  for (const each of cases) {
    const payload = groupPayloadFrom(each.payload);
    const signed = signGroupPayload(signer, payload);
    assert.equal(hex(signed.encoded), each.encoded);
    assert.equal(hex(groupSigningInput(signed.encoded)), each.signing_input);
    assert.equal(hex(signed.signature), each.signature);
    assert.equal(hex(encodePlaintext(signed)), each.plaintext);
    const decoded = verifyPayload(h(each.encoded), h(each.signature), signer.public.signingKey);
    assert.ok(decoded instanceof GroupPayload);
    assert.equal(decoded.text, each.payload.text);
    assert.equal(decoded.sentAtMs, BigInt(each.payload.sent_at_ms));
  }
  for (const each of rejected) {
    const verify = each.group_only ? verifyGroupPayload : verifyPayload;
    const code = errorCode(() => verify(h(each.encoded), h(each.signature), signer.public.signingKey));
    assert.equal(code, each.error, each.reason);
  }
});

test('rejected bodies and distributions fail with their code', () => {
  for (const each of data.rejected_bodies) {
    assert.equal(errorCode(() => parseGroupBody(h(each.body))), each.error, each.reason);
  }
  for (const each of data.rejected_distributions) {
    assert.equal(errorCode(() => SenderKeyDistribution.decode(h(each.distribution))), each.error, each.reason);
  }
});
