import { html, nothing, render, type TemplateResult } from "lit-html";
import { whenUnauthorized } from "./api";
import { enter, isAdmin, parseRoute, reconnectLive, resume, signIn, signOut, store } from "./app";
import { formValues, setAnnouncer } from "./util";
import { inboxPage } from "./views/inbox";
import { domainsPage, keysPage, rulesPage, streamsPage, templatePage } from "./views/setup";
import "./styles.css";

const { state, update } = store;
const root = document.getElementById("app")!;
root.replaceChildren(); // the "Loading…" placeholder: lit-html renders next to what is there, not over it

let statusTimer: ReturnType<typeof setTimeout> | undefined;
setAnnouncer((text) => {
  update({ status: text });
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => update({ status: "" }), 8000); // a toast, not a permanent line
});
whenUnauthorized(() => {
  if (state.me) signOut("The API key is no longer valid: sign in again.");
});

function signInPage(): TemplateResult {
  const submit = (event: Event) => {
    const { key } = formValues(event);
    if (key?.trim()) void signIn(key);
  };
  return html`<main class="signin" id="main">
    <form class="card" aria-labelledby="signin-title" @submit=${submit}>
      <h1 id="signin-title"><span class="logo" aria-hidden="true">✉</span> Mailstream</h1>
      <p>Sign in with an API key of your account. It is kept in this tab's session storage only and is forgotten
        when you close the tab.</p>
      <label>API key <input name="key" type="password" autocomplete="off" required spellcheck="false" /></label>
      ${state.signInError ? html`<p class="error" role="alert">${state.signInError}</p>` : nothing}
      <button type="submit" ?disabled=${state.signingIn}>${state.signingIn ? "Signing in…" : "Sign in"}</button>
      <p class="hint">No key yet? <code>uv run mailstream accounts create --name Acme</code> prints an admin key.</p>
    </form>
  </main>`;
}

const NAV: { page: string; label: string; admin?: boolean }[] = [
  { page: "inbox", label: "Inbox" },
  { page: "streams", label: "Streams" },
  { page: "domains", label: "Domains" },
  { page: "rules", label: "Rules" },
  { page: "template", label: "Template & replies" },
  { page: "keys", label: "API keys", admin: true },
];

const LIVE_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", stopped: "Offline" };

function shell(content: TemplateResult): TemplateResult {
  const me = state.me!;
  const unseen = state.unseen.size;
  return html`<a class="skip" href="#main" @click=${(e: Event) => {
      e.preventDefault();
      document.getElementById("main")?.focus();
    }}>Skip to content</a>
    <header class="topbar">
      <span class="brand"><span class="logo" aria-hidden="true">✉</span> Mailstream</span>
      <nav aria-label="Main">
        ${NAV.filter((item) => !item.admin || isAdmin()).map(
          (item) => html`<a href="#/${item.page}" aria-current=${state.route.page === item.page ? "page" : "false"}>
            ${item.label}${item.page === "inbox" && unseen ? html` <span class="count">${unseen}</span>` : nothing}</a>`,
        )}
      </nav>
      <div class="account">
        <button type="button" class="live live-${state.live}" title="Live updates: ${LIVE_TEXT[state.live]}"
          aria-label="Live updates: ${LIVE_TEXT[state.live]}. Reconnect" @click=${reconnectLive}>
          <span class="pulse" aria-hidden="true"></span>${LIVE_TEXT[state.live]}
        </button>
        <span class="who" data-role=${me.role}>${me.account_name ?? me.account_id}
          <span class="badge tone-role">${me.role}</span></span>
        <button type="button" class="secondary small" @click=${() => signOut()}>Sign out</button>
      </div>
    </header>
    <main id="main" tabindex="-1">
      ${state.error ? html`<p class="error banner" role="alert">${state.error}</p>` : nothing}
      ${content}
      <p class="status" role="status" aria-live="polite">${state.status}</p>
    </main>`;
}

function page(): TemplateResult {
  if (!state.me) return signInPage();
  switch (state.route.page) {
    case "inbox":
      return shell(inboxPage());
    case "streams":
      return shell(streamsPage());
    case "domains":
      return shell(domainsPage());
    case "rules":
      return shell(rulesPage());
    case "template":
      return shell(templatePage());
    case "keys":
      return shell(keysPage());
  }
}

store.subscribe(() => render(page(), root));
window.addEventListener("hashchange", () => void enter(parseRoute(location.hash)));
update({ route: parseRoute(location.hash) });
void resume();
