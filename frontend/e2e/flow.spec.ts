/**
 * Issue 15's flow, as a first-time user: sign in, a model with a syntax error then fixed,
 * a configuration, a deployment, data from a sink, the result live to `finished` with its
 * learning curves, the model download, an inference, its predictions live in both modes,
 * scale, stop, sign out. Along the way, on the same stack and data: the import of the trained
 * model file, a second deployment of the configuration fed by replaying the first datasource
 * (its job log followed live, then the configuration's results compared on one chart), a hot
 * model swap of the inference, and a federated worker registered (its credential shown once)
 * and revoked. Every page gets an axe scan; every step a screenshot.
 */
import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { TEMPLATES } from "../src/lib/models";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through tests/test_web_ui.py`);
  return value;
};

// This run's screenshots only.
mkdirSync("test-results", { recursive: true });
for (const old of readdirSync("test-results", { withFileTypes: true }).filter((entry) => entry.name.endsWith(".png"))) rmSync(`test-results/${old.name}`);
let shot = 0;
async function screenshot(page: Page, name: string) {
  shot += 1;
  await page.screenshot({ path: `test-results/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

async function noSeriousA11yViolations(page: Page, name: string) {
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations.filter((violation) => violation.impact === "serious" || violation.impact === "critical");
  expect(serious.map((violation) => `${name}: ${violation.id} (${violation.impact}): ${violation.nodes.map((node) => node.target.join(" ")).slice(0, 3).join(" | ")}`)).toEqual([]);
}

async function replaceEditor(page: Page, label: string, text: string) {
  const editor = page.getByLabel(label, { exact: true }).and(page.locator(".cm-content"));
  await editor.click();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.insertText(text);
}

function python(...args: string[]) {
  return execFileSync(env("KAFKAML_UI_PYTHON"), [env("KAFKAML_UI_DATA_SCRIPT"), ...args], { stdio: "pipe", timeout: 180_000 });
}

