// Passkey ceremonies: fetch the server's options, run the browser's WebAuthn prompt,
// post the answer back, and go where the server says. Binary fields travel as base64url.
// The page's button is disabled until this script has taken it over, so that a tap
// before the script ran is not silently lost.
(function () {
  "use strict";

  function toBuffer(b64url) {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "===".slice((b64.length + 3) % 4);
    const raw = atob(padded);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    if (!buffer) return undefined;
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (let i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The options as the browser API wants them: binary ids and challenge.
  function withIds(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: toBuffer(c.id) });
    });
  }

  function creationOptions(json) {
    const o = Object.assign({}, json.publicKey, { challenge: toBuffer(json.publicKey.challenge) });
    o.user = Object.assign({}, o.user, { id: toBuffer(o.user.id) });
    o.excludeCredentials = withIds(o.excludeCredentials);
    return o;
  }

  function requestOptions(json) {
    const o = Object.assign({}, json.publicKey, { challenge: toBuffer(json.publicKey.challenge) });
    o.allowCredentials = withIds(o.allowCredentials);
    return o;
  }

  // The browser's answer as JSON, binary fields in base64url.
  function credentialJson(cred, response) {
    return {
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      response: response,
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
  }

  function registrationJson(cred) {
    const r = cred.response;
    return credentialJson(cred, {
      clientDataJSON: toBase64url(r.clientDataJSON),
      attestationObject: toBase64url(r.attestationObject),
      transports: typeof r.getTransports === "function" ? r.getTransports() : undefined,
    });
  }

  function assertionJson(cred) {
    const r = cred.response;
    return credentialJson(cred, {
      clientDataJSON: toBase64url(r.clientDataJSON),
      authenticatorData: toBase64url(r.authenticatorData),
      signature: toBase64url(r.signature),
      userHandle: toBase64url(r.userHandle),
    });
  }

  const button = document.querySelector("[data-mode]");
  if (!button) return;
  const errorBox = document.getElementById("passkey-error");
  const messages = JSON.parse(document.getElementById("passkey-messages").textContent);

  function showError(key) {
    errorBox.textContent = messages[key] || messages.failed;
    errorBox.hidden = false;
    button.disabled = false;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": button.dataset.csrf },
      body: body === undefined ? "{}" : JSON.stringify(body),
    });
    let json = {};
    try { json = await response.json(); } catch (_) { json = {}; }
    return { ok: response.ok, json: json };
  }

  button.addEventListener("click", async function () {
    errorBox.hidden = true;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      showError("unsupported");
      return;
    }
    button.disabled = true;
    const register = button.dataset.mode === "register";
    let options;
    try {
      options = await post(button.dataset.options);
    } catch (_) {
      showError("network");
      return;
    }
    if (!options.ok) {
      showError(options.json.error);
      return;
    }
    let cred;
    try {
      cred = register
        ? await navigator.credentials.create({ publicKey: creationOptions(options.json) })
        : await navigator.credentials.get({ publicKey: requestOptions(options.json) });
    } catch (e) {
      showError(e && e.name === "InvalidStateError" ? "duplicate" : "cancelled");
      return;
    }
    if (!cred) {
      showError("cancelled");
      return;
    }
    let result;
    try {
      result = await post(button.dataset.finish, register ? registrationJson(cred) : assertionJson(cred));
    } catch (_) {
      showError("network");
      return;
    }
    if (result.ok && result.json.next) {
      window.location.assign(result.json.next);
    } else if (result.json.error === "locked") {
      window.location.assign(button.dataset.locked || "/login?locked=1");
    } else {
      showError(result.json.error);
    }
  });
  button.disabled = false;
})();
