import { describe, expect, it } from "vitest";
import { buildInferenceRequest, defaultInferenceForm, DELIVERY_OPTIONS } from "./inferenceForm";

describe("buildInferenceRequest", () => {
  it("defaults to exactly-once delivery and names the result's topics", () => {
    const { body, errors } = buildInferenceRequest(defaultInferenceForm(9), 9);
    expect(errors).toEqual({});
    expect(body).toMatchObject({ result_id: 9, replicas: 1, delivery: "exactly-once", input_topic: "kafkaml-in-9", output_topic: "kafkaml-out-9", input_config: {}, limit: null });
  });
  it("passes at-least-once through for consumers that cannot skip transaction markers", () => {
    const form = { ...defaultInferenceForm(1), delivery: "at-least-once" as const, limit: "0.8" };
    expect(buildInferenceRequest(form, 1).body).toMatchObject({ delivery: "at-least-once", limit: 0.8 });
  });
  it("offers both deliveries, each with a line of help", () => {
    expect(DELIVERY_OPTIONS.map((option) => option.value)).toEqual(["exactly-once", "at-least-once"]);
    expect(DELIVERY_OPTIONS.find((option) => option.value === "at-least-once")?.help).toMatch(/kafka-python/);
  });
  it("reports each bad field under the API's key", () => {
    const form = { ...defaultInferenceForm(1), replicas: 0, input_config: "[1]", output_topic: " ", limit: "x", delivery: "twice" as never };
    const { body, errors } = buildInferenceRequest(form, 1);
    expect(body).toBeUndefined();
    expect(Object.keys(errors).sort()).toEqual(["delivery", "input_config", "limit", "output_topic", "replicas"]);
  });
});
