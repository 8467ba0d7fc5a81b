// Gatehouse hosted pages. The link's secret arrives in the URL fragment,
// which is never sent to a server; it is read once, removed from the
// address bar and history, and posted to the API only when the user
// confirms. Nothing here stores it.
(function () {
  "use strict";
  var page = document.body.dataset.page;
  var form = document.getElementById("form");
  var statusEl = document.getElementById("status");
  var submit = document.getElementById("submit");

  function show(text, ok) {
    statusEl.textContent = text;
    statusEl.className = ok ? "ok" : "error";
  }

  function takeToken() {
    var params = new URLSearchParams(location.hash.slice(1));
    var token = params.get("token") || "";
    if (location.hash) {
      history.replaceState(null, "", location.pathname);
    }
    return token;
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        return { ok: res.ok, status: res.status, data: data };
      });
    });
  }

  function problemText(res) {
    if (res.status === 429) {
      return "Too many attempts. Wait a little and try again.";
    }
    return (res.data && (res.data.detail || res.data.title)) || "Something went wrong. Try again.";
  }

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
      var pw = document.getElementById("password").value;
      if (pw !== document.getElementById("confirm").value) {
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
        if (res.data.mfa_required) {
          return secondFactor(res.data.challenge);
        }
        show("You are signed in as " + res.data.user.email + ".", true);
      });
    },
    "recovery": function () {
      return post("/v1/recovery", { email: document.getElementById("email").value }).then(function (res) {
        if (!res.ok) { return show(problemText(res), false); }
        form.hidden = true;
        show("If an account uses this address, a reset link is on its way. It works once and expires soon.", true);
      });
    }
  };

  // secondFactor asks for the app's code (or a recovery code) when the
  // account has a second factor, and completes the sign-in with it.
  function secondFactor(challenge) {
    var mfa = document.getElementById("mfa");
    var button = document.getElementById("mfa-submit");
    mfa.hidden = false;
    show("This account has a second factor.", true);
    mfa.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var value = document.getElementById("code").value.trim();
      var body = /^[0-9]{6}$/.test(value) ? { challenge: challenge, code: value } : { challenge: challenge, recovery_code: value };
      button.disabled = true;
      post("/v1/login/mfa", body).then(function (res) {
        if (!res.ok) { return show(problemText(res), false); }
        mfa.hidden = true;
        show("You are signed in as " + res.data.user.email + ".", true);
      }).catch(function () {
        show("The server could not be reached. Try again.", false);
      }).then(function () { button.disabled = false; });
    });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    submit.disabled = true;
    actions[page]().catch(function () {
      show("The server could not be reached. Try again.", false);
    }).then(function () { submit.disabled = false; });
  });
})();
