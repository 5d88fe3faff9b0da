import { BarChart, HeatmapChart, LineChart } from "echarts/charts";
import { DatasetComponent, GridComponent, LegendComponent, TitleComponent, TooltipComponent, VisualMapComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import { useEffect, useRef } from "react";

// Only the chart kinds the UI draws are bundled (tree-shaken ECharts).
echarts.use([LineChart, BarChart, HeatmapChart, GridComponent, TooltipComponent, LegendComponent, TitleComponent, VisualMapComponent, DatasetComponent, CanvasRenderer]);

export type ChartOption = echarts.EChartsCoreOption;

/**
 * One ECharts canvas. Updates merge into the existing chart (no re-creation), so a live chart
 * redraws only what changed; `lazyUpdate` folds several updates into one frame.
 */
export function Chart({ option, height = 320, label }: { option: ChartOption; height?: number; label: string }) {
  const element = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  useEffect(() => {
    const instance = echarts.init(element.current!);
    chart.current = instance;
    // Frames drawn, for the browser benchmark (bench/web_ui.py): set on the element, no re-render.
    let frames = 0;
    instance.on("finished", () => element.current?.setAttribute("data-frames", String(++frames)));
    const resize = () => instance.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      instance.dispose();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    chart.current?.setOption({ animation: false, ...option }, { notMerge: false, lazyUpdate: true });
  }, [option]);
  return <div ref={element} role="img" aria-label={label} data-testid={`chart-${label}`} style={{ width: "100%", height }} />;
}
