import { describe, expect, it } from "vitest";
import { buildDeployRequest, DEFAULT_FORM, federatedWorkerSnippet, parseJsonObject, rawSinkSnippet } from "./deployForm";

describe("parseJsonObject", () => {
  it("accepts an object and an empty text", () => {
    expect(parseJsonObject('{"epochs": 3}').value).toEqual({ epochs: 3 });
    expect(parseJsonObject("  ").value).toEqual({});
  });
  it("refuses text that is not JSON, and JSON that is not an object", () => {
    expect(parseJsonObject("{epochs: 3}").error).toMatch(/Not valid JSON/);
    expect(parseJsonObject("[1, 2]").error).toMatch(/JSON object/);
    expect(parseJsonObject("5").error).toMatch(/JSON object/);
  });
});

describe("buildDeployRequest", () => {
  it("builds a classic request with parsed arguments and no mode options", () => {
    const { body, errors } = buildDeployRequest(DEFAULT_FORM, 7);
    expect(errors).toEqual({});
    expect(body).toMatchObject({ configuration_id: 7, mode: "classic", batch_size: 32, fit_kwargs: { epochs: 5 }, eval_kwargs: {} });
    expect(body?.incremental).toBeUndefined();
  });
  it("reports each bad field under the API's key", () => {
    const { body, errors } = buildDeployRequest({ ...DEFAULT_FORM, batch_size: 0, fit_kwargs: "{", gpus: 1.5 }, 1);
    expect(body).toBeUndefined();
    expect(Object.keys(errors).sort()).toEqual(["batch_size", "fit_kwargs", "gpus"]);
  });
  it("requires a monitoring metric for indefinite incremental training", () => {
    const form = { ...DEFAULT_FORM, mode: "incremental" as const, incremental: { ...DEFAULT_FORM.incremental, indefinite: true } };
    expect(buildDeployRequest(form, 1).errors["incremental.monitoring_metric"]).toBeTruthy();
    const fixed = { ...form, incremental: { ...form.incremental, monitoring_metric: "val_loss" } };
    expect(buildDeployRequest(fixed, 1).body?.incremental).toMatchObject({ indefinite: true, monitoring_metric: "val_loss" });
  });
  it("keeps semi-supervised confidence within 0..1 and splits distributed metrics", () => {
    const semi = { ...DEFAULT_FORM, mode: "semi-supervised" as const, semi_supervised: { rounds: 3, confidence: 1.5 } };
    expect(buildDeployRequest(semi, 1).errors["semi_supervised.confidence"]).toMatch(/between 0 and 1/);
    const distributed = { ...DEFAULT_FORM, mode: "distributed" as const, distributed: { ...DEFAULT_FORM.distributed, metrics: "accuracy, mae ," } };
    expect(buildDeployRequest(distributed, 1).body?.distributed?.metrics).toEqual(["accuracy", "mae"]);
  });
  it("checks the federated data restrictions as a JSON object", () => {
    const form = { ...DEFAULT_FORM, mode: "federated" as const, federated: { ...DEFAULT_FORM.federated, data_restrictions: "[]" } };
    expect(buildDeployRequest(form, 1).errors["federated.data_restrictions"]).toBeTruthy();
  });
  it("sends every federated option with the API's defaults, mu only for FedProx, the server's rate for FedAdam", () => {
    const form = { ...DEFAULT_FORM, mode: "federated" as const };
    expect(buildDeployRequest(form, 1).body?.federated).toEqual({
      rounds: 15, local_epochs: 1, min_clients: 1, min_data: 1, data_restrictions: {}, round_timeout_s: 300, strategy: "fedavg", server_learning_rate: 0.01,
    });
    const prox = { ...form, federated: { ...form.federated, strategy: "fedprox" as const, mu: 0.1, data_restrictions: '{"region": "eu"}' } };
    expect(buildDeployRequest(prox, 1).body?.federated).toMatchObject({ strategy: "fedprox", mu: 0.1, data_restrictions: { region: "eu" } });
    const proxDefault = { ...prox, federated: { ...prox.federated, mu: "" } };
    expect(buildDeployRequest(proxDefault, 1).body?.federated).not.toHaveProperty("mu");
    const avgWithMu = { ...form, federated: { ...form.federated, mu: 0.5 } };
    expect(buildDeployRequest(avgWithMu, 1).body?.federated).not.toHaveProperty("mu");
    const adam = { ...form, federated: { ...form.federated, strategy: "fedadam" as const, server_learning_rate: 0.05 } };
    expect(buildDeployRequest(adam, 1).body?.federated).toMatchObject({ strategy: "fedadam", server_learning_rate: 0.05 });
    const adamOff = { ...adam, federated: { ...adam.federated, server_learning_rate: 500 } };
    expect(buildDeployRequest(adamOff, 1).errors["federated.server_learning_rate"]).toBeDefined();
  });
  it("reports each bad federated option under the API's key", () => {
    const form = {
      ...DEFAULT_FORM,
      mode: "federated" as const,
      federated: { ...DEFAULT_FORM.federated, rounds: 0, local_epochs: 1.5, min_clients: "", min_data: -1, round_timeout_s: 0.5, strategy: "fedprox" as const, mu: -0.1 },
    };
    const { body, errors } = buildDeployRequest(form, 1);
    expect(body).toBeUndefined();
    expect(Object.keys(errors).sort()).toEqual([
      "federated.local_epochs", "federated.min_clients", "federated.min_data", "federated.mu", "federated.round_timeout_s", "federated.rounds",
    ]);
    expect(errors["federated.round_timeout_s"]).toMatch(/between 1 and 86400/);
    expect(errors["federated.mu"]).toMatch(/at least 0/);
  });
});

describe("rawSinkSnippet", () => {
  it("names the deployment and reshapes to the model's input without the batch axis", () => {
    const snippet = rawSinkSnippet({ deploymentId: 42, bootstrap: "127.0.0.1:9092", inputShape: [null, 28, 28] });
    expect(snippet).toContain("deployment_id=42");
    expect(snippet).toContain('data_reshape="28 28"');
    expect(snippet).toContain('"127.0.0.1:9092"');
  });
});

describe("federatedWorkerSnippet", () => {
  it("names the deployment, the broker and the framework for the worker", () => {
    const snippet = federatedWorkerSnippet({ deploymentId: 7, bootstrap: "10.0.0.1:9092", framework: "pytorch", controlTopic: "ctl" });
    expect(snippet).toContain("KAFKAML_FEDERATED_DEPLOYMENT_ID=7");
    expect(snippet).toContain("KAFKAML_KAFKA_BOOTSTRAP_SERVERS=10.0.0.1:9092");
    expect(snippet).toContain("KAFKAML_WORKER_FRAMEWORK=pytorch");
    expect(snippet).toContain("KAFKAML_DATASET_CONTROL_TOPIC=ctl");
    expect(snippet.trimEnd().endsWith("kafkaml federated-worker")).toBe(true);
    expect(federatedWorkerSnippet({ deploymentId: 7, bootstrap: "b:1" })).not.toContain("WORKER_FRAMEWORK");
  });
});
