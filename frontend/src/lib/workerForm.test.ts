import { describe, expect, it } from "vitest";
import { buildWorkerRequest, emptyDataset, parseShape } from "./workerForm";

describe("parseShape", () => {
  it("reads spaces, commas and brackets", () => {
    expect(parseShape("28 28")).toEqual([28, 28]);
    expect(parseShape("[28, 28, 1]")).toEqual([28, 28, 1]);
    expect(parseShape("64")).toEqual([64]);
  });
  it("says what is wrong with a bad shape", () => {
    expect(parseShape(" ")).toMatch(/Required/);
    expect(parseShape("28 x")).toMatch(/Whole numbers/);
    expect(parseShape("0 3")).toMatch(/at least 1/);
  });
});

describe("buildWorkerRequest", () => {
  it("builds the API's body from the rows", () => {
    const row = { name: " ecg ", input_shape: "64", samples: "5000", dataset_restrictions: '{"signal": "ecg"}' };
    const { body, errors } = buildWorkerRequest(" hospital-a ", [row]);
    expect(errors).toEqual({});
    expect(body).toEqual({ name: "hospital-a", datasets: [{ name: "ecg", input_shape: [64], samples: 5000, dataset_restrictions: { signal: "ecg" } }] });
  });
  it("reports each bad field under the API's key", () => {
    const bad = { ...emptyDataset(), dataset_restrictions: "[1]" };
    const { body, errors } = buildWorkerRequest("", [bad]);
    expect(body).toBeUndefined();
    expect(Object.keys(errors).sort()).toEqual(["datasets.0.dataset_restrictions", "datasets.0.input_shape", "datasets.0.name", "datasets.0.samples", "name"]);
    expect(buildWorkerRequest("w", []).errors.datasets).toMatch(/at least one/);
  });
});
