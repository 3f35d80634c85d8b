// The account's live events (GET /v1/events, Server-Sent Events) read with fetch, so that the key travels in the
// Authorization header rather than in a URL. On a dropped connection it reconnects with `Last-Event-ID`, and the
// gateway replays what was missed; a `resync` event means "reload from the REST API".

export interface LiveEvent {
  id: string;
  type: string;
  data: Record<string, unknown>;
}

const SILENCE_LIMIT_MS = 60_000;
const STABLE_AFTER_MS = 10_000;

export type LiveState = "connecting" | "live" | "reconnecting" | "stopped";

export interface LiveOptions {
  key: () => string | null;
  onEvent: (event: LiveEvent) => void;
  onState: (state: LiveState) => void;
}

/** Splits an SSE byte stream into events (the parser of the HTML standard, minus what the gateway never sends). */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private type = "";
  lastEventId = "";
  retry: number | null = null;

  constructor(private readonly emit: (event: LiveEvent) => void) {}

  private afterCR = false; // the last chunk ended in CR: an LF opening the next one belongs to that line end

  push(chunk: string): void {
    if (this.afterCR && chunk.startsWith("\n")) chunk = chunk.slice(1);
    this.afterCR = false;
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      if (width === 1 && this.buffer[newline] === "\r" && newline === this.buffer.length - 1) this.afterCR = true;
      this.buffer = this.buffer.slice(newline + width);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return; // keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  private dispatch(): void {
    const type = this.type || "message";
    const data = this.data.join("\n");
    this.type = "";
    this.data = [];
    if (!data) return; // an id-only block: the position is kept, nothing to show
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(data) as Record<string, unknown>;
    } catch {
      parsed = { raw: data };
    }
    this.emit({ id: this.lastEventId, type, data: parsed });
  }
}

export class LiveStream {
  private controller: AbortController | null = null;
  private lastEventId = "";
  private stopped = false;
  private attempt = 0;
  private wake: (() => void) | null = null;
  private readonly online = () => this.wake?.(); // back online: retry now rather than after the backoff

  constructor(private readonly options: LiveOptions) {}

  start(): void {
    this.stopped = false;
    window.addEventListener("online", this.online);
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener("online", this.online);
    this.wake?.();
    this.controller?.abort();
    this.options.onState("stopped");
  }

  /** Drop the connection now and come back with Last-Event-ID (what a network blip does). */
  reconnect(): void {
    this.controller?.abort();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const key = this.options.key();
      if (!key) return this.stop();
      this.options.onState(this.attempt === 0 ? "connecting" : "reconnecting");
      this.controller = new AbortController();
      let retryMs = 3000;
      try {
        const headers: Record<string, string> = { Authorization: `Bearer ${key}`, Accept: "text/event-stream" };
        if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
        const response = await fetch("/v1/events", { headers, signal: this.controller.signal, cache: "no-store" });
        if (response.status === 401 || response.status === 403) return this.stop();
        if (!response.ok || !response.body) throw new Error(`events: ${response.status}`);
        this.options.onState("live");
        const opened = Date.now();
        const parser = new SseParser((event) => this.options.onEvent(event));
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        // The gateway sends a keep-alive comment every 15 s (by default): a longer silence is a dead connection
        // that nobody closed (a sleeping laptop, a proxy), so it is dropped and resumed from the last id.
        const controller = this.controller;
        let heard = Date.now();
        const watchdog = setInterval(() => {
          if (Date.now() - heard > SILENCE_LIMIT_MS) controller.abort();
          // Only a connection that held for a while resets the backoff: one the server keeps dropping at once
          // must not be retried four times a second.
          if (Date.now() - opened > STABLE_AFTER_MS) this.attempt = 0;
        }, 5000);
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            heard = Date.now();
            parser.push(value);
            if (parser.lastEventId) this.lastEventId = parser.lastEventId;
            if (parser.retry !== null) retryMs = parser.retry;
          }
        } finally {
          clearInterval(watchdog);
        }
      } catch {
        // aborted or network error: reconnect below
      }
      if (this.stopped) return;
      this.attempt += 1;
      this.options.onState("reconnecting");
      // The first retry is almost immediate (a blip); then back off from the server's `retry:`, with jitter.
      const delay = Math.min(30_000, retryMs * 2 ** Math.min(this.attempt - 1, 3)) * (0.5 + Math.random() / 2);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, this.attempt === 1 ? 250 : delay);
      });
      this.wake = null;
    }
  }
}
