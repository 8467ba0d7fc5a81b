// Gatehouse hosted pages: one script for all of them, by the body's
// data-page.
//
// Link pages (verify-email, reset-password, magic-link, not-me): the link's secret
// arrives in the URL fragment, which is never sent to a server; it is read
// once, removed from the address bar and history, and posted to the API
// only when the user confirms. Nothing here stores it.
//
// Sign-in and passkeys: passwords, passkeys and security keys (WebAuthn,
// through the browser's own JSON forms: PublicKeyCredential.parse…FromJSON
// and credential.toJSON()), the second step of a challenged sign-in, and
// the signed-in user's list of passkeys. A session the server holds to
// enrolment (--require-mfa: "mfa_enrollment_required") is told to add a
// passkey or a security key, and is confirmed with the new one by a
// step-up. Every request goes to this origin; the session is an HttpOnly
// cookie this script never sees.
(function () {
  "use strict";
  var page = document.body.dataset.page;
  var statusEl = document.getElementById("status");

  function $(id) { return document.getElementById(id); }

  function show(text, ok) {
    statusEl.textContent = text;
    statusEl.className = ok ? "ok" : "error";
  }

  // api sends a JSON request to the API and resolves to {ok, status,
  // data}; it rejects only when the server cannot be reached.
  function api(method, path, body) {
    var init = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        return { ok: res.ok, status: res.status, data: data };
      });
    });
  }

  function post(path, body) { return api("POST", path, body); }

  // enrolOnly reports whether a signed-in answer's session is held to
  // enrolling a second factor (the server's --require-mfa): it may add a
  // passkey or a security key and confirm itself with it, nothing else.
  function enrolOnly(data) {
    return !!(data && data.session && data.session.mfa_enrollment_required);
  }

  // enrolmentRefused reports whether res is the API's refusal of an
  // enrolment-only session (403 mfa_enrollment_required).
  function enrolmentRefused(res) {
    return res.status === 403 && !!res.data && res.data.code === "mfa_enrollment_required";
  }

  function problemText(res) {
    if (res.status === 429) {
      return "Too many attempts. Wait a little and try again.";
    }
    return (res.data && (res.data.detail || res.data.title)) || "Something went wrong. Try again.";
  }

  // failureText says why a flow stopped: the browser refused or cancelled
  // a passkey ceremony, or the server was out of reach.
  function failureText(err) {
    if (err instanceof DOMException) {
      return ceremonyText(err);
    } else if (err instanceof TypeError && /fetch/i.test(err.message)) {
      return "The server could not be reached. Try again.";
    }
    return "Something went wrong" + (err && err.message ? ": " + err.message : ".") + " Try again.";
  }

  function failed(err) { show(failureText(err), false); }

  // busy disables button until promise settles, and reports its failure.
  function busy(button, promise) {
    button.disabled = true;
    return promise.catch(failed).then(function () { button.disabled = false; });
  }

  // ---- WebAuthn ----------------------------------------------------------

  function passkeysSupported() {
    return !!(window.PublicKeyCredential &&
      PublicKeyCredential.parseCreationOptionsFromJSON &&
      PublicKeyCredential.parseRequestOptionsFromJSON);
  }

  // createCredential runs navigator.credentials.create with the server's
  // options and resolves to the credential's JSON for the server.
  function createCredential(options) {
    var publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
    return navigator.credentials.create({ publicKey: publicKey }).then(function (cred) { return cred.toJSON(); });
  }

  // getAssertion runs navigator.credentials.get (extra: mediation and
  // signal) and resolves to the assertion's JSON, or null if none.
  function getAssertion(options, extra) {
    var req = { publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) };
    if (extra) {
      req.mediation = extra.mediation;
      req.signal = extra.signal;
    }
    return navigator.credentials.get(req).then(function (cred) { return cred ? cred.toJSON() : null; });
  }

  function ceremonyText(err) {
    switch (err.name) {
    case "NotAllowedError":
      return "The passkey request was cancelled or timed out. Try again.";
    case "InvalidStateError":
      return "This authenticator is already registered on your account.";
    case "SecurityError":
      return "The browser refused the passkey request: this page's address does not match the server's passkey settings.";
    case "NotSupportedError":
      return "This browser or authenticator does not support this kind of passkey.";
    case "AbortError":
      return "The passkey request was stopped.";
    }
    return "The passkey request failed: " + err.message;
  }

  // ---- The second step of a challenged sign-in ---------------------------

  // secondFactor shows the form for the second step of a sign-in that
  // answered {mfa_required, challenge, methods}: an authenticator app's
  // code or a recovery code in #code, or a security key by #mfa-key when
  // the account has one. done gets the signed-in answer {user, session}.
  var challenged = null;
  function secondFactor(data, done) {
    var form = $("mfa"), key = $("mfa-key");
    var methods = data.methods || ["totp", "recovery_code"];
    var app = methods.indexOf("totp") >= 0;
    var hasKey = methods.indexOf("webauthn") >= 0 && passkeysSupported();
    var first = challenged === null;
    challenged = { challenge: data.challenge, done: done };
    $("code-label").textContent = app ? "Code from your authenticator app, or a recovery code" : "Or a recovery code";
    key.hidden = !hasKey;
    form.hidden = false;
    show(hasKey ? "This account has two-step sign-in: use your security key or passkey, " + (app ? "a code from your app " : "") + "or a recovery code."
      : "This account has two-step sign-in: enter the code from your authenticator app, or a recovery code.", true);
    (hasKey ? key : $("code")).focus();
    if (!first) {
      return;
    }
    function signedIn(res) {
      if (!res.ok) { return show(problemText(res), false); }
      form.hidden = true;
      challenged.done(res.data);
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var value = $("code").value.trim();
      var body = /^[0-9]{6}$/.test(value) ? { challenge: challenged.challenge, code: value } : { challenge: challenged.challenge, recovery_code: value };
      busy($("mfa-submit"), post("/v1/login/mfa", body).then(signedIn));
    });
    key.addEventListener("click", function () {
      var challenge = challenged.challenge;
      busy(key, post("/v1/webauthn/login/begin", { challenge: challenge }).then(function (res) {
        if (!res.ok) { return show(problemText(res), false); }
        return getAssertion(res.data.publicKey).then(function (cred) {
          return post("/v1/webauthn/login/finish", { challenge: challenge, ceremony: res.data.ceremony, credential: cred });
        }).then(signedIn);
      }));
    });
  }

  // ---- Link pages --------------------------------------------------------

  function takeToken() {
    var params = new URLSearchParams(location.hash.slice(1));
    var token = params.get("token") || "";
    if (location.hash) {
      history.replaceState(null, "", location.pathname);
    }
    return token;
  }

  function linkPage() {
    var form = $("form");
    var submit = $("submit");
    // A newer link opened in the same tab changes only the fragment: start
    // over with it rather than post the older one.
    window.addEventListener("hashchange", function () { location.reload(); });

    var token = page === "recovery" ? "" : takeToken();
    if (page !== "recovery" && !token) {
      show("This link is incomplete. Open the link from the e-mail again, or ask for a new one.", false);
      return;
    }
    form.hidden = false;

    var actions = {
      "verify-email": function () {
        return post("/v1/verify-email", { token: token }).then(function (res) {
          if (!res.ok) { return show(problemText(res), false); }
          form.hidden = true;
          if (res.data.password_reset_required) {
            show("The change was undone: " + res.data.email + " is your address again. Every device was signed out. " +
              "Choose a new password with \u201cReset your password\u201d on the sign-in page.", true);
            return;
          }
          show("Your address " + res.data.email + " is confirmed.", true);
        });
      },
      "reset-password": function () {
        var pw = $("password").value;
        if (pw !== $("confirm").value) {
          return Promise.resolve(show("The two passwords differ.", false));
        }
        return post("/v1/recovery/complete", { token: token, new_password: pw }).then(function (res) {
          if (!res.ok) { return show(problemText(res), false); }
          form.hidden = true;
          show("Your password is set. Every device was signed out; sign in again with the new password.", true);
        });
      },
      "magic-link": function () {
        return post("/v1/magic-link/verify", { token: token }).then(function (res) {
          if (!res.ok) { return show(problemText(res), false); }
          form.hidden = true;
          var done = function (data) {
            $("enrol-notice").hidden = !enrolOnly(data);
            $("done").hidden = !enrolOnly(data);
            show("You are signed in as " + data.user.email + ".", true);
          };
          if (res.data.mfa_required) {
            return secondFactor(res.data, done);
          }
          done(res.data);
        });
      },
      "not-me": function () {
        return post("/v1/not-me", { token: token }).then(function (res) {
          if (!res.ok) { return show(problemText(res), false); }
          form.hidden = true;
          show((res.data.revoked_session ? "That device is signed out." : "That device was already signed out.") +
            " Now choose a new password.", true);
          // The click proved the mailbox: the reset page gets its token in
          // the fragment, as from a reset e-mail, and this page leaves the
          // history.
          location.replace("/ui/reset-password#token=" + encodeURIComponent(res.data.reset_token));
        });
      },
      "recovery": function () {
        return post("/v1/recovery", { email: $("email").value }).then(function (res) {
          if (!res.ok) { return show(problemText(res), false); }
          form.hidden = true;
          show("If an account uses this address, a reset link is on its way. It works once and expires soon.", true);
        });
      }
    };

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      busy(submit, actions[page]());
    });
  }

  // ---- Sign-in -----------------------------------------------------------

  // signInPage: a password, or a passkey — picked from the e-mail field's
  // autofill (conditional UI, pending from page load) or from the browser's
  // own dialog (the button). body[data-conditional] tells whether the
  // autofill request is "pending", "unavailable", "failed" or "off".
  function signInPage() {
    var form = $("form");
    var passkeyButton = $("passkey");
    var finished = false;
    var modal = false; // the button's request runs
    var conditional = null; // the pending autofill request: {controller, why, settled}

    function signedIn(data) {
      finished = true;
      stopConditional("done");
      form.hidden = true;
      $("passkey-area").hidden = true;
      $("forgot").hidden = true;
      $("done").hidden = false;
      $("enrol-notice").hidden = !enrolOnly(data);
      show("Signed in as " + data.user.email + ".", true);
    }

    // answer handles a first factor's answer: signed in, or a second step.
    function answer(res) {
      if (!res.ok) { return show(problemText(res), false); }
      if (res.data.mfa_required) {
        finished = true;
        stopConditional("done");
        form.hidden = true;
        $("passkey-area").hidden = true;
        return secondFactor(res.data, signedIn);
      }
      signedIn(res.data);
    }

    function finishPasskey(ceremony, cred) {
      return post("/v1/webauthn/login/finish", { ceremony: ceremony, credential: cred }).then(answer);
    }

    // stopConditional aborts the autofill request, for why ("modal",
    // "done", "renew"), and resolves once the browser has let it go.
    function stopConditional(why) {
      var c = conditional;
      if (!c) { return Promise.resolve(); }
      conditional = null;
      c.why = why;
      c.controller.abort();
      document.body.dataset.conditional = "off";
      return c.settled;
    }

    function startConditional() {
      if (finished || modal || conditional || !passkeysSupported() || !PublicKeyCredential.isConditionalMediationAvailable) {
        return;
      }
      // idle: nothing else asks the browser meanwhile.
      var idle = function () { return !finished && !modal && !conditional; };
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available || !idle()) {
          document.body.dataset.conditional = available ? "off" : "unavailable";
          return;
        }
        return post("/v1/webauthn/login/begin", {}).then(function (res) {
          if (!res.ok) { document.body.dataset.conditional = "failed"; }
          if (!res.ok || !idle()) { return; }
          var c = { controller: new AbortController(), why: "" };
          conditional = c;
          // The ceremony expires on the server: ask for a new one first.
          var renew = setTimeout(function () {
            if (conditional === c) { stopConditional("renew").then(startConditional); }
          }, Math.max(res.data.expires_in - 15, 15) * 1000);
          var request = getAssertion(res.data.publicKey, { mediation: "conditional", signal: c.controller.signal });
          c.settled = request.then(function () {}, function () {});
          document.body.dataset.conditional = "pending";
          return request.then(function (cred) {
            clearTimeout(renew);
            if (c.why || !cred) { return; }
            conditional = null;
            document.body.dataset.conditional = "off";
            return busy(passkeyButton, finishPasskey(res.data.ceremony, cred));
          }, function (err) {
            clearTimeout(renew);
            if (c.why) { return; } // aborted here
            if (conditional === c) {
              conditional = null;
            }
            // Quietly: the user did not ask for this one. The button
            // reports what goes wrong.
            document.body.dataset.conditional = "failed";
            console.warn("passkey autofill: " + (err && err.name) + ": " + (err && err.message));
          });
        });
      }).catch(function () { document.body.dataset.conditional = "failed"; });
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      busy($("submit"), post("/v1/login", { email: $("email").value, password: $("password").value }).then(answer));
    });

    if (!passkeysSupported()) {
      document.body.dataset.conditional = "unavailable";
      return;
    }
    $("passkey-area").hidden = false;
    passkeyButton.addEventListener("click", function () {
      // One WebAuthn request at a time: the autofill one goes first.
      modal = true;
      var begun = post("/v1/webauthn/login/begin", {});
      busy(passkeyButton, Promise.all([begun, stopConditional("modal")]).then(function (r) {
        var res = r[0];
        if (!res.ok) { return show(problemText(res), false); }
        return getAssertion(res.data.publicKey).then(function (cred) {
          return finishPasskey(res.data.ceremony, cred);
        });
      })).then(function () {
        modal = false;
        startConditional();
      });
    });
    startConditional();
  }

  // ---- Passkeys of the signed-in user ------------------------------------

  function passkeysPage() {
    var list = $("credentials");
    var count = 0;
    var retry = null; // what to do again once the user has confirmed it is them
    var enrolling = false; // the session is held to enrolment (--require-mfa)
    var afterConfirm = null; // what to do again once it has passed a second factor

    var kinds = { passkey: "Passkey", security_key: "Security key" };

    function when(iso) {
      return iso ? new Date(iso).toLocaleString() : "never";
    }

    function signedOut() {
      $("account").hidden = true;
      $("signed-out").hidden = false;
    }

    // needsReauth: the API wants a recent sign-in; again runs once the
    // user confirmed.
    function needsReauth(res, again) {
      if (res.status !== 403 || res.data.code !== "reauthentication_required") {
        return false;
      }
      retry = again;
      $("reauth").hidden = false;
      $("reauth-passkey").hidden = count === 0;
      $("password").value = "";
      $("password").focus();
      show("Confirm it is you to go on: enter your password" + (count ? " or use a passkey." : "."), true);
      return true;
    }

    function reauthenticated(res) {
      if (!res.ok) { return show(problemText(res), false); }
      if (res.data.session) { setEnrolling(enrolOnly(res.data)); }
      $("reauth").hidden = true;
      $("password").value = "";
      var again = retry;
      retry = null;
      show("Thank you.", true);
      return again ? again() : undefined;
    }

    // ---- A session held to enrolment (--require-mfa) ----
    // Until it passes a second factor it may only add a passkey or a
    // security key and step up with it (POST /v1/reauthenticate), which
    // adds "mfa" to it; everything else answers 403 mfa_enrollment_required.

    function setEnrolling(on) {
      if (enrolling && !on) { $("enrol-done").hidden = false; }
      if (on) { $("enrol-done").hidden = true; }
      enrolling = on;
      renderEnrol();
    }

    function renderEnrol() {
      $("enrol").hidden = !enrolling;
      $("enrol-notice").textContent = count ?
        "This server requires a second factor. Confirm this session with one of your passkeys or security keys to continue." :
        "This server requires a second factor. Add a passkey or a security key to continue.";
      $("enrol-confirm").hidden = !enrolling || count === 0;
    }

    // needsEnrolment: the API refused res until this session passes a
    // second factor; again runs once it has.
    function needsEnrolment(res, again) {
      if (!enrolmentRefused(res)) {
        return false;
      }
      afterConfirm = again;
      setEnrolling(true);
      if (count) {
        show("This server requires a second factor first. Confirm this session with your passkey or security key " +
          "(\u201cConfirm this session\u201d above) and this goes on.", true);
        $("enrol-confirm").focus();
      } else {
        show("This server requires a second factor first. Add a passkey or a security key below; this session is then confirmed with it.", true);
      }
      return true;
    }

    // confirmSession steps this session up with a key — only, the new
    // credential's id, if the account has it, else any of the account's —
    // which gives it its second factor. before and after frame the status.
    function confirmSession(only, before, after) {
      before = before ? before + " " : "";
      after = after || "";
      function notConfirmed(why) {
        renderEnrol();
        show(before + "This session is not confirmed yet: " + why.replace(/ Try again\.$/, "") + " Use \u201cConfirm this session\u201d to try again." + after, false);
      }
      return post("/v1/webauthn/login/begin", { purpose: "reauthenticate" }).then(function (res) {
        if (res.status === 401) { return signedOut(); }
        if (!res.ok) { return notConfirmed(problemText(res)); }
        var options = res.data.publicKey;
        var mine = (options.allowCredentials || []).filter(function (c) { return only && c.id === only; });
        if (mine.length) {
          options = Object.assign({}, options, { allowCredentials: mine });
        }
        return getAssertion(options).then(function (cred) {
          return post("/v1/reauthenticate", { ceremony: res.data.ceremony, credential: cred });
        }).then(function (fin) {
          if (fin.status === 401 && fin.data.code === "unauthenticated") { return signedOut(); }
          if (!fin.ok) { return notConfirmed(problemText(fin)); }
          setEnrolling(enrolOnly(fin.data));
          if (enrolling) {
            return notConfirmed("this key did not give it a second factor (it did not verify you). Sign in again with your password and the key.");
          }
          show(before + "This session is now confirmed with a second factor." + after, true);
          var again = afterConfirm;
          afterConfirm = null;
          return again ? again() : undefined;
        }, function (err) { notConfirmed(failureText(err)); });
      });
    }

    function refresh() {
      return api("GET", "/v1/webauthn/credentials").then(function (res) {
        if (res.status === 401) { return signedOut(); }
        if (!res.ok) { return show(problemText(res), false); }
        render(res.data.credentials);
      });
    }

    function render(creds) {
      count = creds.length;
      list.textContent = "";
      $("empty").hidden = count > 0;
      creds.forEach(function (c) { list.appendChild(item(c)); });
      renderEnrol();
    }

    function el(tag, cls, text) {
      var e = document.createElement(tag);
      if (cls) { e.className = cls; }
      if (text !== undefined) { e.textContent = text; }
      return e;
    }

    // button makes a button; label, if any, is its accessible name (the
    // visible text plus the credential it acts on).
    function button(text, label, cls) {
      var b = el("button", cls, text);
      b.type = "button";
      if (label) { b.setAttribute("aria-label", label); }
      return b;
    }

    // item is one credential: its name, kind and dates, with rename and
    // remove (each asked for in place: no dialogs).
    function item(c) {
      var li = el("li");
      li.dataset.id = c.id;
      li.appendChild(el("strong", "name", c.name));
      li.appendChild(el("span", "kind", " " + (kinds[c.type] || c.type)));
      li.appendChild(el("span", "meta", "Added " + when(c.created_at) + " \u00b7 last used " + when(c.last_used_at)));
      var actions = el("div", "actions");
      var rename = button("Rename", "Rename " + c.name, "secondary rename");
      var remove = button("Remove", "Remove " + c.name, "secondary remove");
      actions.appendChild(rename);
      actions.appendChild(remove);
      li.appendChild(actions);

      var renameForm = el("form", "rename-form");
      renameForm.hidden = true;
      var label = el("label", "", "New name");
      label.htmlFor = "name-" + c.id;
      var input = el("input");
      input.id = "name-" + c.id;
      input.maxLength = 64;
      input.required = true;
      input.value = c.name;
      var save = el("button", "save", "Save");
      save.type = "submit";
      var keep = button("Cancel", "", "secondary");
      [label, input, save, keep].forEach(function (e) { renameForm.appendChild(e); });
      li.appendChild(renameForm);

      var confirm = el("div", "confirm");
      confirm.hidden = true;
      confirm.appendChild(el("p", "", "Remove \u201c" + c.name + "\u201d? You can no longer sign in with it."));
      var yes = button("Remove it", "", "danger confirm-remove");
      var no = button("Keep it", "", "secondary");
      confirm.appendChild(yes);
      confirm.appendChild(no);
      li.appendChild(confirm);

      rename.addEventListener("click", function () {
        renameForm.hidden = false;
        input.focus();
      });
      keep.addEventListener("click", function () { renameForm.hidden = true; });
      function renameIt() {
        return api("PATCH", "/v1/webauthn/credentials/" + encodeURIComponent(c.id), { name: input.value }).then(function (res) {
          if (res.status === 401) { return signedOut(); }
          if (needsEnrolment(res, renameIt)) { return; }
          if (!res.ok) { return show(problemText(res), false); }
          show("Renamed to \u201c" + res.data.credential.name + "\u201d.", true);
          return refresh();
        });
      }
      renameForm.addEventListener("submit", function (ev) {
        ev.preventDefault();
        busy(save, renameIt());
      });
      remove.addEventListener("click", function () {
        confirm.hidden = false;
        no.focus();
      });
      no.addEventListener("click", function () { confirm.hidden = true; });
      function removeIt() {
        return api("DELETE", "/v1/webauthn/credentials/" + encodeURIComponent(c.id)).then(function (res) {
          if (res.status === 401) { return signedOut(); }
          if (needsEnrolment(res, removeIt)) { return; }
          if (needsReauth(res, removeIt)) { return; }
          if (!res.ok) { return show(problemText(res), false); }
          show("\u201c" + c.name + "\u201d was removed.", true);
          return refresh();
        });
      }
      yes.addEventListener("click", function () { busy(yes, removeIt()); });
      return li;
    }

    // add registers a new credential of type ("passkey", "security_key").
    function add(type) {
      var name = $("new-name").value.trim();
      return post("/v1/webauthn/register/begin", { type: type }).then(function (res) {
        if (res.status === 401) { return signedOut(); }
        if (needsReauth(res, function () { return add(type); })) { return; }
        if (!res.ok) { return show(problemText(res), false); }
        var made = null; // the new credential's id, as the browser knows it
        return createCredential(res.data.publicKey).then(function (cred) {
          made = cred.id;
          var body = { ceremony: res.data.ceremony, credential: cred };
          if (name) { body.name = name; }
          return post("/v1/webauthn/register/finish", body);
        }).then(function (fin) {
          if (needsReauth(fin, function () { return add(type); })) { return; }
          if (!fin.ok) { return show(problemText(fin), false); }
          $("new-name").value = "";
          var codes = fin.data.recovery_codes;
          if (codes) { showCodes(codes); }
          var added = (kinds[fin.data.credential.type] || "Key") + " \u201c" + fin.data.credential.name + "\u201d was added.";
          var saveCodes = codes ? " Save your recovery codes below." : "";
          show(added + (enrolling ? " Confirming this session with it\u2026" : saveCodes), true);
          return refresh().then(function () {
            // An enrolment-only session: the new key confirms it at once.
            if (enrolling) { return confirmSession(made, added, saveCodes); }
          });
        });
      });
    }

    function showCodes(codes) {
      var ol = $("code-list");
      ol.textContent = "";
      codes.forEach(function (code) { ol.appendChild(el("li", "", code)); });
      $("codes").hidden = false;
    }

    if (!passkeysSupported()) {
      $("add-passkey").disabled = true;
      $("add-key").disabled = true;
      $("reauth-passkey").disabled = true;
      $("enrol-confirm").disabled = true;
    }
    $("add-passkey").addEventListener("click", function () { busy($("add-passkey"), add("passkey")); });
    $("add-key").addEventListener("click", function () { busy($("add-key"), add("security_key")); });
    $("codes-done").addEventListener("click", function () {
      $("code-list").textContent = "";
      $("codes").hidden = true;
    });
    $("reauth").addEventListener("submit", function (ev) {
      ev.preventDefault();
      busy($("reauth-submit"), post("/v1/reauthenticate", { password: $("password").value }).then(reauthenticated));
    });
    $("reauth-passkey").addEventListener("click", function () {
      busy($("reauth-passkey"), post("/v1/webauthn/login/begin", { purpose: "reauthenticate" }).then(function (res) {
        if (!res.ok) { return show(problemText(res), false); }
        return getAssertion(res.data.publicKey).then(function (cred) {
          return post("/v1/reauthenticate", { ceremony: res.data.ceremony, credential: cred });
        }).then(reauthenticated);
      }));
    });
    $("enrol-confirm").addEventListener("click", function () {
      busy($("enrol-confirm"), confirmSession(null));
    });
    $("reauth-cancel").addEventListener("click", function () {
      retry = null;
      $("reauth").hidden = true;
      show("Nothing was changed.", true);
    });
    $("sign-out").addEventListener("click", function () {
      busy($("sign-out"), post("/v1/logout").then(function (res) {
        if (!res.ok) { return show(problemText(res), false); }
        signedOut();
        show("You are signed out.", true);
      }));
    });

    api("GET", "/v1/me").then(function (res) {
      if (res.status === 401) { return signedOut(); }
      if (!res.ok) { return show(problemText(res), false); }
      $("who").textContent = res.data.user.email;
      $("reauth-user").value = res.data.user.email; // for password managers
      setEnrolling(enrolOnly(res.data));
      $("account").hidden = false;
      return refresh();
    }).catch(failed);
  }

  if (page === "sign-in") {
    signInPage();
  } else if (page === "passkeys") {
    passkeysPage();
  } else {
    linkPage();
  }
})();
