// The login page: POST /api/auth/login, then on to where the reader was going.
import { ApiError, api } from "./api";
import { h } from "./dom";

export function loginPage(root: HTMLElement, onLoggedIn: (username: string) => void): () => void {
  const username = h("input", {
    name: "username",
    autocomplete: "username",
    required: true,
    testid: "login-username",
  });
  const password = h("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
    testid: "login-password",
  });
  const error = h("p", { class: "form-error", role: "alert", testid: "login-error" });
  const submit = h(
    "button",
    { type: "submit", class: "primary", testid: "login-submit" },
    "Log in",
  );
  const form = h(
    "form",
    { class: "login-card", testid: "login-form" },
    h("h1", {}, "radlens"),
    h("p", { class: "muted" }, "Reading room — AI second reader"),
    h("label", {}, "Username", username),
    h("label", {}, "Password", password),
    submit,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      const me = await api.login(username.value.trim(), password.value);
      onLoggedIn(me.username);
    } catch (exc) {
      error.textContent =
        exc instanceof ApiError && exc.status === 401
          ? "Wrong username or password."
          : exc instanceof ApiError && exc.status === 429
            ? `Too many failed logins: ${exc.message}`
            : `Could not log in: ${exc instanceof Error ? exc.message : String(exc)}`;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  // A site with an identity provider (OIDC) gets a second way in.
  api.providers().then(
    (found) => {
      if (found.oidc && found.oidc_login_url)
        form.append(
          h(
            "a",
            { class: "oidc-login", href: found.oidc_login_url, testid: "login-oidc" },
            "Log in with the hospital account",
          ),
        );
    },
    () => undefined, // the password form works without it
  );
  root.replaceChildren(h("main", { class: "login-page", testid: "login-page" }, form));
  username.focus();
  return () => undefined;
}
