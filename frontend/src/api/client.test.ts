import { describe, expect, it } from "vitest";
import { csrfToken, flattenFieldErrors, isErrorBody, toApiError } from "./client";

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
  it("show the API's message for a throttled login (429) and a busy executor (503)", () => {
    const throttled = toApiError(429, { message: "Too many failed logins. Expected available in 60 seconds.", extra: { retry_after_s: 60 } });
    expect([throttled.status, throttled.message, throttled.extra.retry_after_s]).toEqual([429, "Too many failed logins. Expected available in 60 seconds.", 60]);
    const busy = toApiError(503, { message: "The model code executor is busy; try again.", extra: {} });
    expect(busy.message).toBe("The model code executor is busy; try again.");
    expect(toApiError(503, null).message).toMatch(/busy or unavailable/);
    expect(toApiError(429, "").message).toMatch(/Too many requests/);
  });
  it("recognise only the documented error body", () => {
    expect(isErrorBody({ message: "Not found.", extra: {} })).toBe(true);
    expect(isErrorBody({ message: 3, extra: {} })).toBe(false);
    expect(isErrorBody({ detail: "Not found." })).toBe(false);
    expect(isErrorBody({ message: "x", extra: [] })).toBe(false);
  });
  it("read the CSRF token from the cookie", () => {
    expect(csrfToken("a=1; csrftoken=abc%3D; b=2")).toBe("abc=");
    expect(csrfToken("a=1")).toBe("");
  });
});
