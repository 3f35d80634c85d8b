import { html, nothing, type TemplateResult } from "lit-html";
import type { DnsRecord, Domain, Rule, RuleCreate, Stream } from "../api";
import {
  createCanned,
  createDomain,
  deleteCanned,
  createKey,
  createRule,
  createStream,
  createTopic,
  dryRunRule,
  isAdmin,
  previewTemplate,
  revokeKey,
  rotateDkim,
  saveTemplate,
  store,
  toggleRule,
  verifyDomain,
  verifyForwarding,
} from "../app";
import { badge, checked, copyable, formValues, when } from "../util";

const { state } = store;

const adminOnly = (what: string): TemplateResult =>
  html`<p class="hint">Only an admin key can change ${what}; this key is an agent key.</p>`;

// --- topics and streams -----------------------------------------------------------------------------------------

interface ProviderSteps {
  provider: string;
  title: string;
  reason?: string;
  steps: string[];
}

function streamCard(stream: Stream): TemplateResult {
  const setup = stream.setup as { summary?: string; providers?: ProviderSteps[] };
  const check = stream.forwarding_check;
  const confirmation = stream.provider_confirmation;
  return html`<article class="card" aria-labelledby="stream-${stream.id}">
    <header class="card-head">
      <h3 id="stream-${stream.id}">${stream.display_name || stream.address}</h3>
      ${badge(stream.status.replace("_", " "), stream.status === "receiving" ? "good" : "neutral")}
      ${stream.forwarding_verified ? badge("forwarding verified", "good") : nothing}
    </header>
    <dl class="facts">
      <dt>Address</dt><dd>${copyable(stream.address, `the address of ${stream.address}`)}</dd>
      <dt>Forwarding address</dt><dd>${copyable(stream.forwarding_address, `the forwarding address of ${stream.address}`)}</dd>
      <dt>Agents may send</dt><dd>${stream.allow_agent_send ? "yes" : "no"}</dd>
      ${stream.first_mail_at ? html`<dt>First mail</dt><dd>${when(stream.first_mail_at)}</dd>` : nothing}
    </dl>
    ${setup.summary ? html`<p>${setup.summary}</p>` : nothing}
    ${(setup.providers ?? []).map(
      (p) => html`<details>
        <summary>${p.title}</summary>
        ${p.reason ? html`<p class="note">${p.reason}</p>` : nothing}
        <ol>${p.steps.map((step) => html`<li>${step}</li>`)}</ol>
      </details>`,
    )}
    ${confirmation
      ? html`<div class="note">
          <strong>${confirmation.provider} sent a confirmation</strong>
          ${confirmation.code ? html`<div>Code: ${copyable(confirmation.code, "the confirmation code")}</div>` : nothing}
          ${confirmation.link ? html`<div>Link: ${copyable(confirmation.link, "the confirmation link")}</div>` : nothing}
        </div>`
      : nothing}
    <div class="actions">
      <span class="muted">${check.verified
        ? `Forwarding checked ${when(check.verified_at)}${check.method ? ` (${check.method.replace("_", " ")})` : ""}.`
        : check.pending
          ? "A forwarding check is on its way…"
          : "Forwarding not checked yet."}
        ${check.advice ?? ""}</span>
      ${isAdmin()
        ? html`<button type="button" class="secondary" aria-label="Check forwarding of ${stream.address}"
            @click=${() => verifyForwarding(stream.id)}>Check forwarding</button>`
        : nothing}
    </div>
  </article>`;
}

export function streamsPage(): TemplateResult {
  const topicSubmit = (event: Event) => {
    const form = event.currentTarget as HTMLFormElement;
    const { name } = formValues(event);
    if (name?.trim()) void createTopic(name.trim()).then(() => form.reset());
  };
  const streamSubmit = (event: Event) => {
    const form = event.currentTarget as HTMLFormElement;
    const values = formValues(event);
    void createStream(values.topic ?? "", (values.address ?? "").trim(), checked(event, "agents")).then(() =>
      form.reset(),
    );
  };
  return html`<section class="page" aria-labelledby="streams-title">
    <h1 id="streams-title">Topics and streams</h1>
    <p class="lead">A stream is one of your addresses (support@…); forward its mail to the stream's forwarding
      address and every mail shows up in the inbox.</p>
    ${isAdmin()
      ? html`<div class="forms">
          <form class="inline-form" aria-label="New topic" @submit=${topicSubmit}>
            <label>New topic <input name="name" required placeholder="Support" /></label>
            <button type="submit">Add topic</button>
          </form>
          ${state.topics.length
            ? html`<form class="inline-form" aria-label="New stream" @submit=${streamSubmit}>
                <label>Topic <select name="topic">${state.topics.map((t) => html`<option value=${t.id}>${t.name}</option>`)}</select></label>
                <label class="grow">Address <input name="address" type="email" required placeholder="support@example.com" /></label>
                <label class="check"><input type="checkbox" name="agents" checked /> Agents may send</label>
                <button type="submit">Add stream</button>
              </form>`
            : nothing}
        </div>`
      : adminOnly("topics and streams")}
    ${state.topics.map(
      (topic) => html`<section class="topic" aria-labelledby="topic-${topic.id}">
        <h2 id="topic-${topic.id}">${topic.name}</h2>
        ${state.streams.filter((s) => s.topic_id === topic.id).map(streamCard)}
      </section>`,
    )}
    ${state.topics.length === 0 ? html`<p class="empty">No topics yet.</p>` : nothing}
  </section>`;
}

