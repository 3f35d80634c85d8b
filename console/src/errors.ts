// Errors of the API as one readable sentence each: pure, so tested.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** FastAPI's error bodies in one readable line: `{"detail": "..."}` or a 422's list naming each field. */
export function describeError(status: number, body: unknown): string {
  const detail = (body as { detail?: unknown } | undefined)?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item: { loc?: unknown[]; msg?: string }) => {
        const field = (item.loc ?? []).filter((part) => part !== "body").join(".");
        return field ? `${field}: ${item.msg}` : String(item.msg);
      })
      .join("; ");
  }
  return `The server answered ${status}.`;
}
