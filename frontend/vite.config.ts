/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The dev server proxies the API to a running backend (`make run`), so `npm run dev` needs no
// CORS: the browser sees one origin, as it does when the backend serves the build.
const backend = process.env.KAFKAML_BACKEND_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/api": backend } },
  build: { chunkSizeWarningLimit: 1200, sourcemap: false },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/test-setup.ts"],
    testTimeout: 60_000, // rendering a whole page in jsdom takes seconds on a loaded machine
  },
});
