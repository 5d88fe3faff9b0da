import { defineConfig } from "@playwright/test";
import base from "./playwright.config";

// The browser side of `python -m bench web_ui` (bench/web_ui.py starts the stack and runs it).
export default defineConfig({ ...base, testDir: "bench", outputDir: "test-results/bench-output" });
