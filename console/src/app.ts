// The console's state and every action on it. Views (views/*.ts) only read the state and call these.
import {
  ApiError,
  api,
  imageAsDataUrl,
  must,
  session,
  type ApiKey,
  type Canned,
  type Conversation,
  type Domain,
  type EmailTemplate,
  type Me,
  type Message,
  type Rule,
  type RuleCreate,
  type Stream,
  type Topic,
} from "./api";
import { embedInlineImages } from "./inline";
import { LiveStream, type LiveEvent, type LiveState } from "./live";
import { parseRoute, type Route } from "./routes";

export { parseRoute, type Route };
import { createStore } from "./store";
import { announce } from "./util";

export interface Filters {
  status: string;
  stream_id: string;
  topic_id: string;
  q: string;
}

export interface State {
  me: Me | null;
  signingIn: boolean;
  signInError: string | null;
  route: Route;
  live: LiveState;
  status: string; // the last announcement, shown in the status line
  error: string | null;
  filters: Filters;
  conversations: Conversation[];
  nextCursor: string | null;
  loadingList: boolean;
  unseen: Set<string>; // conversations with mail that arrived live and was not opened yet
  current: { conversation: Conversation; messages: Message[] } | null;
  topics: Topic[];
  streams: Stream[];
  canned: Canned[];
  replyPreview: { html: string; text: string } | null;
  sending: boolean;
  domains: Domain[];
  domain: Domain | null;
  rules: Rule[];
  ruleTest: { ruleId: string; fired: boolean; summary: string } | null;
  keys: ApiKey[];
  createdKey: string | null;
  template: EmailTemplate | null;
  templatePreview: { html: string; text: string } | null;
}

export const store = createStore<State>({
  me: null,
  signingIn: false,
  signInError: null,
  route: { page: "inbox", conversationId: null },
  live: "stopped",
  status: "",
  error: null,
  filters: { status: "open", stream_id: "", topic_id: "", q: "" },
  conversations: [],
  nextCursor: null,
  loadingList: false,
  unseen: new Set(),
  current: null,
  topics: [],
  streams: [],
  canned: [],
  replyPreview: null,
  sending: false,
  domains: [],
  domain: null,
  rules: [],
  ruleTest: null,
  keys: [],
  createdKey: null,
  template: null,
  templatePreview: null,
});
const { state, update } = store;

export const isAdmin = (): boolean => state.me?.role === "admin";

/** Run an action; a failure becomes the page's error line (and is announced), never an uncaught exception. */
export async function attempt(what: string, action: () => Promise<void>): Promise<void> {
  update({ error: null });
  try {
    await action();
  } catch (error) {
    const text = error instanceof ApiError ? error.message : String(error);
    update({ error: `${what} failed: ${text}` });
    announce(`${what} failed.`);
  }
}

// --- routing (the hash: #/inbox/<id>, #/domains/<id>, ...) -----------------------------------------------------

export function go(hash: string): void {
  if (location.hash === hash) void enter(parseRoute(hash));
  else location.hash = hash;
}

export async function enter(route: Route): Promise<void> {
  update({ route, error: null });
  if (!state.me) return;
  switch (route.page) {
    case "inbox":
      if (!state.conversations.length) await loadConversations();
      if (route.conversationId) await openConversation(route.conversationId);
      else update({ current: null });
      return;
    case "streams":
      return attempt("Loading streams", loadCatalogue);
    case "domains":
      await attempt("Loading domains", async () => {
        const page = await must(api.GET("/v1/domains", { params: { query: { limit: 200 } } }));
        update({ domains: page.items });
        const domain = route.domainId
          ? await must(api.GET("/v1/domains/{domain_id}", { params: { path: { domain_id: route.domainId } } }))
          : null;
        update({ domain });
      });
      return;
    case "rules":
      return attempt("Loading rules", async () => {
        const page = await must(api.GET("/v1/automation/rules", { params: { query: { limit: 200 } } }));
        update({ rules: page.items });
        if (!state.canned.length) await loadCanned();
      });
    case "template":
      return attempt("Loading the template", async () => {
        update({ template: await must(api.GET("/v1/email-template")) });
        await loadCanned();
      });
    case "keys":
      return attempt("Loading API keys", async () => {
        const page = await must(api.GET("/v1/api-keys", { params: { query: { limit: 200 } } }));
        update({ keys: page.items });
      });
  }
}

// --- session ------------------------------------------------------------------------------------------------------

