// narakim: seals a secret value in the page before it is sent.
//
// HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256
// and AES-256-GCM, on the browser's own Web Crypto. The server's public
// key comes from GET /api/v1/seal-key. The AAD binds the write: scope,
// owner, secret name and the version the page expects to replace, so a
// captured envelope cannot be replayed onto another secret or version.
// The value field has no name attribute: the browser never posts it.
"use strict";
(function () {
  const te = new TextEncoder();
  const KEM_ID = 0x0020, KDF_ID = 0x0001, AEAD_ID = 0x0002;
  const NK = 32, NN = 12, NH = 32;

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  function i2osp(n, len) {
    const out = new Uint8Array(len);
    for (let i = len - 1; i >= 0; i--) { out[i] = n & 0xff; n >>= 8; }
    return out;
  }
  function b64url(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function unb64url(text) {
    const s = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
  }
  async function hmac(key, data) {
    // An empty salt is HashLen zero bytes (RFC 5869).
    const k = await crypto.subtle.importKey("raw", key.length ? key : new Uint8Array(NH),
      { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
  }
  const HPKE_V1 = te.encode("HPKE-v1");
  function labeledExtract(suite, salt, label, ikm) {
    return hmac(salt, concat(HPKE_V1, suite, te.encode(label), ikm));
  }
  async function labeledExpand(suite, prk, label, info, len) {
    // len <= 32 here: one HMAC block (T(1)).
    const t = await hmac(prk, concat(i2osp(len, 2), HPKE_V1, suite, te.encode(label), info, new Uint8Array([1])));
    return t.slice(0, len);
  }

  async function seal(pkR, info, aad, plaintext) {
    const kemSuite = concat(te.encode("KEM"), i2osp(KEM_ID, 2));
    const suite = concat(te.encode("HPKE"), i2osp(KEM_ID, 2), i2osp(KDF_ID, 2), i2osp(AEAD_ID, 2));
    // Encap: an ephemeral X25519 pair, DH with the server's key.
    const eph = await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
    const pkRKey = await crypto.subtle.importKey("raw", pkR, { name: "X25519" }, false, []);
    const dh = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: pkRKey }, eph.privateKey, 256));
    const enc = new Uint8Array(await crypto.subtle.exportKey("raw", eph.publicKey));
    const eaePrk = await labeledExtract(kemSuite, new Uint8Array(0), "eae_prk", dh);
    const shared = await labeledExpand(kemSuite, eaePrk, "shared_secret", concat(enc, pkR), NH);
    // KeySchedule, mode_base.
    const pskIdHash = await labeledExtract(suite, new Uint8Array(0), "psk_id_hash", new Uint8Array(0));
    const infoHash = await labeledExtract(suite, new Uint8Array(0), "info_hash", info);
    const context = concat(new Uint8Array([0]), pskIdHash, infoHash);
    const secret = await labeledExtract(suite, shared, "secret", new Uint8Array(0));
    const key = await labeledExpand(suite, secret, "key", context, NK);
    const nonce = await labeledExpand(suite, secret, "base_nonce", context, NN);
    const aes = await crypto.subtle.importKey("raw", key, { name: "AES-GCM" }, false, ["encrypt"]);
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, aes, plaintext));
    return { enc, ct };
  }

  let sealKey = null;
  async function serverKey() {
    if (!sealKey) {
      const r = await fetch("/api/v1/seal-key", { credentials: "omit", cache: "no-store" });
      if (!r.ok) throw new Error("the server's sealing key could not be read (HTTP " + r.status + ")");
      sealKey = await r.json();
    }
    return sealKey;
  }

  function showError(form, text) {
    let box = form.querySelector(".seal-error");
    if (!box) {
      box = document.createElement("p");
      box.className = "banner error seal-error";
      box.setAttribute("role", "alert");
      form.prepend(box);
    }
    box.textContent = text;
  }

  async function onSubmit(event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("seal")) return;
    event.preventDefault();
    const field = form.querySelector("[data-seal-value]");
    const button = form.querySelector("button[type=submit]");
    try {
      if (button) button.disabled = true;
      const key = await serverKey();
      const name = form.elements.namedItem("name").value.trim();
      const expected = form.elements.namedItem("expected").value;
      const aad = te.encode(JSON.stringify(["narakim-secret-v1", form.dataset.scope, form.dataset.owner, name, expected]));
      const { enc, ct } = await seal(unb64url(key.public_key), te.encode(key.info), aad, te.encode(field.value));
      form.elements.namedItem("sealed").value = JSON.stringify({ key_id: key.key_id, enc: b64url(enc), ciphertext: b64url(ct) });
      field.value = "";
      form.submit();
    } catch (e) {
      if (button) button.disabled = false;
      showError(form, "The value was not sent: " + e.message);
    }
  }

  document.addEventListener("submit", onSubmit);
  // This script runs, so values can be sealed: drop the no-script notes.
  for (const note of document.querySelectorAll(".no-script")) note.remove();
})();
