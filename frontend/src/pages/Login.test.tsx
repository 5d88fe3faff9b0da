import { MantineProvider } from "@mantine/core";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";

/** Answers the API would give: no session yet, and a sign-in refused with `status` and `body`. */
function backend(status: number, body: unknown) {
  return vi.fn(async (input: Request | string) => {
    const url = typeof input === "string" ? input : input.url;
    if (url.endsWith("/api/auth/me")) return Response.json({ message: "Authentication credentials were not provided.", extra: {} }, { status: 401 });
    return Response.json(body, { status });
  });
}

beforeAll(() => {
  // Mantine reads the colour scheme preference; jsdom has no matchMedia.
  window.matchMedia ??= ((query: string) => ({ matches: false, media: query, onchange: null, addListener() {}, removeListener() {}, addEventListener() {}, removeEventListener() {}, dispatchEvent: () => false })) as typeof window.matchMedia;
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.resetModules();
});

async function signInWith(status: number, body: unknown) {
  vi.stubGlobal("fetch", backend(status, body));
  // The client takes `fetch` when it is created: import it after the stub.
  const { AuthProvider } = await import("../lib/auth");
  const { LoginPage } = await import("./Login");
  render(
    <MantineProvider>
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <AuthProvider>
          <LoginPage />
        </AuthProvider>
      </QueryClientProvider>
    </MantineProvider>,
  );
  fireEvent.change(screen.getByLabelText(/User name/, { selector: "input" }), { target: { value: "alice" } });
  fireEvent.change(screen.getByLabelText(/^Password/, { selector: "input" }), { target: { value: "wrong" } });
  fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
  return screen.findByRole("alert");
}

describe("the sign-in page", () => {
  it("shows the API's message when sign-ins are throttled (429)", async () => {
    const alert = await signInWith(429, { message: "Too many failed logins. Expected available in 60 seconds.", extra: { retry_after_s: 60 } });
    expect(alert).toHaveTextContent("Too many failed logins. Expected available in 60 seconds.");
  });
  it("shows the API's message when the backend is busy (503)", async () => {
    const alert = await signInWith(503, { message: "The database did not answer.", extra: {} });
    expect(alert).toHaveTextContent("The database did not answer.");
  });
  it("says what a 429 means when a proxy answered instead of the API", async () => {
    const alert = await signInWith(429, "<html>slow down</html>");
    expect(alert).toHaveTextContent(/Too many requests/);
  });
});
