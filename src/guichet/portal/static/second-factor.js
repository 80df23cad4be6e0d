// The security key of the second factor (WebAuthn): a form marked data-webauthn="create"
// (adding a key) or "get" (signing in) carries the server's options in data-options; on
// submit, the browser asks the key, and the form is sent with its answer in "credential".
(function () {
  "use strict";

  function toBytes(value) {
    var text = atob(value.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(value.length / 4) * 4, "="));
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i += 1) { bytes[i] = text.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i += 1) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: toBytes(c.id) }); });
  }

  function creationOptions(options) {
    var o = Object.assign({}, options);
    o.challenge = toBytes(options.challenge);
    o.user = Object.assign({}, options.user, { id: toBytes(options.user.id) });
    o.excludeCredentials = descriptors(options.excludeCredentials);
    return o;
  }

  function requestOptions(options) {
    var o = Object.assign({}, options);
    o.challenge = toBytes(options.challenge);
    o.allowCredentials = descriptors(options.allowCredentials);
    return o;
  }

  function serialise(credential) {
    var r = credential.response;
    var response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      if (r.getTransports) { response.transports = r.getTransports(); }
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      if (r.userHandle) { response.userHandle = toBase64url(r.userHandle); }
    }
    return JSON.stringify({
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      authenticatorAttachment: credential.authenticatorAttachment || undefined
    });
  }

  function say(form, text) {
    var message = form.querySelector("[data-webauthn-message]");
    if (message) { message.textContent = text; }
  }

  document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
    if (!window.PublicKeyCredential) {
      say(form, "Votre navigateur ne gère pas les clés de sécurité : utilisez l'application d'authentification.");
      return;
    }
    form.addEventListener("submit", function (event) {
      var field = form.querySelector("input[name=credential]");
      if (field.value) { return; }
      event.preventDefault();
      var options = JSON.parse(form.getAttribute("data-options"));
      var creating = form.getAttribute("data-webauthn") === "create";
      say(form, "Touchez votre clé de sécurité…");
      var asked = creating
        ? navigator.credentials.create({ publicKey: creationOptions(options) })
        : navigator.credentials.get({ publicKey: requestOptions(options) });
      asked.then(function (credential) {
        field.value = serialise(credential);
        form.submit();
      }).catch(function () {
        say(form, "La clé n'a pas répondu ou l'opération a été annulée : réessayez, ou utilisez l'application d'authentification.");
      });
    });
  });
}());
