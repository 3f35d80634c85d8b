// The console's only way to the server: the gateway's public API, typed from openapi.json (see `npm run gen:api`).
// A contract change regenerates schema.d.ts and breaks this build, not the people using the console.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./api/schema";
import { ApiError, describeError } from "./errors";

export { ApiError, describeError };

export type Schemas = components["schemas"];
export type Me = Schemas["Me"];
export type Conversation = Schemas["ConversationPublic"];
export type Message = Schemas["MessagePublic"];
export type Stream = Schemas["StreamPublic"];
export type Topic = Schemas["TopicPublic"];
export type Domain = Schemas["DomainPublic"];
export type DnsRecord = Schemas["DnsRecordPublic"];
export type Canned = Schemas["CannedPublic"];
export type Rule = Schemas["RulePublic"];
export type RuleCreate = Schemas["RuleCreate"];
export type ApiKey = Schemas["ApiKeyPublic"];
export type EmailTemplate = Schemas["EmailTemplatePublic"];

const KEY_STORAGE = "mailstream.apiKey";

/** The API key lives in sessionStorage only: gone when the tab closes, never in a URL, a cookie or a log. */
export const session = {
  get key(): string | null {
    return sessionStorage.getItem(KEY_STORAGE);
  },
  set(key: string): void {
    sessionStorage.setItem(KEY_STORAGE, key);
  },
  clear(): void {
    sessionStorage.removeItem(KEY_STORAGE);
  },
};

/** Called when the server says the key is no longer valid (401): the app signs out. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

const auth: Middleware = {
  onRequest({ request }) {
    const key = session.key;
    if (key) request.headers.set("Authorization", `Bearer ${key}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) onUnauthorized();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: location.origin });
api.use(auth);

/** The data of an openapi-fetch result, or an ApiError with the server's own explanation. */
export async function must<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw new ApiError(response.status, describeError(response.status, error));
  return data as T;
}

/** A binary download (attachments, raw mail) needs the key too, so it is fetched and handed over as a blob URL. */
export async function download(path: string, filename: string): Promise<void> {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${session.key ?? ""}` } });
  if (!response.ok) throw new ApiError(response.status, `Download failed (${response.status}).`);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** An image attachment as a `data:` URL, for the sandboxed mail frame (see inline.ts). */
export async function imageAsDataUrl(path: string): Promise<string> {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${session.key ?? ""}` } });
  if (!response.ok) throw new ApiError(response.status, `Image failed (${response.status}).`);
  const blob = await response.blob();
  return await new Promise<string>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