let live: LiveStream | null = null;

export async function signIn(key: string): Promise<void> {
  update({ signingIn: true, signInError: null });
  session.set(key.trim());
  try {
    const me = await must(api.GET("/v1/me"));
    update({ me, signingIn: false });
    announce(`Signed in to ${me.account_name ?? me.account_id} as ${me.role}.`);
    startLive();
    await loadCatalogue().catch(() => {});
    await enter(parseRoute(location.hash));
  } catch (error) {
    session.clear();
    const text =
      error instanceof ApiError && error.status === 401 ? "That API key is not valid." : `Could not sign in: ${error}`;
    update({ signingIn: false, signInError: text });
  }
}

export function signOut(reason = "Signed out."): void {
  live?.stop();
  live = null;
  session.clear();
  update({ me: null, conversations: [], current: null, unseen: new Set(), keys: [], createdKey: null });
  announce(reason);
}

export async function resume(): Promise<void> {
  const key = session.key;
  if (key) await signIn(key);
}

// --- live updates ------------------------------------------------------------------------------------------------

function startLive(): void {
  live?.stop();
  live = new LiveStream({
    key: () => session.key,
    onState: (liveState) => update({ live: liveState }),
    onEvent: (event) => void onLiveEvent(event),
  });
  live.start();
}

/** For the tests and the "reconnect" button: drop the stream and resume from the last event id. */
export function reconnectLive(): void {
  live?.reconnect();
}

let listReload: ReturnType<typeof setTimeout> | null = null;
function reloadListSoon(): void {
  // An import brings many events at once: coalesce them into one reload.
  if (listReload) return;
  listReload = setTimeout(() => {
    listReload = null;
    void loadConversations();
  }, 150);
}

async function onLiveEvent(event: LiveEvent): Promise<void> {
  const conversationId = typeof event.data.conversation_id === "string" ? event.data.conversation_id : null;
  const open = state.current?.conversation.id;
  switch (event.type) {
    case "message.received":
      if (conversationId && conversationId !== open) {
        update((s) => s.unseen.add(conversationId));
        announce(`New mail: ${String(event.data.subject ?? "")}`);
      }
      reloadListSoon();
      if (conversationId && conversationId === open) await refreshCurrent();
      return;
    case "message.imported":
    case "message.sent":
      reloadListSoon();
      if (conversationId && conversationId === open) await refreshCurrent();
      return;
    case "message.delivery_changed":
      if (conversationId && conversationId === open) await refreshCurrent();
      return;
    case "conversation.changed":
      reloadListSoon();
      if (conversationId && conversationId === open) await refreshCurrent();
      return;
    case "resync":
      reloadListSoon();
      if (open) await refreshCurrent();
      return;
  }
}

// --- inbox ------------------------------------------------------------------------------------------------------

export async function loadCatalogue(): Promise<void> {
  const [topics, streams] = await Promise.all([
    must(api.GET("/v1/topics", { params: { query: { limit: 200 } } })),
    must(api.GET("/v1/streams", { params: { query: { limit: 200 } } })),
  ]);
  update({ topics: topics.items, streams: streams.items });
}

async function loadCanned(): Promise<void> {
  const page = await must(api.GET("/v1/canned-responses", { params: { query: { limit: 200 } } }));
  update({ canned: page.items });
}

function listQuery(cursor?: string) {
  const f = state.filters;
  return {
    limit: 50,
    ...(cursor ? { cursor } : {}),
    ...(f.status ? { status: f.status as "open" | "closed" } : {}),
    ...(f.stream_id ? { stream_id: f.stream_id } : {}),
    ...(f.topic_id ? { topic_id: f.topic_id } : {}),
    ...(f.q.trim() ? { q: f.q.trim() } : {}),
  };
}

export async function loadConversations(): Promise<void> {
  update({ loadingList: true });
  await attempt("Loading conversations", async () => {
    const page = await must(api.GET("/v1/conversations", { params: { query: listQuery() } }));
    update({ conversations: page.items, nextCursor: page.next_cursor ?? null });
  });
  update({ loadingList: false });
}

export async function loadMoreConversations(): Promise<void> {
  if (!state.nextCursor) return;
  await attempt("Loading more conversations", async () => {
    const page = await must(api.GET("/v1/conversations", { params: { query: listQuery(state.nextCursor!) } }));
    update({ conversations: [...state.conversations, ...page.items], nextCursor: page.next_cursor ?? null });
  });
}

