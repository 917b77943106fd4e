// Replays the primitive-level test vectors with libsodium-wrappers-sumo (docs/protocol-crypto.md §3.11).
//
// Not part of the Python test suite: it shows that every primitive of §3.4 exists in the browser's
// library and gives the same bytes. Run it with:
//
//     cd "$(mktemp -d)" && npm install libsodium-wrappers-sumo
//     NODE_PATH="$PWD/node_modules" node /path/to/scripts/check_vectors_js.cjs
//
// Covers kdf.json, x3dh.json (SK from the DH values), payload.json (signatures), safety.json, and
// group.json in full (sender keys: key creation from the draws, distributions, bodies, receiving).
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
  // --- group.json: sender keys (docs/protocol-group.md §3.17), replayed in full ----------------
  const g = JSON.parse(fs.readFileSync(V + 'group.json'));
  const cat = (...a) => { const o = new Uint8Array(a.reduce((n, x) => n + x.length, 0)); let i = 0; for (const x of a) { o.set(x, i); i += x.length; } return o; };
  const u32 = (v) => new Uint8Array([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]);
  const rd32 = (b, i) => b[i] * 0x1000000 + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];
  const ascii = (b) => { if (b.some(x => x > 127)) return null; return String.fromCharCode(...b); };
  const str8 = (t) => cat(new Uint8Array([t.length]), s.from_string(t));  // group ids are ASCII
  const GC = g.constants, GINFO = h(GC.group_message_key_info), ADDOM = h(GC.group_ad_domain);
  const BDOM = h(GC.group_body_signature_domain), PDOM = h(GC.group_payload_signature_domain);
  const gid = g.group_id;
  const kdfck = (ck) => [hmac(ck, new Uint8Array([2])), hmac(ck, new Uint8Array([1]))];   // (next CK, MK)
  const expand = (mk) => { const o = hkdf(mk, new Uint8Array(32), GINFO, 56); return [o.slice(0, 32), o.slice(32)]; };
  const ad = (header) => cat(ADDOM, str8(gid), header);
  const ident = s.crypto_sign_seed_keypair(h(g.sender.identity.signing_seed));
  const draws = g.sender.random.map(d => h(d.bytes)); let drawn = 0;
  const draw = (n) => { const d = draws[drawn++]; if (d.length !== n) throw new Error('draw size'); return d; };
  function createKey(avoid) {  // §3.17.2: key_id (redrawn while equal to the old one), CK, seed
    let id = rd32(draw(4), 0); while (id === avoid) id = rd32(draw(4), 0);
    return { id, it: 0, ck: draw(32), kp: s.crypto_sign_seed_keypair(draw(32)) };
  }
  function parseDistribution(b) {  // §3.17.4.2
    if (b.length < 2 || b[0] !== 1 || b.length !== 2 + b[1] + 72) throw 'invalid-distribution';
    const id = ascii(b.slice(2, 2 + b[1])); if (id === null || !/^[A-Za-z0-9_.:-]{1,64}$/.test(id)) throw 'invalid-distribution';
    const o = 2 + b[1], spk = b.slice(o + 40);
    if (!s.crypto_core_ed25519_is_valid_point(spk)) throw 'invalid-distribution';
    return { gid: id, id: rd32(b, o), it: rd32(b, o + 4), ck: b.slice(o + 8, o + 40), spk };
  }
  function install(chains, d) {  // §3.17.4.4
    if (d.gid !== gid) throw 'invalid-distribution';
    const held = chains.find(c => c.id === d.id);
    if (held) { if (!s.memcmp(held.spk, d.spk)) throw 'invalid-distribution'; return chains; }
    return [...chains, { id: d.id, spk: d.spk, it: d.it, ck: d.ck, skipped: new Map() }].slice(-2);
  }
  function parseBody(b) {  // §3.17.5.3
    if (b.length === 0) throw 'malformed-message';
    if (b[0] !== 3) throw 'unsupported-format';
    if (b.length < 89 || b.length > 65536) throw 'malformed-message';
    return { id: rd32(b, 1), n: rd32(b, 5), header: b.slice(0, 9), ct: b.slice(9, b.length - 64), sig: b.slice(b.length - 64) };
  }
  function openBody(r, b) {  // §3.17.7 steps 1 to 9 (step 0 is the caller's routing)
    const p = parseBody(b);
    const idx = r.chains.findIndex(c => c.id === p.id); if (idx < 0) throw 'unknown-sender-key';
    const c = r.chains[idx];
    if (!s.crypto_sign_verify_detached(p.sig, cat(BDOM, str8(gid), p.header, p.ct), c.spk)) throw 'decryption-failed';
    const w = { ...c, skipped: new Map(c.skipped) }; let mk;
    if (w.skipped.has(p.n)) { mk = w.skipped.get(p.n); w.skipped.delete(p.n); }
    else if (p.n < w.it) throw 'replayed-message';
    else if (p.n - w.it > GC.max_skip) throw 'too-many-skipped';
    else {
      let ck = w.ck, m;
      while (w.it < p.n) { [ck, m] = kdfck(ck); w.skipped.set(w.it, m); w.it++; }
      while (w.skipped.size > GC.max_skipped_keys) w.skipped.delete(Math.min(...w.skipped.keys()));
      [w.ck, mk] = kdfck(ck); w.it++;
    }
    const [key, nonce] = expand(mk); let pt;
    try { pt = s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, p.ct, ad(p.header), nonce, key); } catch (e) { throw 'decryption-failed'; }
    if (pt.length < 4 || pt.length % 256) throw 'malformed-payload';
    const len = rd32(pt, 0), end = 4 + len + 64;
    if (end > pt.length || pt.slice(end).some(x => x) || pt.length - end !== (256 - end % 256) % 256) throw 'malformed-payload';
    const pb = pt.slice(4, 4 + len), psig = pt.slice(4 + len, end);
    if (!s.crypto_sign_verify_detached(psig, cat(PDOM, pb), r.identity)) throw 'bad-signature';
    // §3.17.6 prefix: version 3, sender, kind 2, group id (the rest is as §3.8.1)
    const n = pb[1], user = ascii(pb.slice(2, 2 + n)), dev = hex(pb.slice(2 + n, 10 + n));
    if (pb[0] !== 3 || pb[10 + n] !== 2) throw 'malformed-payload';
    if (user !== g.sender.address.user || BigInt('0x' + dev) !== BigInt(g.sender.address.device)) throw 'sender-mismatch';
    if (ascii(pb.slice(12 + n, 12 + n + pb[11 + n])) !== gid) throw 'conversation-mismatch';
    r.chains[idx] = w;
    return [pb, psig];
  }
  let skey = null; const receivers = {}, bodies = {}, codes = [];
  for (const st of g.steps) {
    if (st.op === 'create' || st.op === 'rotate') {
      skey = createKey(skey ? skey.id : null);
      eq(`${skey.id} ${hex(skey.ck)} ${hex(skey.kp.publicKey)}`, `${st.key_id} ${st.chain_key} ${st.signing_key}`, 'group key');
    } else if (st.op === 'distribute') {
      const d = cat(new Uint8Array([1]), str8(gid), u32(skey.id), u32(skey.it), skey.ck, skey.kp.publicKey);
      eq(hex(d), st.distribution, 'distribution');
      eq(s.to_base64(d, s.base64_variants.ORIGINAL), st.carrier_text, 'carrier text');
      for (const name of st.to) {
        const r = receivers[name] || (receivers[name] = { chains: [], identity: ident.publicKey });
        r.chains = install(r.chains, parseDistribution(d));
        eq(r.chains.map(c => c.id).join(','), st.key_ids_after[name].join(','), 'key ids');
      }
    } else if (st.op === 'encrypt') {
      const pb = h(st.payload_bytes);
      const psig = s.crypto_sign_detached(cat(PDOM, pb), ident.privateKey);
      eq(hex(psig), st.payload_signature, 'group payload signature');
      const framed = cat(u32(pb.length), pb, psig); const pt = cat(framed, new Uint8Array((256 - framed.length % 256) % 256));
      eq(hex(pt), st.plaintext, 'group plaintext');
      const header = cat(new Uint8Array([3]), u32(skey.id), u32(skey.it)); const [nck, mk] = kdfck(skey.ck); const [key, nonce] = expand(mk);
      const ct = s.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, ad(header), null, nonce, key);
      const sig = s.crypto_sign_detached(cat(BDOM, str8(gid), header, ct), skey.kp.privateKey);
      skey.ck = nck; skey.it++;
      eq(hex(cat(header, ct, sig)), st.body, 'group body ' + st.label);
      bodies[st.label] = cat(header, ct, sig);
    } else {
      const r = receivers[st.by], before = JSON.stringify(r.chains.map(c => [c.id, c.it, hex(c.ck), [...c.skipped.keys()]]));
      try {
        const [pb, psig] = openBody(r, st.body ? h(st.body) : bodies[st.label]);
        eq(hex(pb) + hex(psig), (st.payload_bytes || '') + (st.payload_signature || ''), 'group decrypt ' + st.label);
      } catch (code) {
        if (typeof code !== 'string') throw code;
        codes.push(code); eq(code, st.error, 'group error ' + st.label);
        eq(JSON.stringify(r.chains.map(c => [c.id, c.it, hex(c.ck), [...c.skipped.keys()]])), before, 'unchanged');
      }
    }
  }
  eq(drawn, draws.length, 'all draws used');
  eq(codes.length, 6, 'group errors');
  for (const c of g.group_payloads.cases) {
    const gsk = s.crypto_sign_seed_keypair(h(g.group_payloads.signer.signing_seed));
    eq(hex(s.crypto_sign_detached(cat(PDOM, h(c.encoded)), gsk.privateKey)), c.signature, 'group payload case');
  }
  const codeOf = (f) => { try { f(); return null; } catch (e) { if (typeof e !== 'string') throw e; return e; } };
  for (const c of g.rejected_bodies) eq(codeOf(() => parseBody(h(c.body))), c.error, 'rejected body ' + c.reason);
  for (const c of g.rejected_distributions) eq(codeOf(() => parseDistribution(h(c.distribution))), c.error, 'rejected distribution ' + c.reason);
  console.log(`${ok} passed, ${bad} failed`);
  process.exitCode = bad ? 1 : 0;
});
