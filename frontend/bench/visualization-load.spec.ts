/**
 * The live visualization page under load, in real Chromium: signed in, connected to an
 * inference's output topic while a producer writes KAFKAML_BENCH_RATE predictions/s to it for
 * KAFKAML_BENCH_SECONDS. Long main-thread tasks are recorded by a PerformanceObserver
 * (`longtask`, buffered) from before the page loads; the figures are those of the load window.
 * Run by bench/web_ui.py, which starts the stack and reads KAFKAML_BENCH_OUT.
 */
import { expect, test } from "@playwright/test";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through python -m bench web_ui`);
  return value;
};

declare global {
  interface Window {
    longTasks: { start: number; duration: number }[];
  }
}

test("the visualization page stays responsive while its topic is fed", async ({ page }) => {
  const rate = Number(env("KAFKAML_BENCH_RATE"));
  const seconds = Number(env("KAFKAML_BENCH_SECONDS"));
  await page.addInitScript(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.longTasks.push({ start: entry.startTime, duration: entry.duration });
    }).observe({ type: "longtask", buffered: true });
  });
  await page.goto("/");
  await page.getByLabel("User name").fill(env("KAFKAML_UI_USER"));
  await page.locator("input[type=password]").fill(env("KAFKAML_UI_PASSWORD"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("signed-in-user")).toBeVisible();
  await page.goto(`/inferences/${env("KAFKAML_BENCH_INFERENCE")}/visualization`);
  await expect(page.getByLabel("Visualization configuration (JSON)")).toHaveValue(/"Class 2"/);
  await page.getByRole("button", { name: "Save configuration" }).click();
  await page.getByRole("button", { name: "Connect" }).click();
  const stats = page.getByTestId("live-stats");
  await expect(stats).toHaveAttribute("data-reading", "true");

  const started = await page.evaluate(() => performance.now());
  const producer = spawn(env("KAFKAML_UI_PYTHON"), ["-m", "bench.web_ui", "produce", env("KAFKAML_UI_BOOTSTRAP"), env("KAFKAML_BENCH_TOPIC")], {
    cwd: "..",
    stdio: ["ignore", "inherit", "inherit"],
  });
  const code = await new Promise<number | null>((resolve) => producer.on("exit", resolve));
  expect(code).toBe(0);
  // Everything produced has reached the page (the server folds what it reads into updates).
  await expect.poll(async () => Number(await stats.getAttribute("data-total")), { timeout: 120_000 }).toBeGreaterThanOrEqual(rate * seconds);
  const ended = await page.evaluate(() => performance.now());

  const tasks = await page.evaluate((from) => window.longTasks.filter((task) => task.start >= from), started);
  const figures = {
    seconds_in_browser: (ended - started) / 1000,
    predictions: Number(await stats.getAttribute("data-total")),
    updates: Number(await stats.getAttribute("data-updates")),
    frames: Number((await page.getByTestId("chart-class frequencies").getAttribute("data-frames")) ?? 0),
    long_tasks: tasks.length,
    over_50_ms: tasks.filter((task) => task.duration > 50).length,
    over_200_ms: tasks.filter((task) => task.duration > 200).length,
    longest_ms: Math.max(0, ...tasks.map((task) => task.duration)),
    longest_before_load_ms: await page.evaluate((from) => Math.max(0, ...window.longTasks.filter((task) => task.start < from).map((task) => task.duration)), started),
  };
  writeFileSync(env("KAFKAML_BENCH_OUT"), JSON.stringify(figures));
});