export function setFilters(filters: Partial<Filters>): void {
  update({ filters: { ...state.filters, ...filters } });
  void loadConversations();
}

async function fetchConversation(id: string) {
  const [conversation, messages] = await Promise.all([
    must(api.GET("/v1/conversations/{conversation_id}", { params: { path: { conversation_id: id } } })),
    must(
      api.GET("/v1/conversations/{conversation_id}/messages", {
        params: { path: { conversation_id: id }, query: { limit: 200 } },
      }),
    ),
  ]);
  const items = await Promise.all(
    messages.items.map(async (m) =>
      m.html ? { ...m, html: await embedInlineImages(m.html, m.attachments, imageAsDataUrl) } : m,
    ),
  );
  return { conversation, messages: items };
}

export async function openConversation(id: string): Promise<void> {
  await attempt("Opening the conversation", async () => {
    const current = await fetchConversation(id);
    update((s) => {
      s.current = current;
      s.unseen.delete(id);
      s.replyPreview = null;
    });
    if (!state.canned.length) await loadCanned();
  });
}

async function refreshCurrent(): Promise<void> {
  const id = state.current?.conversation.id;
  if (!id) return;
  try {
    const current = await fetchConversation(id);
    if (state.current?.conversation.id === id) update({ current });
  } catch {
    // the next event or a reload brings it back
  }
}

export async function changeConversation(patch: {
  status?: "open" | "pending" | "closed";
  tags?: string[];
  assignee?: string | null;
}): Promise<void> {
  const id = state.current?.conversation.id;
  if (!id) return;
  await attempt("Updating the conversation", async () => {
    const conversation = await must(
      api.PATCH("/v1/conversations/{conversation_id}", { params: { path: { conversation_id: id } }, body: patch }),
    );
    update((s) => {
      if (s.current) s.current.conversation = conversation;
      s.conversations = s.conversations.map((c) => (c.id === id ? conversation : c));
    });
    announce("Conversation updated.");
  });
}

export async function previewReply(text: string): Promise<void> {
  await attempt("Previewing", async () => {
    // The conversation's stream may brand its replies with a template of its own: preview with that one.
    const stream_id = state.current?.conversation.stream_id;
    const preview = await must(api.POST("/v1/email-template/preview", { body: { text, stream_id } }));
    update({ replyPreview: { html: preview.html, text: preview.text } });
  });
}

export async function sendReply(reply: { text: string; cannedId: string; applyTemplate: boolean }): Promise<boolean> {
  const id = state.current?.conversation.id;
  if (!id) return false;
  let sent = false;
  update({ sending: true });
  await attempt("Sending the reply", async () => {
    const queued = await must(
      api.POST("/v1/conversations/{conversation_id}/replies", {
        params: { path: { conversation_id: id } },
        body: {
          apply_template: reply.applyTemplate,
          ...(reply.text.trim() ? { text: reply.text } : {}),
          ...(reply.cannedId ? { canned_response_id: reply.cannedId } : {}),
        },
      }),
    );
    announce(`Reply ${queued.status}.${queued.warnings?.length ? " " + queued.warnings.join(" ") : ""}`);
    update({ replyPreview: null });
    sent = true;
    await refreshCurrent();
  });
  update({ sending: false });
  return sent;
}

// --- setup ------------------------------------------------------------------------------------------------------

export async function createTopic(name: string): Promise<void> {
  await attempt("Creating the topic", async () => {
    await must(api.POST("/v1/topics", { body: { name } }));
    await loadCatalogue();
    announce(`Topic ${name} created.`);
  });
}

export async function createStream(topicId: string, address: string, allowAgentSend: boolean): Promise<void> {
  await attempt("Adding the stream", async () => {
    await must(
      api.POST("/v1/topics/{topic_id}/streams", {
        params: { path: { topic_id: topicId } },
        body: { address, allow_agent_send: allowAgentSend },
      }),
    );
    await loadCatalogue();
    announce(`Stream ${address} added: forward its mail to the forwarding address shown.`);
  });
}

export async function verifyForwarding(streamId: string): Promise<void> {
  await attempt("Checking forwarding", async () => {
    await must(
      api.POST("/v1/streams/{stream_id}/verify-forwarding", { params: { path: { stream_id: streamId } } }),
    );
    announce("Forwarding check requested: a test mail is on its way.");
    await loadCatalogue();
  });
}

