import { defineConfig } from "@playwright/test";

// Debian's chromium, never a downloaded browser. The stack is started by tests/test_web_ui.py,
// which passes its address and credentials in KAFKAML_UI_* variables.
export default defineConfig({
  testDir: "e2e",
  outputDir: "test-results/output",
  timeout: 600_000,
  expect: { timeout: 30_000 },
  workers: 1,
  retries: 0,
  use: {
    baseURL: process.env.KAFKAML_UI_URL ?? "http://127.0.0.1:8000",
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    trace: "retain-on-failure",
    actionTimeout: 30_000,
    launchOptions: {
      executablePath: process.env.KAFKAML_TEST_CHROMIUM ?? "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    },
  },
});