// --- domains ----------------------------------------------------------------------------------------------------

function recordCard(record: DnsRecord): TemplateResult {
  const tone = record.status === "verified" ? "good" : record.status === "invalid" ? "bad" : "neutral";
  const label = `the ${record.purpose.toUpperCase()} record`;
  return html`<li class="record">
    <div class="card-head">
      <h3>${record.purpose.toUpperCase()} <span class="muted">${record.type}</span></h3>
      ${badge(record.status, tone)}
      ${record.required ? nothing : html`<span class="muted">optional</span>`}
    </div>
    <dl class="facts">
      <dt>Host</dt><dd>${copyable(record.host, `the host of ${label}`)}</dd>
      <dt>Value</dt><dd>${copyable(record.value, `the value of ${label}`)}</dd>
    </dl>
    ${record.detail
      ? html`<p class="diagnostic">${record.detail}${record.problem ? html` <code>${record.problem}</code>` : nothing}</p>`
      : nothing}
    ${(record.notes ?? []).map((n) => html`<p class="diagnostic">${n}</p>`)}
  </li>`;
}

function domainDetail(domain: Domain): TemplateResult {
  const tone = domain.status === "verified" ? "good" : domain.status === "invalid" ? "bad" : "neutral";
  return html`<section class="card" aria-labelledby="domain-title">
    <header class="card-head">
      <h2 id="domain-title">${domain.name}</h2>
      ${badge(domain.status, tone)}
    </header>
    <p>Publish these records at your DNS provider, then verify. ${domain.checked_at
      ? `Last checked ${when(domain.checked_at)}.`
      : "Not checked yet."}</p>
    <ul class="records" aria-label="DNS records for ${domain.name}">${domain.dns_records.map(recordCard)}</ul>
    ${isAdmin()
      ? html`<div class="actions">
          <button type="button" @click=${() => verifyDomain(domain.id)}>Verify now</button>
          <button type="button" class="secondary" @click=${() => rotateDkim(domain.id)}>Rotate DKIM key</button>
        </div>`
      : nothing}
  </section>`;
}

export function domainsPage(): TemplateResult {
  const submit = (event: Event) => {
    const form = event.currentTarget as HTMLFormElement;
    const values = formValues(event);
    void createDomain((values.name ?? "").trim(), values.bits === "1024" ? 1024 : 2048).then(() => form.reset());
  };
  const selected = state.route.page === "domains" ? state.route.domainId : null;
  return html`<section class="page" aria-labelledby="domains-title">
    <h1 id="domains-title">Sending domains</h1>
    <p class="lead">Replies are signed with DKIM for your domain once its records are published.</p>
    ${isAdmin()
      ? html`<form class="inline-form" aria-label="New domain" @submit=${submit}>
          <label class="grow">Domain <input name="name" required placeholder="example.com" /></label>
          <label>DKIM key <select name="bits"><option value="2048">2048 bits</option><option value="1024">1024 bits</option></select></label>
          <button type="submit">Add domain</button>
        </form>`
      : adminOnly("domains")}
    <nav aria-label="Domains" class="chips">
      ${state.domains.map(
        (d) => html`<a href="#/domains/${encodeURIComponent(d.id)}" aria-current=${d.id === selected ? "page" : "false"}
          class="chip">${d.name} ${badge(d.status, d.status === "verified" ? "good" : d.status === "invalid" ? "bad" : "neutral")}</a>`,
      )}
    </nav>
    ${state.domain ? domainDetail(state.domain) : state.domains.length ? html`<p class="empty">Choose a domain.</p>` : html`<p class="empty">No domains yet.</p>`}
  </section>`;
}

