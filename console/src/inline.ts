// Inline images (`cid:` in the mail) reach the console as `/v1/attachments/<id>` in the sanitised HTML. That URL
// needs the API key, which a frame sandboxed without same-origin cannot send: the console fetches each such image
// itself and puts it in the frame as a `data:` URL (allowed by the console's img-src). Pure but for `fetchImage`.

export interface InlineCandidate {
  id: string;
  content_type: string;
  size: number;
}

export const INLINE_MAX_BYTES = 2 * 1024 * 1024; // larger ones stay links: a frame full of megabytes helps nobody

export function attachmentPath(id: string): string {
  return `/v1/attachments/${encodeURIComponent(id)}`;
}

/** The attachments the HTML shows inline and that are worth embedding. */
export function inlineImagesOf(html: string, attachments: InlineCandidate[]): InlineCandidate[] {
  return attachments.filter(
    (a) => a.content_type.startsWith("image/") && a.size <= INLINE_MAX_BYTES && html.includes(attachmentPath(a.id)),
  );
}

/** The HTML with each attachment URL in `replacements` (path -> data URL) replaced, in src attributes only. */
export function replaceImageSources(html: string, replacements: Map<string, string>): string {
  return html.replace(/(<img\b[^>]*?\bsrc=)(["'])([^"']*)\2/gi, (whole, head: string, quote: string, src: string) => {
    const replacement = replacements.get(src);
    return replacement ? `${head}${quote}${replacement}${quote}` : whole;
  });
}

export async function embedInlineImages(
  html: string,
  attachments: InlineCandidate[],
  fetchImage: (path: string) => Promise<string>,
): Promise<string> {
  const wanted = inlineImagesOf(html, attachments);
  if (!wanted.length) return html;
  const replacements = new Map<string, string>();
  await Promise.all(
    wanted.map(async (a) => {
      try {
        replacements.set(attachmentPath(a.id), await fetchImage(attachmentPath(a.id)));
      } catch {
        // left as it is: a broken image, and the attachment stays downloadable below the mail
      }
    }),
  );
  return replaceImageSources(html, replacements);
}
