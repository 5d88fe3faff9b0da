import "@testing-library/jest-dom/vitest";
import { configure } from "@testing-library/react";

// A busy machine (CI, or seven engineers on two cores) renders slowly: wait for the page's state
// generously rather than fail on the library's 1 s default.
configure({ asyncUtilTimeout: 15_000 });