// --- automation rules ---------------------------------------------------------------------------------------------

function ruleSummary(rule: Rule): string {
  const conditions = (rule.conditions ?? [])
    .map((c) => `${c.field} ${c.operator.replace("_", " ")} ${typeof c.value === "object" ? JSON.stringify(c.value) : String(c.value)}`)
    .join(rule.match === "all" ? " and " : " or ");
  const actions = rule.actions
    .map((a) => {
      switch (a.type) {
        case "add_tags":
        case "remove_tags":
          return `${a.type.replace("_", " ")} ${a.tags.join(", ")}`;
        case "assign":
          return `assign to ${a.assignee}`;
        case "set_status":
          return `set status ${a.status}`;
        case "set_priority":
          return `set priority ${a.priority}`;
        case "auto_reply":
          return `auto-reply with “${state.canned.find((c) => c.id === a.canned_response_id)?.title ?? a.canned_response_id}”`;
        default:
          return "";
      }
    })
    .join(", ");
  return `When ${conditions || "any mail arrives"}: ${actions}.`;
}

function ruleCard(rule: Rule): TemplateResult {
  const test = state.ruleTest?.ruleId === rule.id ? state.ruleTest : null;
  const dryRun = (event: Event) => {
    const values = formValues(event);
    void dryRunRule(rule, { from: values.from ?? "", subject: values.subject ?? "", body: values.body ?? "" });
  };
  return html`<article class="card" aria-labelledby="rule-${rule.id}">
    <header class="card-head">
      <h2 id="rule-${rule.id}">${rule.name}</h2>
      ${badge(rule.enabled ? "enabled" : "disabled", rule.enabled ? "good" : "neutral")}
      <span class="muted">fired ${rule.fired_count}×${rule.last_fired_at ? `, last ${when(rule.last_fired_at)}` : ""}</span>
    </header>
    <p>${ruleSummary(rule)}</p>
    <details>
      <summary>Dry run</summary>
      <form class="inline-form" aria-label="Dry run of ${rule.name}" @submit=${dryRun}>
        <label>From <input name="from" type="email" required value="customer@example.com" /></label>
        <label class="grow">Subject <input name="subject" value="Help with my order" /></label>
        <label class="grow">Body <input name="body" value="Hello" /></label>
        <button type="submit" class="secondary">Test</button>
      </form>
      ${test ? html`<p class="note" role="status">${test.summary}</p>` : nothing}
    </details>
    ${isAdmin()
      ? html`<div class="actions"><button type="button" class="secondary" @click=${() => toggleRule(rule)}>
          ${rule.enabled ? "Disable" : "Enable"}</button></div>`
      : nothing}
  </article>`;
}

export function rulesPage(): TemplateResult {
  const submit = (event: Event) => {
    const values = formValues(event);
    const rule: RuleCreate = {
      name: values.name ?? "",
      enabled: true,
      match: "all",
      stop_processing: false,
      conditions: [{ field: values.field ?? "subject", operator: "contains", value: values.value ?? "" }],
      actions: [{ type: "add_tags", tags: (values.tags ?? "").split(",").map((t) => t.trim()).filter(Boolean) }],
    };
    void createRule(rule);
  };
  return html`<section class="page" aria-labelledby="rules-title">
    <h1 id="rules-title">Automation rules</h1>
    <p class="lead">Rules run on each mail as it arrives, in order. Try one with a dry run before you rely on it.</p>
    ${isAdmin()
      ? html`<form class="inline-form" aria-label="New rule" @submit=${submit}>
          <label>Name <input name="name" required placeholder="Tag refunds" /></label>
          <label>When <select name="field">
            <option value="subject">the subject</option><option value="body">the body</option>
            <option value="from_domain">the sender's domain</option><option value="from">the sender</option>
          </select></label>
          <label>contains <input name="value" required placeholder="refund" /></label>
          <label>add tags <input name="tags" required placeholder="refund" /></label>
          <button type="submit">Add rule</button>
        </form>`
      : adminOnly("rules")}
    ${state.rules.map(ruleCard)}
    ${state.rules.length === 0 ? html`<p class="empty">No rules yet.</p>` : nothing}
  </section>`;
}

// --- email template -------------------------------------------------------------------------------------------

