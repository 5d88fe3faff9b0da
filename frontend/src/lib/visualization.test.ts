import { describe, expect, it } from "vitest";
import { applyUpdate, EMPTY_STATE, HISTORY, MAX_POINTS, parseVisualizationConfig, type LiveUpdate } from "./visualization";

const update = (classes: Record<string, number>, last_class: number, mean: number[] = []): LiveUpdate => ({
  count: Object.values(classes).reduce((a, b) => a + b, 0),
  skipped: 0,
  classes,
  last_class,
  last: [],
  mean,
});

describe("applyUpdate", () => {
  it("adds class counts across updates and shows the last class", () => {
    let state = applyUpdate(EMPTY_STATE, update({ "0": 3, "2": 1 }, 2), { average_updated: false, average_window: 10 });
    state = applyUpdate(state, update({ "1": 5 }, 1), { average_updated: false, average_window: 10 });
    expect(state.counts).toEqual([3, 5, 1]);
    expect(state.total).toBe(9);
    expect(state.current).toBe(1);
    expect(state.history).toEqual([2]);
  });

  it("with average_updated shows the most frequent class of the window, dropping older updates", () => {
    const config = { average_updated: true, average_window: 10 };
    let state = applyUpdate(EMPTY_STATE, update({ "0": 10 }, 0), config);
    expect(state.current).toBe(0);
    state = applyUpdate(state, update({ "1": 6 }, 1), config);
    expect(state.current).toBe(0); // 10 zeros still in the window of 10 + the newest update
    state = applyUpdate(state, update({ "1": 6 }, 0), config);
    expect(state.window.map((bucket) => bucket.count)).toEqual([6, 6]);
    expect(state.current).toBe(1);
  });

  it("keeps a bounded history and bounded regression series", () => {
    let state = EMPTY_STATE;
    for (let i = 0; i < MAX_POINTS + 50; i++) state = applyUpdate(state, update({ [String(i % 6)]: 1 }, i % 6, [i, -i]), { average_updated: false, average_window: 100 });
    expect(state.history.length).toBe(HISTORY);
    expect(state.series).toHaveLength(2);
    expect(state.series[0]).toHaveLength(MAX_POINTS);
    expect(state.series[1]!.at(-1)).toEqual([MAX_POINTS + 50, -(MAX_POINTS + 49)]);
  });
});

describe("parseVisualizationConfig", () => {
  const good = { type: "classification", average_updated: false, average_window: 10000, labels: [{ id: 0, color: "#fff100", label: "Zero" }] };
  it("accepts Kafka-ML's configuration", () => {
    expect(parseVisualizationConfig(JSON.stringify(good)).config).toEqual(good);
  });
  it("names what is wrong", () => {
    expect(parseVisualizationConfig("{").error).toMatch(/Not valid JSON/);
    expect(parseVisualizationConfig(JSON.stringify({ ...good, type: "pie" })).error).toMatch(/type/);
    expect(parseVisualizationConfig(JSON.stringify({ ...good, labels: [{ id: 0, color: "yellow", label: "Zero" }] })).error).toMatch(/color/);
    expect(parseVisualizationConfig(JSON.stringify({ ...good, labels: [good.labels[0], good.labels[0]] })).error).toMatch(/twice/);
    expect(parseVisualizationConfig(JSON.stringify({ ...good, average_window: 0 })).error).toMatch(/average_window/);
  });
});