test("a first-time user trains, deploys and watches a model", async ({ page }) => {
  test.setTimeout(600_000);
  const bootstrap = env("KAFKAML_UI_BOOTSTRAP");
  const tag = Date.now().toString(36); // names of this run's objects: reruns on one stack work
  const modelFile = test.info().outputPath("downloaded-model.pt");

  await test.step("sign in (a wrong password is refused in words)", async () => {
    await page.goto("/");
    await expect(page.getByRole("heading", { name: "Sign in to kafkaml" })).toBeVisible();
    await noSeriousA11yViolations(page, "sign in");
    await page.getByLabel("User name").fill(env("KAFKAML_UI_USER"));
    await page.locator("input[type=password]").fill("not-the-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert")).toContainText("Wrong user name or password.");
    await screenshot(page, "sign-in-wrong-password");
    await page.locator("input[type=password]").fill(env("KAFKAML_UI_PASSWORD"));
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByTestId("signed-in-user")).toContainText(env("KAFKAML_UI_USER"));
    await expect(page.getByRole("heading", { name: "Models" })).toBeVisible();
    await screenshot(page, "models-empty");
    await noSeriousA11yViolations(page, "models");
  });

  await test.step("a model with a syntax error shows the error at its line; fixed, its summary", async () => {
    await page.getByRole("link", { name: "New model" }).click();
    await page.getByRole("textbox", { name: "Name", exact: true }).fill(`net-${tag}`);
    await page.getByText("PyTorch (Ignite)").click();
    await expect(page.locator(".cm-content[aria-label=code]")).toContainText("class Net(torch.nn.Module)");
    const broken = TEMPLATES.pytorch.code.replace("model = Net()", "model = Net(");
    const line = broken.split("\n").findIndex((text) => text === "model = Net(") + 1;
    await replaceEditor(page, "code", broken);
    await page.getByRole("button", { name: "Check and create" }).click();
    await expect(page.getByTestId("model-error")).toContainText(`line ${line}`, { timeout: 120_000 });
    // Said once: the executor's "(code, line N)" tail is not repeated after the page's own.
    expect((await page.getByTestId("model-error").textContent())?.match(/line \d+/g)).toEqual([`line ${line}`]);
    await expect(page.getByTestId("editor-code")).toHaveAttribute("data-error-line", String(line));
    await expect(page.locator(".cm-lintRange-error")).toBeVisible();
    await screenshot(page, "model-error-at-line");
    await noSeriousA11yViolations(page, "model edit");
    await replaceEditor(page, "code", TEMPLATES.pytorch.code);
    await page.getByRole("button", { name: "Check and create" }).click();
    await expect(page.getByTestId("model-summary")).toContainText("parameters", { timeout: 120_000 });
    await expect(page.getByTestId("model-summary")).toContainText("[null,4]");
    await screenshot(page, "model-summary");
  });

  let deploymentId = 0;
  await test.step("a configuration, deployed with the snippet to send data", async () => {
    await page.getByRole("link", { name: "Configurations" }).click();
    await noSeriousA11yViolations(page, "configurations");
    await page.getByRole("link", { name: "New configuration" }).click();
    await page.getByRole("textbox", { name: "Name", exact: true }).fill(`blobs-${tag}`);
    await page.getByRole("combobox", { name: "Models" }).click();
    await page.getByRole("option", { name: `net-${tag} (pytorch)` }).click();
    await page.keyboard.press("Escape");
    await page.getByRole("button", { name: "Create" }).click();
    await expect(page.getByRole("link", { name: `blobs-${tag}`, exact: true })).toBeVisible();
    await screenshot(page, "configurations");
    await page.getByRole("row", { name: new RegExp(`blobs-${tag}`) }).getByRole("link", { name: "Deploy", exact: true }).click();
    await expect(page.getByRole("heading", { name: `Deploy blobs-${tag}` })).toBeVisible();
    await page.getByLabel("Fit arguments (JSON)").fill("[3]");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await expect(page.getByText("Must be a JSON object")).toBeVisible();
    await page.getByLabel("Fit arguments (JSON)").fill('{"epochs": 4}');
    // Federated mode shows every option of the API, checked at its field before a round trip.
    await page.getByText("Federated", { exact: true }).click();
    await page.getByRole("combobox", { name: "Strategy" }).click();
    await page.getByRole("option", { name: "FedProx" }).click();
    await page.getByLabel("Data restrictions (JSON)", { exact: true }).fill("[1]");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await expect(page.getByText("Must be a JSON object")).toBeVisible();
    for (const label of ["Local epochs", "Minimum clients", "Minimum data", "Round timeout (s)", "Mu", "Data restrictions (JSON)"]) {
      await expect(page.getByLabel(label, { exact: true })).toBeVisible();
    }
    await screenshot(page, "deploy-federated-options");
    await page.getByText("Classic", { exact: true }).click();
    // The federated fields' errors went with them: no banner about fields that are not shown.
    await expect(page.getByText("Some fields need attention.")).toHaveCount(0);
    await noSeriousA11yViolations(page, "deploy");
    await screenshot(page, "deploy-form");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    const snippet = page.getByTestId("sink-snippet");
    await expect(snippet).toContainText("RawSink(", { timeout: 120_000 });
    await expect(snippet).toContainText(bootstrap);
    await expect(snippet).toContainText('data_reshape="4"');
    deploymentId = Number(/deployment_id=(\d+)/.exec((await snippet.textContent()) ?? "")?.[1]);
    expect(deploymentId).toBeGreaterThan(0);
    await screenshot(page, "deployed-snippet");
  });

  let resultPath = "";
  await test.step("data from a sink; the result goes live to finished with its learning curves", async () => {
    await page.getByRole("link", { name: "Watch its results" }).click();
    await expect(page.getByTestId("status").first()).toBeVisible();
    await noSeriousA11yViolations(page, "deployments");
    python("train", bootstrap, String(deploymentId), env("KAFKAML_UI_CONTROL_TOPIC"));
    await page.getByRole("link", { name: /^Result \d+$/ }).first().click();
    // Watch it live: the page polls, nobody reloads.
    await expect(page.getByTestId("status")).toHaveAttribute("data-status", /running|finished/, { timeout: 180_000 });
    await expect(page.getByTestId("chart-curve loss")).toBeVisible({ timeout: 180_000 });
    await screenshot(page, "result-training");
    await expect(page.getByTestId("status")).toHaveAttribute("data-status", "finished", { timeout: 240_000 });
    await expect(page.getByTestId("metrics-table")).toContainText("accuracy");
    await expect(page.getByTestId("chart-confusion matrix")).toBeVisible();
    // The log is titled with the result's status (not the runner's lagging state) and stops following.
    await expect(page.getByTestId("job-log-panel")).toContainText("Job log (finished)");
    await expect(page.getByTestId("job-log-panel")).toHaveAttribute("data-following", "false");
    await screenshot(page, "result-finished");
    resultPath = new URL(page.url()).pathname;
    await noSeriousA11yViolations(page, "result");
    const download = page.waitForEvent("download");
    await page.getByRole("button", { name: /Download model/ }).click();
    expect((await download).suggestedFilename()).toMatch(new RegExp(`^net-${tag}-\\d+\\.`));
    await (await download).saveAs(modelFile);
    const onnx = page.waitForEvent("download", { timeout: 180_000 });
    await page.getByRole("button", { name: "Download as ONNX" }).click();
    expect((await onnx).suggestedFilename()).toMatch(/\.onnx$/);
  });

  await test.step("the downloaded model file imported as a finished result", async () => {
    await page.getByRole("navigation").getByRole("link", { name: "Models" }).click();
    await page.getByRole("link", { name: "New model" }).click();
    // A PyTorch file holds weights: the editors' code builds the module they load into.
    await page.getByRole("button", { name: "Use the PyTorch template" }).click();
    await page.getByLabel("Imported model name").fill(`imported-${tag}`);
    await page.getByRole("combobox", { name: "Framework", exact: true }).click();
    await page.getByRole("option", { name: "PyTorch" }).click();
    await expect(page.getByRole("combobox", { name: "File format" })).toHaveValue("pytorch");
    await page.getByLabel("Model file").setInputFiles(modelFile);
    await screenshot(page, "import-form");
    await page.getByRole("button", { name: "Import", exact: true }).click();
    await expect(page.getByRole("heading", { name: new RegExp(`^Result \\d+ · imported-${tag}$`) })).toBeVisible({ timeout: 120_000 });
    await expect(page.getByTestId("status")).toHaveAttribute("data-status", "finished");
    await expect(page.getByRole("link", { name: "Deploy for inference" })).toBeVisible();
    await expect(page.getByText("no training job ran")).toBeVisible();
    await screenshot(page, "imported-result");
  });

  let replayedResultId = 0;
  await test.step("the datasource replayed into a second deployment: its log followed live, its results compared", async () => {
    await page.getByRole("navigation").getByRole("link", { name: "Configurations" }).click();
    await page.getByRole("row", { name: new RegExp(`blobs-${tag}`) }).getByRole("link", { name: "Deploy", exact: true }).click();
    await page.getByLabel("Fit arguments (JSON)").fill('{"epochs": 3}');
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await expect(page.getByTestId("sink-snippet")).toContainText("deployment_id=", { timeout: 120_000 }); // a busy machine
    const second = Number(/deployment_id=(\d+)/.exec((await page.getByTestId("sink-snippet").textContent()) ?? "")?.[1]);
    expect(second).toBeGreaterThan(deploymentId);
    // A second tab watches the new result while this one replays the first stream into it.
    const watcher = await page.context().newPage();
    await watcher.goto(`/deployments?deployment=${second}`);
    await watcher.getByRole("link", { name: /^Result \d+$/ }).first().click();
    replayedResultId = Number(/\/results\/(\d+)/.exec(watcher.url())?.[1]);
    const log = watcher.getByTestId("job-log-panel");
    await expect(watcher.getByTestId("status")).toHaveAttribute("data-status", "running", { timeout: 120_000 });
    await expect(log).toHaveAttribute("data-following", "true");
    await expect(log).toContainText("Job log (running, following)");
    await expect(watcher.getByTestId("job-log")).toContainText("waiting for the control message", { timeout: 60_000 });
    await screenshot(watcher, "result-waiting-log-following");

    await page.getByRole("navigation").getByRole("link", { name: "Datasources" }).click();
    await page.getByRole("row", { name: new RegExp(`kafkaml-data-${deploymentId}:`) }).getByRole("button", { name: "Replay" }).click();
    await page.getByRole("textbox", { name: "Target deployment ID" }).fill(String(second));
    await screenshot(page, "datasource-replay");
    await noSeriousA11yViolations(page, "replay dialog");
    await page.getByRole("dialog").getByRole("button", { name: "Replay" }).click();
    await expect(page.getByText(`announced to deployment ${second}`)).toBeVisible();

    // The replayed stream trains it: epochs appear in the log without a reload, then it is final.
    await expect(watcher.getByTestId("job-log")).toContainText("epoch 1:", { timeout: 180_000 });
    await screenshot(watcher, "result-log-followed");
    await expect(watcher.getByTestId("status")).toHaveAttribute("data-status", "finished", { timeout: 240_000 });
    await expect(log).toContainText("Job log (finished)");
    await expect(log).toHaveAttribute("data-following", "false");
    await expect(watcher.getByTestId("job-log")).toContainText("training finished");
    const comparison = watcher.getByTestId("comparison");
    await expect(comparison).toHaveAttribute("data-results", "2");
    await expect(watcher.getByTestId("chart-comparison")).toBeVisible();
    await comparison.scrollIntoViewIfNeeded();
    await screenshot(watcher, "results-compared");
    await noSeriousA11yViolations(watcher, "result compared");
    await watcher.close();
  });

  let inferencePath = "";
  let inputTopic = "";
  await test.step("an inference pre-filled from the datasource", async () => {
    await page.goto(resultPath);
    await page.getByRole("link", { name: "Deploy for inference" }).click();
    await expect(page.getByLabel("Input configuration (JSON)")).toHaveValue(/"data_reshape": "4"/);
    await noSeriousA11yViolations(page, "inference form");
    await screenshot(page, "inference-form");
    inputTopic = await page.getByLabel("Input topic").inputValue();
    // The delivery choice: exactly-once by default; at-least-once for kafka-python consumers.
    await expect(page.getByText(/One Kafka transaction per micro-batch/)).toBeVisible();
    await page.getByText("At least once", { exact: true }).click();
    await expect(page.getByText(/can't skip transaction markers/)).toBeVisible();
    await screenshot(page, "inference-form-delivery");
    await page.getByRole("button", { name: "Deploy inference" }).click();
    await expect(page.getByRole("heading", { name: /^Inference \d+$/ })).toBeVisible();
    inferencePath = new URL(page.url()).pathname;
    await expect(page.getByTestId("delivery")).toContainText("at-least-once");
    // `running` once its replica is up (the local runner supervises it); predictions arriving on
    // the visualization page are the proof that it answers.
    await expect(page.getByTestId("status")).toHaveAttribute("data-status", "running", { timeout: 120_000 });
    await expect(page.getByTestId("replicas")).toContainText("1/1 ready");
    await screenshot(page, "inference-running");
    await noSeriousA11yViolations(page, "inference");
  });

  await test.step("predictions arrive on the visualization page, in both modes", async () => {
    await page.getByRole("link", { name: "Live visualization" }).click();
    const config = page.getByLabel("Visualization configuration (JSON)");
    await expect(config).toHaveValue(/"Class 2"/);
    await page.getByRole("button", { name: "Save configuration" }).click();
    await page.getByRole("button", { name: "Connect" }).click();
    const producer = spawn(env("KAFKAML_UI_PYTHON"), [env("KAFKAML_UI_DATA_SCRIPT"), "predict", bootstrap, inputTopic, "120"], { stdio: "ignore" });
    try {
      await expect.poll(async () => Number(await page.getByTestId("live-stats").getAttribute("data-total")), { timeout: 180_000 }).toBeGreaterThan(0);
      await expect(page.getByTestId("current-class")).not.toHaveAttribute("data-class", "");
      await screenshot(page, "visualization-classification");
      await noSeriousA11yViolations(page, "visualization");
      const regression = JSON.parse(await config.inputValue());
      await config.fill(JSON.stringify({ ...regression, type: "regression" }, null, 2));
      await page.getByRole("button", { name: "Save configuration" }).click();
      await expect(page.getByTestId("chart-regression outputs")).toBeVisible();
      await expect.poll(async () => Number(await page.getByTestId("live-stats").getAttribute("data-updates")), { timeout: 60_000 }).toBeGreaterThan(2);
      await screenshot(page, "visualization-regression");
    } finally {
      producer.kill();
    }
  });

  await test.step("hot swap, scale and stop the inference", async () => {
    await page.goto(inferencePath);
    const version = (await page.getByTestId("model-version").textContent()) ?? "";
    await page.getByRole("combobox", { name: "Swap the model for" }).click();
    await page.getByRole("option", { name: new RegExp(`^result ${replayedResultId} · `) }).click();
    await page.getByRole("button", { name: "Swap" }).click();
    await expect(page.getByTestId("model-version")).toHaveText(new RegExp(`^${replayedResultId}\\.`));
    expect(await page.getByTestId("model-version").textContent()).not.toBe(version);
    await expect(page.getByRole("link", { name: String(replayedResultId), exact: true })).toBeVisible();
    await expect(page.getByTestId("status")).toHaveAttribute("data-status", "running");
    await expect(page.getByTestId("replicas")).toContainText("1/1 ready", { timeout: 120_000 });
    // The replica itself reports the swap (it reloads without a restart).
    await expect(page.getByLabel("Replica logs")).toContainText(new RegExp(`model version ${replayedResultId}\\.\\d+ loaded`), { timeout: 120_000 });
    await expect(page.getByRole("combobox", { name: "Swap the model for" })).toHaveValue("");
    await screenshot(page, "inference-swapped");
    // Out of range: the field keeps it and shows the API's error there.
    await page.getByLabel("Replicas").fill("0");
    await page.getByRole("button", { name: "Scale" }).click();
    await expect(page.getByText("Ensure this value is greater than or equal to 1.")).toBeVisible();
    await expect(page.getByLabel("Replicas")).toHaveValue("0");
    await page.getByLabel("Replicas").fill("2");
    await page.getByRole("button", { name: "Scale" }).click();
    await expect(page.getByTestId("replicas")).toContainText("2");
    await screenshot(page, "inference-scaled");
    await page.getByRole("button", { name: "Stop" }).click();
    await expect(page.getByTestId("status")).toHaveAttribute("data-status", "stopped", { timeout: 60_000 });
    await screenshot(page, "inference-stopped");
  });

  await test.step("a federated worker registered (its credential shown once), then revoked", async () => {
    await page.getByRole("navigation").getByRole("link", { name: "Federated workers" }).click();
    await expect(page.getByTestId("empty-state")).toBeVisible();
    await page.getByRole("button", { name: "Register worker" }).click();
    await page.getByRole("button", { name: "Register", exact: true }).click();
    await expect(page.getByText("Required: one sample's shape, like 28 28.")).toBeVisible();
    await page.getByLabel(/^Name/).fill("hospital-a");
    await page.getByLabel("Dataset name").fill("blobs");
    await page.getByLabel("Input shape").fill("4");
    await page.getByLabel("Training samples").fill("400");
    await expect(page.getByText("Required: one sample's shape, like 28 28.")).toBeHidden(); // edited, its error gone
    await noSeriousA11yViolations(page, "worker form");
    await screenshot(page, "worker-form");
    await page.getByRole("button", { name: "Register", exact: true }).click();
    await expect(page.getByTestId("worker-credential")).toContainText("kmlw.");
    await noSeriousA11yViolations(page, "worker credential");
    await screenshot(page, "worker-credential");
    await page.getByRole("button", { name: "I have copied it" }).click();
    await expect(page.getByRole("dialog")).toBeHidden(); // closed, not fading out under the scan
    const row = page.getByTestId("worker-hospital-a");
    await expect(row).toContainText("blobs [4] × 400");
    await expect(row).not.toContainText("kmlw.");
    await row.getByRole("button", { name: "Revoke" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
    await expect(row).toContainText("revoked");
    await expect(page.getByRole("dialog")).toBeHidden();
    await noSeriousA11yViolations(page, "workers");
    await screenshot(page, "workers-revoked");
  });

  await test.step("the other lists, then sign out", async () => {
    for (const [link, name] of [["Datasources", "datasources"], ["Inferences", "inferences"], ["Deployments", "deployments list"], ["Models", "models list"]] as const) {
      await page.getByRole("navigation").getByRole("link", { name: link }).click();
      await expect(page.getByRole("heading", { name: new RegExp(link) })).toBeVisible();
      await expect(page.getByRole("table").first()).toBeVisible();
      await noSeriousA11yViolations(page, name);
      await screenshot(page, name.replace(" ", "-"));
    }
    // An expired session: the next request is refused and the sign-in page says why.
    await page.context().clearCookies({ name: "sessionid" });
    await page.getByRole("navigation").getByRole("link", { name: "Configurations" }).click();
    await expect(page.getByText("Your session has expired. Sign in again to continue.")).toBeVisible();
    await screenshot(page, "session-expired");
    await page.getByLabel("User name").fill(env("KAFKAML_UI_USER"));
    await page.locator("input[type=password]").fill(env("KAFKAML_UI_PASSWORD"));
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("heading", { name: "Configurations" })).toBeVisible();
    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page.getByText("You are signed out.")).toBeVisible();
    await screenshot(page, "signed-out");
  });
});
