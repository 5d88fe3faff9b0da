import { describe, expect, it } from "vitest";
import { csrfToken, flattenFieldErrors, toApiError } from "./client";

describe("the API's errors", () => {
  it("flatten nested field errors to the keys the forms show them at", () => {
    expect(flattenFieldErrors({ batch_size: ["too big"], incremental: { monitoring_metric: ["required for indefinite training"] }, labels: [{}, { color: ["bad"] }] })).toEqual({
      batch_size: "too big",
      "incremental.monitoring_metric": "required for indefinite training",
      "labels.1.color": "bad",
    });
  });
  it("keep the API's message and extra, or say the status when the body is not the API's", () => {
    const error = toApiError(400, { message: "Model code is invalid: boom", extra: { line: 3, field: "code" } });
    expect([error.message, error.line, error.status]).toEqual(["Model code is invalid: boom", 3, 400]);
    expect(toApiError(502, "<html>").message).toBe("The server answered 502.");
  });
  it("read the CSRF token from the cookie", () => {
    expect(csrfToken("a=1; csrftoken=abc%3D; b=2")).toBe("abc=");
    expect(csrfToken("a=1")).toBe("");
  });
});
