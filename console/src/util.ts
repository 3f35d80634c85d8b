import { html, nothing, type TemplateResult } from "lit-html";

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

export function when(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeOnly.format(date) : dateTime.format(date);
}

export function bytes(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

export function person(who: { name?: string | null; address: string } | null | undefined): string {
  if (!who) return "unknown sender";
  return who.name ? `${who.name} <${who.address}>` : who.address;
}

/** Announce a short text to screen readers (and show it in the status line). */
let announcer: (text: string) => void = () => {};
export function setAnnouncer(fn: (text: string) => void): void {
  announcer = fn;
}
export function announce(text: string): void {
  announcer(text);
}

export async function copy(text: string, what: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    announce(`Copied ${what}.`);
  } catch {
    announce(`Could not copy ${what}: select it and copy by hand.`);
  }
}

/** A value to copy: shown in full (selectable) with a button whose accessible name says what it copies. */
export function copyable(value: string, what: string): TemplateResult {
  return html`<span class="copyable"
    ><code>${value}</code
    ><button type="button" class="small" aria-label="Copy ${what}" @click=${() => copy(value, what)}>
      Copy
    </button></span
  >`;
}

export function badge(text: string, tone: string = text): TemplateResult {
  return html`<span class="badge tone-${tone}">${text}</span>`;
}

export function maybe<T>(value: T | null | undefined, view: (value: T) => TemplateResult): TemplateResult | typeof nothing {
  return value === null || value === undefined ? nothing : view(value);
}

export function formValues(event: Event): Record<string, string> {
  event.preventDefault();
  const form = event.currentTarget as HTMLFormElement;
  const values: Record<string, string> = {};
  for (const [name, value] of new FormData(form)) values[name] = String(value);
  return values;
}

export function checked(event: Event, name: string): boolean {
  const form = event.currentTarget as HTMLFormElement;
  return (form.elements.namedItem(name) as HTMLInputElement | null)?.checked ?? false;
}
