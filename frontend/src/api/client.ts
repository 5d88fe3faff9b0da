/**
 * The one typed client of the REST API. Request and response shapes come from `schema.d.ts`,
 * generated from the backend's OpenAPI document (`make api-types`); nothing here restates them.
 */
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

/** Field errors as the API reports them, flattened to dotted paths: `incremental.window`. */
export type FieldErrors = Record<string, string>;

/** A refused request, in the API's own words (its `ErrorBody`: `{"message": ..., "extra": {...}}`). */
export class ApiError extends Error {
  readonly status: number;
  readonly extra: ErrorBody["extra"];

  constructor(status: number, message: string, extra: ErrorBody["extra"] = {}) {
    super(message);
    this.status = status;
    this.extra = extra;
  }

  /** `extra.fields` flattened: nested serializer errors become dotted keys. */
  get fields(): FieldErrors {
    return flattenFieldErrors(this.extra.fields);
  }

  /** The line the model code executor named, when it named one. */
  get line(): number | null {
    return typeof this.extra.line === "number" ? this.extra.line : null;
  }
}

export function flattenFieldErrors(fields: unknown, prefix = ""): FieldErrors {
  const out: FieldErrors = {};
  if (Array.isArray(fields)) {
    if (fields.every((item) => typeof item === "string")) {
      out[prefix || "non_field_errors"] = fields.join(" ");
    } else {
      fields.forEach((item, index) => Object.assign(out, flattenFieldErrors(item, `${prefix}.${index}`)));
    }
  } else if (fields && typeof fields === "object") {
    for (const [key, value] of Object.entries(fields)) {
      Object.assign(out, flattenFieldErrors(value, prefix ? `${prefix}.${key}` : key));
    }
  } else if (typeof fields === "string") {
    out[prefix || "non_field_errors"] = fields;
  }
  return out;
}

export function csrfToken(cookies: string = document.cookie): string {
  const match = cookies.split("; ").find((part) => part.startsWith("csrftoken="));
  return match ? decodeURIComponent(match.slice("csrftoken=".length)) : "";
}

/** Listeners told when a signed-in session stops being accepted (expired or signed out elsewhere). */
const sessionListeners = new Set<() => void>();
export function onSessionExpired(listener: () => void): () => void {
  sessionListeners.add(listener);
  return () => sessionListeners.delete(listener);
}

const session: Middleware = {
  onRequest({ request }) {
    if (!["GET", "HEAD", "OPTIONS"].includes(request.method)) {
      request.headers.set("X-CSRFToken", csrfToken());
    }
    return request;
  },
  onResponse({ request, response }) {
    const auth = new URL(request.url).pathname.startsWith("/api/auth/");
    if ((response.status === 401 || response.status === 403) && !auth) {
      sessionListeners.forEach((listener) => listener());
    }
    return response;
  },
};

export const api = createClient<paths>({
  baseUrl: typeof window === "undefined" ? "http://localhost" : window.location.origin,
  credentials: "same-origin",
});
api.use(session);

type Outcome<T> = { data?: T; error?: unknown; response: Response };

/** The data of a successful answer; ApiError with the API's message otherwise. */
export async function unwrap<T>(request: Promise<Outcome<T>>): Promise<T> {
  const { data, error, response } = await request;
  if (response.ok) return data as T;
  throw toApiError(response.status, error);
}

/** The API's error body, as the schema documents it for 400/401/403/404/409/413/429/503. */
export type ErrorBody = Schemas["ErrorBody"];

/** Whether `body` is the API's error body (a proxy's HTML page or an empty answer is not). */
export function isErrorBody(body: unknown): body is ErrorBody {
  if (!body || typeof body !== "object") return false;
  const { message, extra } = body as Partial<Record<keyof ErrorBody, unknown>>;
  return typeof message === "string" && (extra === undefined || (typeof extra === "object" && extra !== null && !Array.isArray(extra)));
}

/** What to say when the answer is not the API's own: the status in words a user can act on. */
function fallbackMessage(status: number): string {
  if (status === 429) return "Too many requests: wait a moment and try again.";
  if (status === 503) return "The service is busy or unavailable: try again shortly.";
  return `The server answered ${status}.`;
}

export function toApiError(status: number, body: unknown): ApiError {
  if (isErrorBody(body)) return new ApiError(status, body.message, body.extra ?? {});
  return new ApiError(status, fallbackMessage(status));
}

/** GET a binary download (a trained model) and hand it to the browser as a file. */
export async function download(path: string, fallbackName: string): Promise<void> {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) {
    throw toApiError(response.status, await response.json().catch(() => null));
  }
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}
