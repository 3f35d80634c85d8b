import { html, nothing, svg, type TemplateResult } from "lit-html";
import { live as liveValue } from "lit-html/directives/live.js";
import { download, type Conversation, type Message } from "../api";
import {
  attempt,
  changeConversation,
  go,
  loadConversations,
  loadMoreConversations,
  previewReply,
  sendReply,
  setFilters,
  store,
} from "../app";
import { badge, bytes, checked, formValues, person, when } from "../util";

// Drawn, not an emoji: an emoji glyph needs a colour-emoji font the machine may not have (it showed as a box).
const paperclip = html`<svg class="icon" aria-hidden="true" viewBox="0 0 24 24" width="14" height="14">${svg`<path
  d="M21 11.5 12.5 20a5 5 0 0 1-7-7l9-9a3.5 3.5 0 0 1 5 5l-9 9a2 2 0 0 1-3-3l8.5-8.5" fill="none"
  stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/>`}</svg>`;

const { state } = store;

function streamName(id: string): string {
  const stream = state.streams.find((s) => s.id === id);
  return stream ? stream.display_name || stream.address : "";
}

function filtersBar(): TemplateResult {
  const f = state.filters;
  let typing: ReturnType<typeof setTimeout> | undefined;
  return html`<form class="filters" role="search" aria-label="Filter conversations" @submit=${(e: Event) => {
    e.preventDefault();
    void loadConversations();
  }}>
    <label class="grow">
      <span class="visually-hidden">Search conversations</span>
      <input type="search" name="q" placeholder="Search subject, sender, text…" .value=${liveValue(f.q)}
        @input=${(e: Event) => {
          clearTimeout(typing);
          const q = (e.target as HTMLInputElement).value;
          typing = setTimeout(() => setFilters({ q }), 300);
        }} />
    </label>
    <label>
      <span class="visually-hidden">Status</span>
      <select name="status" @change=${(e: Event) => setFilters({ status: (e.target as HTMLSelectElement).value })}>
        ${[["open", "Open"], ["closed", "Closed"], ["", "All statuses"]].map(
          ([value, label]) => html`<option value=${value} ?selected=${f.status === value}>${label}</option>`,
        )}
      </select>
    </label>
    ${state.topics.length > 1
      ? html`<label>
          <span class="visually-hidden">Topic</span>
          <select name="topic" @change=${(e: Event) => setFilters({ topic_id: (e.target as HTMLSelectElement).value })}>
            <option value="" ?selected=${!f.topic_id}>All topics</option>
            ${state.topics.map((t) => html`<option value=${t.id} ?selected=${f.topic_id === t.id}>${t.name}</option>`)}
          </select>
        </label>`
      : nothing}
    <label>
      <span class="visually-hidden">Stream</span>
      <select name="stream" @change=${(e: Event) => setFilters({ stream_id: (e.target as HTMLSelectElement).value })}>
        <option value="" ?selected=${!f.stream_id}>All streams</option>
        ${state.streams.map(
          (s) => html`<option value=${s.id} ?selected=${f.stream_id === s.id}>${s.display_name || s.address}</option>`,
        )}
      </select>
    </label>
  </form>`;
}

function conversationRow(c: Conversation): TemplateResult {
  const open = state.current?.conversation.id === c.id;
  const unseen = state.unseen.has(c.id);
  return html`<li>
    <a href="#/inbox/${encodeURIComponent(c.id)}" class="conversation ${open ? "selected" : ""} ${unseen ? "unseen" : ""}"
      aria-current=${open ? "page" : "false"} data-conversation-id=${c.id}>
      <span class="row">
        <span class="who">${c.customer.name || c.customer.address}</span>
        <time datetime=${c.last_message_at}>${when(c.last_message_at)}</time>
      </span>
      <span class="subject">${unseen ? html`<span class="dot" aria-label="new"></span>` : nothing}${c.subject || "(no subject)"}</span>
      <span class="row meta">
        <span>${streamName(c.stream_id)}</span>
        <span>${c.message_count} ${c.message_count === 1 ? "message" : "messages"}
          ${c.status !== "open" ? badge(c.status) : nothing}</span>
      </span>
    </a>
  </li>`;
}

