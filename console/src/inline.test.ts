import { describe, expect, it } from "vitest";
import { embedInlineImages, inlineImagesOf, replaceImageSources } from "./inline";

const logo = { id: "a1", content_type: "image/png", size: 100 };
const pdf = { id: "a2", content_type: "application/pdf", size: 100 };

describe("inline images", () => {
  it("embeds only images the HTML shows", () => {
    const html = '<p>Hi</p><img src="/v1/attachments/a1" alt="logo">';
    expect(inlineImagesOf(html, [logo, pdf, { ...logo, id: "a3" }])).toEqual([logo]);
    expect(inlineImagesOf(html, [{ ...logo, size: 10 * 1024 * 1024 }])).toEqual([]);
  });

  it("replaces src attributes of img tags only", () => {
    const html = '<img alt="x" src="/v1/attachments/a1"><a href="/v1/attachments/a1">link</a>';
    const out = replaceImageSources(html, new Map([["/v1/attachments/a1", "data:image/png;base64,AAA"]]));
    expect(out).toBe('<img alt="x" src="data:image/png;base64,AAA"><a href="/v1/attachments/a1">link</a>');
  });

  it("leaves an image that could not be fetched as it was", async () => {
    const html = '<img src="/v1/attachments/a1">';
    const out = await embedInlineImages(html, [logo], async () => {
      throw new Error("404");
    });
    expect(out).toBe(html);
    expect(await embedInlineImages(html, [logo], async () => "data:image/png;base64,AAA")).toBe(
      '<img src="data:image/png;base64,AAA">',
    );
  });
});
