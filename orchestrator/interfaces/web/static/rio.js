// rio pages: login and record signing with the person's own Ed25519 key, in the browser.
// The key file is read here and imported into WebCrypto; only signatures leave the page.
"use strict";

const rio = (() => {
  const enc = new TextEncoder();

  function b64decode(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function b64encode(bytes) {
    let bin = "";
    for (const b of new Uint8Array(bytes)) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  function hex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function concat(...parts) {
    const total = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  // DSSE pre-authentication encoding: "DSSEv1 len(type) type len(body) body".
  function pae(payloadType, body) {
    const type = enc.encode(payloadType);
    return concat(enc.encode(`DSSEv1 ${type.length} `), type, enc.encode(` ${body.length} `), body);
  }

  // A PKCS#8 PEM private key file (as `rio keys generate` writes it) -> key and key id.
  async function loadKey(file) {
    const pem = await file.text();
    const m = pem.match(/-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/);
    if (!m) throw new Error(`${file.name}: not a PKCS#8 PEM private key`);
    const der = b64decode(m[1].replace(/\s+/g, ""));
    const key = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
    // The key id is the SHA-256 of the public key's DER SubjectPublicKeyInfo (as rio's).
    const jwk = await crypto.subtle.exportKey("jwk", key);
    const raw = b64decode(jwk.x.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (jwk.x.length % 4)) % 4));
    const spki = concat(new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]), raw);
    const keyid = hex(await crypto.subtle.digest("SHA-256", spki));
    return { key, keyid };
  }

  async function sign(key, payloadType, bodyBytes) {
    const sig = await crypto.subtle.sign({ name: "Ed25519" }, key, pae(payloadType, bodyBytes));
    return b64encode(sig);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem("rio-token");
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error((data && (data.detail || data.title)) || `${res.status}`);
    return data;
  }

  async function login(file) {
    const { key, keyid } = await loadKey(file);
    const ch = await api("POST", "/api/v1/auth/challenge");
    const sig = await sign(key, ch.payload_type, enc.encode(ch.challenge));
    const session = await api("POST", "/api/v1/auth/token", { nonce: ch.nonce, keyid, sig });
    sessionStorage.setItem("rio-token", session.token);
    return session;
  }

  async function signRecord(runId, file) {
    const { key, keyid } = await loadKey(file);
    const rec = await api("GET", `/api/v1/runs/${encodeURIComponent(runId)}/record`);
    const sig = await sign(key, rec.payload_type, b64decode(rec.payload));
    return api("POST", `/api/v1/runs/${encodeURIComponent(runId)}/record/signatures`, {
      keyid, sig, version: rec.version,
    });
  }

  function say(el, text, ok) {
    el.textContent = text;
    el.className = ok ? "message ok" : "message error";
  }

  return { api, login, signRecord, say, loadKey };
})();