function conversationList(): TemplateResult {
  const unseen = state.unseen.size;
  return html`<section class="list-pane" aria-labelledby="list-title">
    <div class="pane-head">
      <h1 id="list-title">Inbox ${unseen ? html`<span class="count" aria-label="${unseen} new">${unseen} new</span>` : nothing}</h1>
    </div>
    ${filtersBar()}
    ${state.conversations.length === 0 && !state.loadingList
      ? html`<p class="empty">No conversations here yet. Mail forwarded to a stream's address shows up live.</p>`
      : html`<ul class="conversations" aria-label="Conversations" aria-busy=${state.loadingList ? "true" : "false"}>
          ${state.conversations.map(conversationRow)}
        </ul>`}
    ${state.nextCursor
      ? html`<button type="button" class="secondary wide" @click=${loadMoreConversations}>Load more</button>`
      : nothing}
  </section>`;
}

function authBadges(m: Message): TemplateResult | typeof nothing {
  if (!m.authentication) return nothing;
  const a = m.authentication;
  const tone = (result: string) => (result === "pass" ? "good" : result === "fail" ? "bad" : "neutral");
  return html`<span class="auth" aria-label="Authentication results">
    ${(["spf", "dkim", "dmarc"] as const).map((k) => badge(`${k.toUpperCase()} ${a[k] ?? "none"}`, tone(a[k] ?? "none")))}
  </span>`;
}

function deliveryBadge(m: Message): TemplateResult | typeof nothing {
  if (m.direction !== "outbound" || !m.delivery) return nothing;
  const status = m.delivery.status;
  const tone = status === "sent" ? "good" : status === "failed" ? "bad" : "neutral";
  return html`<span class="delivery" data-delivery=${status}>
    ${badge(`Delivery: ${status}`, tone)}
    ${m.delivery.detail ? html`<span class="detail">${m.delivery.detail}</span>` : nothing}
  </span>`;
}

/** The sanitised HTML goes into a frame sandboxed without scripts or same-origin: it can run nothing here. */
function mailFrame(htmlBody: string, title: string): TemplateResult {
  const doc = `<!doctype html><html><head><meta charset="utf-8"><style>
    body{font:15px/1.5 system-ui,"Noto Sans CJK JP","Hiragino Sans","Yu Gothic",sans-serif;color:#1c2330;margin:12px;overflow-wrap:anywhere}
    img{max-width:100%;height:auto} table{max-width:100%} blockquote{border-left:3px solid #ccd;margin:0;padding-left:10px;color:#556}
  </style></head><body>${htmlBody}</body></html>`;
  return html`<iframe class="mail-frame" sandbox="" referrerpolicy="no-referrer" title=${title} srcdoc=${doc}></iframe>`;
}

function messageCard(m: Message): TemplateResult {
  const outbound = m.direction === "outbound";
  return html`<article class="message ${outbound ? "outbound" : "inbound"}" aria-label="${outbound ? "Reply" : "Mail"} from ${person(m.from)}"
    data-message-id=${m.id}>
    <header>
      <div>
        <strong>${m.from?.name || m.from?.address || "unknown sender"}</strong>
        ${m.from?.name ? html`<span class="address">&lt;${m.from.address}&gt;</span>` : nothing}
        <div class="to">to ${m.to.map((t) => t.address).join(", ")}${m.cc.length ? html`, cc ${m.cc.map((t) => t.address).join(", ")}` : nothing}</div>
      </div>
      <time datetime=${m.created_at}>${when(m.created_at)}</time>
    </header>
    ${m.forwarded
      ? html`<p class="note">Forwarded${m.forwarded.by ? html` by <strong>${person(m.forwarded.by)}</strong>` : nothing};
          originally from <strong>${person(m.forwarded.original_from)}</strong>${m.forwarded.note ? html`. ${m.forwarded.note}` : nothing}</p>`
      : nothing}
    <div class="badges">${authBadges(m)} ${deliveryBadge(m)} ${m.imported ? badge("imported") : nothing}
      ${m.remote_images_blocked ? badge(`${m.remote_images_blocked} remote images blocked`, "neutral") : nothing}</div>
    ${m.html ? mailFrame(m.html, `Message from ${person(m.from)}`) : html`<pre class="text">${m.text}</pre>`}
    ${m.attachments.length
      ? html`<ul class="attachments" aria-label="Attachments">
          ${m.attachments.map(
            (a) => html`<li><button type="button" class="link" aria-label="Download ${a.filename}"
              @click=${() => attempt("Downloading", () => download(`/v1/attachments/${encodeURIComponent(a.id)}`, a.filename))}>
              ${paperclip} ${a.filename}</button> <span class="muted">${a.content_type}, ${bytes(a.size)}</span></li>`,
          )}
        </ul>`
      : nothing}
  </article>`;
}

function cannedText(id: string): string {
  return state.canned.find((c) => c.id === id)?.text ?? "";
}

function replyForm(): TemplateResult {
  const submit = async (event: Event) => {
    const form = event.currentTarget as HTMLFormElement;
    const values = formValues(event);
    const sent = await sendReply({
      text: values.text ?? "",
      cannedId: values.canned ?? "",
      applyTemplate: checked(event, "template"),
    });
    if (sent) form.reset();
  };
  const preview = (event: Event) => {
    const form = (event.currentTarget as HTMLElement).closest("form")!;
    const data = new FormData(form);
    const text = String(data.get("text") ?? "") || cannedText(String(data.get("canned") ?? ""));
    void previewReply(text || " ");
  };
  return html`<form class="reply" aria-labelledby="reply-title" @submit=${submit}>
    <h2 id="reply-title">Reply</h2>
    <label>Canned response
      <select name="canned">
        <option value="">None</option>
        ${state.canned.map((c) => html`<option value=${c.id}>${c.title}</option>`)}
      </select>
    </label>
    <p class="hint">A canned response's placeholders (such as {{ customer.name }}) are filled in when it is sent; text
      you type is sent instead of it.</p>
    <label>Message
      <textarea name="text" rows="5" placeholder="Write a reply…"></textarea>
    </label>
    <label class="check"><input type="checkbox" name="template" checked /> Apply the email template</label>
    <div class="actions">
      <button type="button" class="secondary" @click=${preview}>Preview</button>
      <button type="submit" ?disabled=${state.sending}>${state.sending ? "Sending…" : "Send reply"}</button>
    </div>
    ${state.replyPreview ? html`<div class="preview"><h3>Preview</h3>${mailFrame(state.replyPreview.html, "Reply preview")}</div>` : nothing}
  </form>`;
}

function conversationControls(c: Conversation): TemplateResult {
  const tagsSubmit = (event: Event) => {
    const values = formValues(event);
    const tags = (values.tags ?? "").split(",").map((t) => t.trim()).filter(Boolean);
    void changeConversation({ tags, assignee: values.assignee?.trim() || null });
  };
  return html`<form class="controls" aria-label="Conversation settings" @submit=${tagsSubmit}>
    <label>Status
      <select name="status" @change=${(e: Event) =>
        changeConversation({ status: (e.target as HTMLSelectElement).value as "open" | "pending" | "closed" })}>
        ${(["open", "pending", "closed"] as const).map((s) => html`<option value=${s} ?selected=${c.status === s}>${s}</option>`)}
        ${c.status === "snoozed" ? html`<option value="snoozed" selected disabled>snoozed</option>` : nothing}
      </select>
    </label>
    <label>Assignee <input name="assignee" .value=${liveValue(c.assignee ?? "")} placeholder="nobody" /></label>
    <label class="grow">Tags <input name="tags" .value=${liveValue(c.tags.join(", "))} placeholder="comma, separated" /></label>
    <button type="submit" class="secondary">Save</button>
  </form>`;
}

function conversationView(): TemplateResult {
  const current = state.current;
  if (!current) {
    return html`<section class="detail-pane empty-detail" aria-label="Conversation">
      <p class="empty">Select a conversation.</p>
    </section>`;
  }
  const c = current.conversation;
  return html`<section class="detail-pane" aria-labelledby="conversation-title">
    <div class="pane-head">
      <a href="#/inbox" class="back" @click=${(e: Event) => { e.preventDefault(); go("#/inbox"); }}>← Inbox</a>
      <h1 id="conversation-title">${c.subject || "(no subject)"}</h1>
      <p class="muted">${person(c.customer)} · ${streamName(c.stream_id)} · ${badge(c.status)}
        ${c.tags.map((t) => badge(`#${t}`, "tag"))}</p>
    </div>
    ${conversationControls(c)}
    <div class="messages">${current.messages.map(messageCard)}</div>
    ${replyForm()}
  </section>`;
}

export function inboxPage(): TemplateResult {
  const detail = state.route.page === "inbox" && state.route.conversationId;
  return html`<div class="inbox ${detail ? "show-detail" : "show-list"}">${conversationList()}${conversationView()}</div>`;
}
