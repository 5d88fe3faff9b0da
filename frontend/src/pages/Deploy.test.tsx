import { MantineProvider } from "@mantine/core";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { theme } from "../theme";

/** What the Deploy page reads before the user submits: a configuration of no models. */
function backend() {
  return vi.fn(async (input: Request | string) => {
    const url = new URL(typeof input === "string" ? input : input.url, "http://localhost");
    if (url.pathname === "/api/configurations/7") return Response.json({ id: 7, name: "blobs", description: "", ml_model_ids: [], created_at: "2026-01-01T00:00:00Z" });
    if (url.pathname === "/api/models") return Response.json([]);
    if (url.pathname === "/api/platform") return Response.json({ kafka_bootstrap_servers: "127.0.0.1:9092", control_topic: "KAFKA_ML_CONTROL_TOPIC" });
    return Response.json({ message: "Not found.", extra: {} }, { status: 404 });
  });
}

beforeAll(() => {
  window.matchMedia ??= ((query: string) => ({ matches: false, media: query, onchange: null, addListener() {}, removeListener() {}, addEventListener() {}, removeEventListener() {}, dispatchEvent: () => false })) as typeof window.matchMedia;
  // Mantine's autosizing textareas listen for web fonts; jsdom has no FontFaceSet.
  // The segmented control measures itself; jsdom lays nothing out.
  globalThis.ResizeObserver ??= class {
    observe() {}
    unobserve() {}
    disconnect() {}
  };
  if (!("fonts" in document)) Object.defineProperty(document, "fonts", { value: new EventTarget() });
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.resetModules();
});

async function deployPage() {
  vi.stubGlobal("fetch", backend());
  const { DeployPage } = await import("./Deploy");
  render(
    <MantineProvider theme={theme}>
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <MemoryRouter initialEntries={["/configurations/7/deploy"]}>
          <Routes>
            <Route path="/configurations/:id/deploy" element={<DeployPage />} />
          </Routes>
        </MemoryRouter>
      </QueryClientProvider>
    </MantineProvider>,
  );
  await screen.findByRole("heading", { name: "Deploy blobs" });
}

describe("the deploy form's number fields", () => {
  it("keep an out-of-range value and show the error at the field instead of clamping it", async () => {
    await deployPage();
    const gpus = screen.getByRole("textbox", { name: /^GPUs/ });
    fireEvent.change(gpus, { target: { value: "17" } });
    fireEvent.blur(gpus);
    expect(gpus).toHaveValue("17");
    const batch = screen.getByRole("textbox", { name: /^Batch size/ });
    fireEvent.change(batch, { target: { value: "0" } });
    fireEvent.blur(batch);
    expect(batch).toHaveValue("0");
    fireEvent.click(screen.getByRole("button", { name: "Deploy" }));
    expect(await screen.findByText("Must be between 1 and 1000000.")).toBeInTheDocument();
    expect(screen.getByText("Must be between 0 and 16.")).toBeInTheDocument();
    expect(batch).toHaveAttribute("aria-invalid", "true");
    expect(gpus).toHaveAttribute("aria-invalid", "true");
  });
});
