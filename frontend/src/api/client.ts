/**
 * The one typed client of the REST API. Request and response shapes come from `schema.d.ts`,
 * generated from the backend's OpenAPI document (`make api-types`); nothing here restates them.
 */
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

/** Field errors as the API reports them, flattened to dotted paths: `incremental.window`. */
export type FieldErrors = Record<string, string>;

/** A refused request, in the API's own words (`{"message": ..., "extra": {...}}`). */
export class ApiError extends Error {
  readonly status: number;
  readonly extra: Record<string, unknown>;

  constructor(status: number, message: string, extra: Record<string, unknown> = {}) {
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

export function toApiError(status: number, body: unknown): ApiError {
  if (body && typeof body === "object" && "message" in body) {
    const { message, extra } = body as { message: unknown; extra?: unknown };
    return new ApiError(status, String(message), (extra as Record<string, unknown>) ?? {});
  }
  return new ApiError(status, `The server answered ${status}.`);
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