export async function createDomain(name: string, bits: 1024 | 2048): Promise<void> {
  await attempt("Adding the domain", async () => {
    const domain = await must(api.POST("/v1/domains", { body: { name, dkim_key_bits: bits } }));
    announce(`Domain ${domain.name} added: publish its DNS records.`);
    go(`#/domains/${encodeURIComponent(domain.id)}`);
  });
}

export async function verifyDomain(id: string): Promise<void> {
  await attempt("Verifying the domain", async () => {
    const domain = await must(api.POST("/v1/domains/{domain_id}/verify", { params: { path: { domain_id: id } } }));
    update({ domain, domains: state.domains.map((d) => (d.id === id ? domain : d)) });
    announce(`Domain ${domain.name} is ${domain.status}.`);
  });
}

export async function rotateDkim(id: string): Promise<void> {
  await attempt("Rotating the DKIM key", async () => {
    const domain = await must(
      api.POST("/v1/domains/{domain_id}/dkim/rotate", { params: { path: { domain_id: id } } }),
    );
    update({ domain });
    announce("A new DKIM key is ready: publish its record, then verify.");
  });
}

export async function createRule(rule: RuleCreate): Promise<void> {
  await attempt("Creating the rule", async () => {
    await must(api.POST("/v1/automation/rules", { body: rule }));
    await enter({ page: "rules" });
    announce(`Rule ${rule.name} created.`);
  });
}

export async function toggleRule(rule: Rule): Promise<void> {
  await attempt("Updating the rule", async () => {
    await must(
      api.PATCH("/v1/automation/rules/{rule_id}", {
        params: { path: { rule_id: rule.id } },
        body: { enabled: !rule.enabled },
      }),
    );
    await enter({ page: "rules" });
  });
}

export async function dryRunRule(rule: Rule, sample: { from: string; subject: string; body: string }): Promise<void> {
  await attempt("The dry run", async () => {
    const result = await must(
      api.POST("/v1/automation/rules/test", {
        body: {
          rule_id: rule.id,
          message: {
            from: sample.from,
            from_name: "",
            subject: sample.subject,
            body: sample.body,
            has_attachment: false,
            is_first_message: true,
          },
        },
      }),
    );
    const conditions = result.matched_conditions
      .map((c) => `${c.field} ${c.operator}: ${c.matched ? "yes" : "no"}`)
      .join(", ");
    const actions = result.actions.map((a) => String(a.type)).join(", ");
    const summary = result.fired
      ? `Would fire (${conditions || "no conditions"}); actions: ${actions || "none"}.`
      : `Would not fire (${conditions || "no conditions"}).`;
    update({ ruleTest: { ruleId: rule.id, fired: result.fired, summary } });
    announce(summary);
  });
}

export async function createKey(name: string, role: "admin" | "agent"): Promise<void> {
  await attempt("Creating the key", async () => {
    const created = await must(api.POST("/v1/api-keys", { body: { name, role } }));
    update({ createdKey: created.api_key });
    await enter({ page: "keys" });
    announce(`Key ${name} created: copy it now, it is shown once.`);
  });
}

export async function revokeKey(key: ApiKey): Promise<void> {
  await attempt("Revoking the key", async () => {
    await must(api.DELETE("/v1/api-keys/{key_id}", { params: { path: { key_id: key.id } } }));
    await enter({ page: "keys" });
    announce(`Key ${key.name} revoked.`);
  });
}

export async function saveTemplate(htmlPart: string, text: string): Promise<void> {
  await attempt("Saving the template", async () => {
    update({ template: await must(api.PUT("/v1/email-template", { body: { html: htmlPart, text } })) });
    announce("Template saved.");
  });
}

export async function previewTemplate(text: string): Promise<void> {
  await attempt("Previewing", async () => {
    const preview = await must(api.POST("/v1/email-template/preview", { body: { text } }));
    update({ templatePreview: { html: preview.html, text: preview.text } });
  });
}

export async function createCanned(title: string, text: string): Promise<void> {
  await attempt("Adding the canned response", async () => {
    await must(api.POST("/v1/canned-responses", { body: { title, text } }));
    await loadCanned();
    announce(`Canned response ${title} added.`);
  });
}

export async function deleteCanned(canned: Canned): Promise<void> {
  await attempt("Deleting the canned response", async () => {
    await must(
      api.DELETE("/v1/canned-responses/{canned_id}", { params: { path: { canned_id: canned.id } } }),
    );
    await loadCanned();
    announce(`Canned response ${canned.title} deleted.`);
  });
}
