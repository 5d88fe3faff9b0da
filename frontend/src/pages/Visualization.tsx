import { Badge, Box, Button, Group, Paper, SimpleGrid, Stack, Text, Textarea } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useReducer, useState } from "react";
import { Link, useParams } from "react-router";
import { api, ApiError, unwrap } from "../api/client";
import { Chart, type ChartOption } from "../components/Chart";
import { ErrorAlert, PageHeader } from "../components/common";
import type { ModelSummary } from "../lib/models";
import { applyUpdate, EMPTY_STATE, labelFor, parseVisualizationConfig, type LiveState, type LiveUpdate, type VisualizationConfig } from "../lib/visualization";

const PALETTE = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#3949ab", "#c0ca33", "#d81b60"];

function defaultConfig(outputs: number): VisualizationConfig {
  return {
    type: "classification",
    average_updated: false,
    average_window: 10000,
    labels: Array.from({ length: outputs }, (_, id) => ({ id, color: PALETTE[id % PALETTE.length]!, label: `Class ${id}` })),
  };
}

type Action = { kind: "update"; update: LiveUpdate; config: VisualizationConfig } | { kind: "reset" };

function reducer(state: LiveState, action: Action): LiveState {
  return action.kind === "reset" ? EMPTY_STATE : applyUpdate(state, action.update, action.config);
}

export default function VisualizationPage() {
  const pk = Number(useParams().id);
  const client = useQueryClient();
  const inference = useQuery({ queryKey: ["inferences", pk], queryFn: () => unwrap(api.GET("/api/inferences/{id}", { params: { path: { id: pk } } })) });
  const stored = useQuery({ queryKey: ["inferences", pk, "visualization"], queryFn: () => unwrap(api.GET("/api/inferences/{id}/visualization", { params: { path: { id: pk } } })) });
  const resultId = inference.data?.result_id;
  const result = useQuery({ queryKey: ["results", resultId], queryFn: () => unwrap(api.GET("/api/results/{id}", { params: { path: { id: resultId! } } })), enabled: !!resultId });
  const model = useQuery({
    queryKey: ["models", result.data?.model_id],
    queryFn: () => unwrap(api.GET("/api/models/{id}", { params: { path: { id: result.data!.model_id } } })),
    enabled: !!result.data?.model_id,
  });
  const [text, setText] = useState<string | null>(null);
  const [config, setConfig] = useState<VisualizationConfig | null>(null);
  const [parseError, setParseError] = useState<string | undefined>();
  const [connected, setConnected] = useState(false);
  const [streamError, setStreamError] = useState<string | null>(null);
  /** The server reads the topic from its end: what is produced from now on is shown. */
  const [reading, setReading] = useState(false);
  const [state, dispatch] = useReducer(reducer, EMPTY_STATE);

  // The editor starts from the stored configuration, or one label per model output.
  useEffect(() => {
    if (text !== null || !stored.data) return;
    if (stored.data.labels.length > 0) {
      setText(JSON.stringify(stored.data, null, 2));
      setConfig(stored.data);
    } else if (model.data || model.isError || (result.data && !result.data.model_id)) {
      const shape = (model.data?.summary as ModelSummary | undefined)?.output_shape;
      const last = Array.isArray(shape) && typeof shape[shape.length - 1] === "number" ? (shape[shape.length - 1] as number) : 2;
      setText(JSON.stringify(defaultConfig(Math.min(last, 20)), null, 2));
    }
  }, [stored.data, model.data, model.isError, result.data, text]);

  const save = useMutation({
    mutationFn: () => {
      const parsed = parseVisualizationConfig(text ?? "");
      setParseError(parsed.error);
      if (!parsed.config) throw new ApiError(400, parsed.error ?? "Invalid configuration.");
      return unwrap(api.PUT("/api/inferences/{id}/visualization", { params: { path: { id: pk } }, body: parsed.config }));
    },
    onSuccess: (saved) => {
      setConfig(saved);
      dispatch({ kind: "reset" });
      client.setQueryData(["inferences", pk, "visualization"], saved);
    },
  });

  useEffect(() => {
    if (!connected || !config) return;
    const source = new EventSource(`/api/inferences/${pk}/visualization/stream`);
    source.addEventListener("update", (event) => dispatch({ kind: "update", update: JSON.parse((event as MessageEvent<string>).data) as LiveUpdate, config }));
    source.addEventListener("ready", () => {
      setStreamError(null);
      setReading(true);
    });
    source.onerror = () => setStreamError("The live stream was interrupted; reconnecting…");
    return () => {
      source.close();
      setReading(false);
    };
  }, [connected, config, pk]);

  return (
    <>
      <PageHeader title={`Live predictions of inference ${pk}`}>
        <Button component={Link} to={`/inferences/${pk}`} variant="default">
          Back to the inference
        </Button>
      </PageHeader>
      <ErrorAlert error={inference.error ?? stored.error} />
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Stack>
          <Text size="sm">
            Predictions from <b>{inference.data?.output_topic ?? "…"}</b>, aggregated by the server a few times a second. The configuration is Kafka-ML’s:{" "}
            <code>type</code> classification or regression, one <code>label</code> (id = output position, color, name) per output, <code>average_updated</code> and{" "}
            <code>average_window</code>.
          </Text>
          <Textarea
            label="Visualization configuration (JSON)"
            autosize
            minRows={8}
            maxRows={18}
            value={text ?? ""}
            onChange={(e) => setText(e.currentTarget.value)}
            error={parseError ?? (save.error instanceof ApiError ? Object.entries(save.error.fields).map(([k, v]) => `${k}: ${v}`).join("; ") || undefined : undefined)}
            styles={{ input: { fontFamily: "monospace", fontSize: 12 } }}
          />
          <Group>
            <Button loading={save.isPending} onClick={() => save.mutate()} variant="default">
              Save configuration
            </Button>
            <Button disabled={!config} onClick={() => setConnected((value) => !value)} color={connected ? "red" : "blue"}>
              {connected ? "Disconnect" : "Connect"}
            </Button>
            {!config && <Text size="sm">Save a configuration to connect.</Text>}
          </Group>
          {save.error && !parseError && <ErrorAlert error={save.error} />}
          {streamError && connected && <Text c="orange.9">{streamError}</Text>}
        </Stack>
        <Stack>{config && <LiveView config={config} state={state} connected={connected} reading={reading} />}</Stack>
      </SimpleGrid>
    </>
  );
}

