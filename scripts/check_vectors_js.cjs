// Replays the primitive-level test vectors with libsodium-wrappers-sumo (docs/protocol-crypto.md §3.11).
//
// Not part of the Python test suite: it shows that every primitive of §3.4 exists in the browser's
// library and gives the same bytes. Run it with:
//
//     cd "$(mktemp -d)" && npm install libsodium-wrappers-sumo
//     NODE_PATH="$PWD/node_modules" node /path/to/scripts/check_vectors_js.cjs
//
// Covers kdf.json, x3dh.json (SK from the DH values), payload.json (signatures) and safety.json.
// Notes for the JavaScript implementation, found by this script:
// * libsodium-wrappers-sumo 0.8 has no crypto_kdf_hkdf_sha256_*: HKDF is built on crypto_auth_hmacsha256
//   (every HMAC key in the protocol is 32 bytes; the RFC 5869 cases use _init/_update/_final);
// * crypto_scalarmult accepts non-canonical public keys (u >= 2^255 - 19 after masking the top bit), so
//   the canonical check of §3.4.2 must be done explicitly before every X25519.
'use strict';
const s = require('libsodium-wrappers-sumo');
const fs = require('fs');
const V = require('path').join(__dirname, '..', 'tests', 'vectors') + '/';
s.ready.then(() => {
  const h = (x) => s.from_hex(x), hex = (b) => s.to_hex(b);
  function isCanonical(key) {  // §3.4.2: little-endian u < 2^255 - 19
    let u = 0n; for (let i = 31; i >= 0; i--) u = u * 256n + BigInt(key[i]);
    return key.length === 32 && u < (1n << 255n) - 19n;
  }
  function hmac(key, msg) {
    if (key.length === 32) return s.crypto_auth_hmacsha256(msg, key);
    const st = s.crypto_auth_hmacsha256_init(key); s.crypto_auth_hmacsha256_update(st, msg); return s.crypto_auth_hmacsha256_final(st);
  }
  function hkdf(ikm, salt, info, len) {
    const prk = hmac(salt, ikm); let out = new Uint8Array(0), block = new Uint8Array(0);
    for (let i = 1; out.length < len; i++) {
      const m = new Uint8Array([...block, ...info, i]); block = hmac(prk, m);
      out = new Uint8Array([...out, ...block]);
    }
    return out.slice(0, len);
  }
  const k = JSON.parse(fs.readFileSync(V + 'kdf.json'));
  let ok = 0, bad = 0; const eq = (a, b, what) => { if (a === b) ok++; else { bad++; console.log('MISMATCH', what); } };
  for (const c of k.hkdf_sha256) eq(hex(hkdf(h(c.ikm), h(c.salt), h(c.info), c.length)), c.okm, 'hkdf');
  for (const c of k.hmac_sha256) eq(hex(hmac(h(c.key), h(c.message))), c.mac, 'hmac');
  const info = (x) => h(x);
  for (const c of k.kdf_rk) { const o = hkdf(h(c.dh_output), h(c.root_key), info(k.constants.root_kdf_info), 64); eq(hex(o.slice(0,32)) + hex(o.slice(32)), c.new_root_key + c.chain_key, 'kdf_rk'); }
  for (const c of k.kdf_ck) { eq(hex(hmac(h(c.chain_key), new Uint8Array([2]))) + hex(hmac(h(c.chain_key), new Uint8Array([1]))), c.next_chain_key + c.message_key, 'kdf_ck'); }
  for (const c of k.aead) { const o = hkdf(h(c.message_key), new Uint8Array(32), info(k.constants.message_key_info), 56);
    eq(hex(s.crypto_aead_xchacha20poly1305_ietf_encrypt(h(c.plaintext), h(c.associated_data), null, o.slice(32), o.slice(0,32))), c.ciphertext, 'aead'); }
  for (const c of k.x25519) { eq(hex(s.crypto_scalarmult_base(h(c.private))), c.public, 'x25519 pub'); eq(hex(s.crypto_scalarmult(h(c.private), h(c.peer_public))), c.shared, 'x25519'); }
  for (const p of k.x25519_rejected) { try { s.crypto_scalarmult(h(k.x25519[0].private), h(p)); if (isCanonical(h(p))) { bad++; console.log('accepted', p); } else ok++; } catch (e) { ok++; } }
  const pl = JSON.parse(fs.readFileSync(V + 'payload.json'));
  const sk = s.crypto_sign_seed_keypair(h(pl.signer.signing_seed));
  for (const c of pl.cases) { eq(hex(s.crypto_sign_detached(h(c.signing_input), sk.privateKey)), c.signature, 'sign'); }
  const x = JSON.parse(fs.readFileSync(V + 'x3dh.json'));
  for (const c of x.cases) {
    const dh = c.dh.map(h); const ikm = new Uint8Array([...new Uint8Array(32).fill(255), ...dh.flatMap(d => [...d])]);
    eq(hex(hkdf(ikm, new Uint8Array(32), info(k.constants.x3dh_info), 32)), c.shared_secret, 'x3dh');
  }
  const sf = JSON.parse(fs.readFileSync(V + 'safety.json'));
  for (const u of sf.users) {
    const keys = u.devices.map(d => d.signing_key + d.exchange_key).sort(); const joined = h(keys.join(''));
    const name = s.from_string(u.username);
    let d = s.crypto_hash_sha512(new Uint8Array([0, 1, name.length, ...name, keys.length >> 8, keys.length & 255, ...joined]));
    for (let i = 0; i < 5200; i++) d = s.crypto_hash_sha512(new Uint8Array([...d, ...joined]));
    let digits = ''; for (let i = 0; i < 6; i++) { let v = 0n; for (const b of d.slice(i*5, i*5+5)) v = v * 256n + BigInt(b); digits += String(v % 100000n).padStart(5, '0'); }
    eq(digits, u.fingerprint, 'safety');
  }
  console.log(`${ok} passed, ${bad} failed`);
  process.exitCode = bad ? 1 : 0;
});
