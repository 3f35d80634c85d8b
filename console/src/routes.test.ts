import { describe, expect, it } from "vitest";
import { describeError } from "./errors";
import { parseRoute } from "./routes";

describe("parseRoute", () => {
  it("maps each page's hash", () => {
    expect(parseRoute("")).toEqual({ page: "inbox", conversationId: null });
    expect(parseRoute("#/inbox")).toEqual({ page: "inbox", conversationId: null });
    expect(parseRoute("#/inbox/c%2F1")).toEqual({ page: "inbox", conversationId: "c/1" });
    expect(parseRoute("#/domains/d1")).toEqual({ page: "domains", domainId: "d1" });
    expect(parseRoute("#/streams")).toEqual({ page: "streams" });
    expect(parseRoute("#/keys")).toEqual({ page: "keys" });
  });

  it("sends unknown pages and malformed escapes to the inbox list", () => {
    expect(parseRoute("#/nope")).toEqual({ page: "inbox", conversationId: null });
    expect(parseRoute("#/inbox/%E0%A4%A")).toEqual({ page: "inbox", conversationId: null });
  });
});

describe("describeError", () => {
  it("uses the server's own words", () => {
    expect(describeError(409, { detail: "this stream does not allow agents to send" })).toBe(
      "this stream does not allow agents to send",
    );
  });

  it("names each invalid field of a 422", () => {
    const body = { detail: [{ loc: ["body", "name"], msg: "Field required" }, { loc: ["query", "limit"], msg: "too big" }] };
    expect(describeError(422, body)).toBe("name: Field required; query.limit: too big");
  });

  it("falls back to the status", () => {
    expect(describeError(502, undefined)).toBe("The server answered 502.");
  });
});
