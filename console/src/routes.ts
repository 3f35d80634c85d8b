// The console's pages, addressed by the URL hash (#/inbox/<conversation id>, #/domains/<id>, ...): pure, so tested.

export type Route =
  | { page: "inbox"; conversationId: string | null }
  | { page: "streams" }
  | { page: "domains"; domainId: string | null }
  | { page: "rules" }
  | { page: "template" }
  | { page: "keys" };

function decoded(id: string | undefined): string | null {
  if (!id) return null;
  try {
    return decodeURIComponent(id);
  } catch {
    return null; // a malformed escape in a hand-typed URL: show the list, not an error
  }
}

export function parseRoute(hash: string): Route {
  const [page, id] = hash.replace(/^#\/?/, "").split("/");
  switch (page) {
    case "streams":
      return { page: "streams" };
    case "domains":
      return { page: "domains", domainId: decoded(id) };
    case "rules":
      return { page: "rules" };
    case "template":
      return { page: "template" };
    case "keys":
      return { page: "keys" };
    default:
      return { page: "inbox", conversationId: decoded(id) };
  }
}
