import { describe, expect, it } from "vitest";
import { SseParser, type LiveEvent } from "./live";

function parse(...chunks: string[]): { events: LiveEvent[]; parser: SseParser } {
  const events: LiveEvent[] = [];
  const parser = new SseParser((event) => events.push(event));
  for (const chunk of chunks) parser.push(chunk);
  return { events, parser };
}

describe("SseParser", () => {
  it("reads named events with JSON data and remembers the last id", () => {
    const { events, parser } = parse(
      'id: 1-a\nevent: message.received\ndata: {"conversation_id":"c1","subject":"注文"}\n\n',
      'id: 2-b\nevent: conversation.changed\ndata: {"conversation_id":"c1"}\n\n',
    );
    expect(events).toEqual([
      { id: "1-a", type: "message.received", data: { conversation_id: "c1", subject: "注文" } },
      { id: "2-b", type: "conversation.changed", data: { conversation_id: "c1" } },
    ]);
    expect(parser.lastEventId).toBe("2-b");
  });

  it("joins events split across chunks at any byte, and CRLF line ends", () => {
    const text = 'id: 7\r\nevent: resync\r\ndata: {"reason":"expired"}\r\n\r\n';
    for (let cut = 1; cut < text.length; cut++) {
      const { events } = parse(text.slice(0, cut), text.slice(cut));
      expect(events).toEqual([{ id: "7", type: "resync", data: { reason: "expired" } }]);
    }
  });

  it("ignores keep-alive comments; an id-only block moves the position without an event", () => {
    const { events, parser } = parse(": keep-alive\n\n", "id: 9-opening\n\n", ": ping\n\n");
    expect(events).toEqual([]);
    expect(parser.lastEventId).toBe("9-opening");
  });

  it("reads retry, multi-line data and a missing space after the colon", () => {
    const { events, parser } = parse("retry: 3000\n", "event:x\ndata:line one\ndata: line two\n\n");
    expect(parser.retry).toBe(3000);
    expect(events).toEqual([{ id: "", type: "x", data: { raw: "line one\nline two" } }]);
  });

  it("waits for the blank line before dispatching", () => {
    const { events } = parse('event: message.sent\ndata: {"a":1}\n');
    expect(events).toEqual([]);
  });
});
