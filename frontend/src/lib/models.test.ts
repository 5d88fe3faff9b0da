import { describe, expect, it } from "vitest";
import { modelErrorText } from "./models";

describe("the model error text", () => {
  it("names the line once when the executor's message already ends with it", () => {
    expect(modelErrorText("Model code is invalid: syntax error: '(' was never closed (code, line 20)", 20, "code")).toBe(
      "Code, line 20: Model code is invalid: syntax error: '(' was never closed",
    );
  });
  it("puts the line in front of a message that does not name it", () => {
    expect(modelErrorText("No module named 'kears'", 1, "imports")).toBe("Imports, line 1: No module named 'kears'");
  });
  it("keeps a message without a line as it is", () => {
    expect(modelErrorText("The executor timed out.", null, "code")).toBe("The executor timed out.");
  });
});