export function templatePage(): TemplateResult {
  const t = state.template;
  const submit = (event: Event) => {
    const values = formValues(event);
    void saveTemplate(values.html ?? "", values.text ?? "");
  };
  return html`<section class="page" aria-labelledby="template-title">
    <h1 id="template-title">Email template</h1>
    <p class="lead">Wraps every outgoing reply; both parts must contain <code>{{ content }}</code>.</p>
    ${t
      ? html`<form class="stack" aria-label="Email template" @submit=${submit}>
          <label>HTML <textarea name="html" rows="8" ?readonly=${!isAdmin()} .value=${t.html}></textarea></label>
          <label>Text <textarea name="text" rows="5" ?readonly=${!isAdmin()} .value=${t.text}></textarea></label>
          <div class="actions">
            <button type="button" class="secondary" @click=${() => previewTemplate("Hello, this is a preview.")}>Preview</button>
            ${isAdmin() ? html`<button type="submit">Save template</button>` : nothing}
          </div>
        </form>`
      : nothing}
    ${state.templatePreview
      ? html`<iframe class="mail-frame" sandbox="" title="Template preview"
          srcdoc=${`<!doctype html><meta charset="utf-8">${state.templatePreview.html}`}></iframe>`
      : nothing}
    ${cannedSection()}
  </section>`;
}

function cannedSection(): TemplateResult {
  const submit = (event: Event) => {
    const form = event.currentTarget as HTMLFormElement;
    const values = formValues(event);
    void createCanned((values.title ?? "").trim(), values.text ?? "").then(() => form.reset());
  };
  return html`<section class="topic" aria-labelledby="canned-title">
    <h2 id="canned-title">Canned responses</h2>
    <p class="lead">Placeholders such as <code>{{ customer.name }}</code> or <code>{{ stream.address }}</code> are
      filled in when a reply is sent.</p>
    ${isAdmin()
      ? html`<form class="stack card" aria-label="New canned response" @submit=${submit}>
          <label>Title <input name="title" required placeholder="Order delayed" /></label>
          <label>Text <textarea name="text" rows="3" required placeholder="Hello {{ customer.name }}, …"></textarea></label>
          <div class="actions"><button type="submit">Add canned response</button></div>
        </form>`
      : nothing}
    ${state.canned.map(
      (c) => html`<article class="card" aria-labelledby="canned-${c.id}">
        <header class="card-head"><h3 id="canned-${c.id}">${c.title}</h3></header>
        <pre class="text">${c.text}</pre>
        ${isAdmin()
          ? html`<div class="actions"><button type="button" class="secondary small" aria-label="Delete ${c.title}"
              @click=${() => deleteCanned(c)}>Delete</button></div>`
          : nothing}
      </article>`,
    )}
  </section>`;
}

// --- API keys -----------------------------------------------------------------------------------------------

export function keysPage(): TemplateResult {
  if (!isAdmin()) {
    return html`<section class="page"><h1>API keys</h1>${adminOnly("API keys")}</section>`;
  }
  const submit = (event: Event) => {
    const form = event.currentTarget as HTMLFormElement;
    const values = formValues(event);
    void createKey(values.name ?? "", values.role === "admin" ? "admin" : "agent").then(() => form.reset());
  };
  return html`<section class="page" aria-labelledby="keys-title">
    <h1 id="keys-title">API keys</h1>
    <p class="lead">Agent keys work the inbox; admin keys also change the setup. A key is shown once, when created.</p>
    <form class="inline-form" aria-label="New API key" @submit=${submit}>
      <label class="grow">Name <input name="name" required placeholder="Frontend" /></label>
      <label>Role <select name="role"><option value="agent">agent</option><option value="admin">admin</option></select></label>
      <button type="submit">Create key</button>
    </form>
    ${state.createdKey
      ? html`<div class="note" role="status">New key (copy it now): ${copyable(state.createdKey, "the new API key")}</div>`
      : nothing}
    <div class="table-scroll">
      <table>
        <caption class="visually-hidden">API keys</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Prefix</th><th scope="col">Created</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>
          ${state.keys.map(
            (k) => html`<tr>
              <th scope="row">${k.name}${k.id === state.me?.key_id ? html` <span class="muted">(this key)</span>` : nothing}</th>
              <td>${k.role}</td><td><code>${k.prefix}</code></td><td>${when(k.created_at)}</td>
              <td>${k.revoked
                ? badge("revoked", "bad")
                : k.id === state.me?.key_id
                  ? nothing
                  : html`<button type="button" class="danger small" aria-label="Revoke ${k.name}"
                      @click=${() => revokeKey(k)}>Revoke</button>`}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </section>`;
}