function LiveView({ config, state, connected, reading }: { config: VisualizationConfig; state: LiveState; connected: boolean; reading: boolean }) {
  const current = labelFor(config, state.current);
  const option = useMemo<ChartOption>(() => {
    if (config.type === "classification") {
      const ids = [...new Set([...config.labels.map((label) => label.id), ...state.counts.map((_, index) => index)])].sort((a, b) => a - b);
      return {
        grid: { left: 60, right: 20, top: 30, bottom: 40 },
        tooltip: {},
        xAxis: { type: "category", data: ids.map((id) => labelFor(config, id).label) },
        yAxis: { type: "value", name: "predictions" },
        series: [{ type: "bar", data: ids.map((id) => ({ value: state.counts[id] ?? 0, itemStyle: { color: labelFor(config, id).color } })) }],
      };
    }
    const ids = config.labels.length > 0 ? config.labels.map((label) => label.id) : state.series.map((_, index) => index);
    return {
      grid: { left: 60, right: 20, top: 30, bottom: 50 },
      tooltip: { trigger: "axis" },
      legend: { bottom: 0 },
      xAxis: { type: "value", name: "update", min: "dataMin" },
      yAxis: { type: "value", scale: true },
      series: ids.map((id) => ({ name: labelFor(config, id).label, type: "line", showSymbol: false, color: labelFor(config, id).color, data: state.series[id] ?? [] })),
    };
  }, [config, state.counts, state.series]);
  return (
    <>
      <Text size="sm" data-testid="live-stats" data-total={state.total} data-updates={state.updates} data-reading={reading}>
        {connected ? "Connected" : "Not connected"} · {state.total.toLocaleString()} predictions in {state.updates} updates
        {state.skipped > 0 && ` · ${state.skipped} records were not predictions`}
      </Text>
      {config.type === "classification" && (
        <>
          <Paper p="lg" style={{ background: current.color }} data-testid="current-class" data-class={state.current ?? ""}>
            <Box bg="white" p="xs" style={{ borderRadius: 4, display: "inline-block" }}>
              <Text fw={700} size="xl" c="dark">
                {state.current === null ? "Waiting for predictions" : current.label}
              </Text>
            </Box>
            <Text size="xs" mt={4} c="dark" bg="white" style={{ display: "inline-block", marginLeft: 8, padding: "0 4px" }}>
              {config.average_updated ? `most frequent of the last ${config.average_window}` : "last prediction"}
            </Text>
          </Paper>
          <Group gap="xs" role="group" aria-label="Previous statuses">
            {state.history.map((id, index) => (
              <Badge key={index} variant="outline" color="dark" leftSection={<span style={{ display: "inline-block", width: 10, height: 10, background: labelFor(config, id).color }} />}>
                {labelFor(config, id).label}
              </Badge>
            ))}
          </Group>
        </>
      )}
      <Paper withBorder p="xs">
        <Chart label={config.type === "classification" ? "class frequencies" : "regression outputs"} option={option} height={300} />
      </Paper>
    </>
  );
}
