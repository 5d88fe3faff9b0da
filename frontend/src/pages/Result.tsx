import { Alert, Button, Code, Group, Paper, ScrollArea, SimpleGrid, Table, Text } from "@mantine/core";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useRef } from "react";
import { Link, useParams } from "react-router";
import { api, download, unwrap, type Schemas } from "../api/client";
import type { operations } from "../api/schema";
import { Chart, type ChartOption } from "../components/Chart";
import { formatTime } from "../lib/format";
import { ErrorAlert, PageHeader, StatusBadge } from "../components/common";
import { curve, epochsOf, lastValues, metricNames } from "../lib/metrics";

const LIVE = new Set(["created", "running"]);

/** What `GET /api/results/{id}/artifact?artifact_format=` serves: as trained, or converted to ONNX. */
type ArtifactFormat = NonNullable<NonNullable<operations["results_artifact"]["parameters"]["query"]>["artifact_format"]>;

export default function ResultPage() {
  const pk = Number(useParams().id);
  const client = useQueryClient();
  const result = useQuery({
    queryKey: ["results", pk],
    queryFn: () => unwrap(api.GET("/api/results/{id}", { params: { path: { id: pk } } })),
    refetchInterval: (query) => (LIVE.has(query.state.data?.status ?? "created") ? 1000 : false),
  });
  const live = LIVE.has(result.data?.status ?? "created");
  const logs = useQuery({
    queryKey: ["results", pk, "logs", result.data?.status],
    queryFn: () => unwrap(api.GET("/api/results/{id}/logs", { params: { path: { id: pk } } })),
    refetchInterval: live ? 2000 : false,
    placeholderData: keepPreviousData, // the status changed: keep the lines shown until the last ones come
  });
  // The comparison chart: every result of this result's configuration, whichever deployment.
  const deployments = useQuery({ queryKey: ["deployments"], queryFn: () => unwrap(api.GET("/api/deployments")), enabled: typeof result.data?.deployment_id === "number" });
  const configurationId = deployments.data?.find((deployment) => deployment.id === result.data?.deployment_id)?.configuration_id;
  const siblings = useQuery({
    queryKey: ["results"],
    queryFn: () => unwrap(api.GET("/api/results")),
    enabled: configurationId !== undefined,
    refetchInterval: live ? 2000 : false,
  });
  const stop = useMutation({
    mutationFn: () => unwrap(api.POST("/api/results/{id}/stop", { params: { path: { id: pk } } })),
    onSettled: () => void client.invalidateQueries({ queryKey: ["results", pk] }),
  });
  const fetchModel = useMutation({
    mutationFn: (format: ArtifactFormat) => download(`/api/results/${pk}/artifact?artifact_format=${format}`, format === "onnx" ? `result-${pk}.onnx` : `result-${pk}`),
  });
  const data = result.data;
  const epochs = epochsOf(data?.epochs);
  const names = metricNames(epochs);
  const sameConfiguration = new Set((deployments.data ?? []).filter((deployment) => deployment.configuration_id === configurationId).map((deployment) => deployment.id));
  // This result's own copy is the freshest (it is polled until final; the list may lag an epoch).
  const others = (siblings.data ?? [])
    .map((other) => (other.id === data?.id ? data : other))
    .filter((other) => other.deployment_id !== null && sameConfiguration.has(other.deployment_id) && epochsOf(other.epochs).length > 0);

  return (
    <>
      <PageHeader title={`Result ${pk}${data ? ` · ${data.model_name}` : ""}`}>
        {data && <StatusBadge status={data.status} />}
        {live && (
          <Button color="red" variant="outline" onClick={() => stop.mutate()} loading={stop.isPending}>
            Stop
          </Button>
        )}
        {data?.has_artifact && (
          <>
            <Button variant="default" onClick={() => fetchModel.mutate("native")} loading={fetchModel.isPending && fetchModel.variables === "native"}>
              Download model ({data.artifact_format || "native"})
            </Button>
            <Button variant="default" onClick={() => fetchModel.mutate("onnx")} loading={fetchModel.isPending && fetchModel.variables === "onnx"} title="Converted on the first request, then kept.">
              Download as ONNX
            </Button>
          </>
        )}
        {data?.status === "finished" && (
          <Button component={Link} to={`/inferences/new?result=${pk}`}>
            Deploy for inference
          </Button>
        )}
      </PageHeader>
      <ErrorAlert error={result.error ?? stop.error ?? fetchModel.error} />
      {data?.status === "failed" && (
        <Alert color="red" title="Training failed" mb="md" data-testid="failure-reason">
          <Text style={{ whiteSpace: "pre-wrap" }}>{data.error || "No reason was recorded."}</Text>
        </Alert>
      )}
      {data && (
        <Text size="sm" mb="md">
          Created {formatTime(data.created_at)} · started {formatTime(data.started_at)} · finished {formatTime(data.finished_at)}
          {typeof data.training_time_s === "number" && ` · training time ${data.training_time_s.toFixed(1)} s`}
          {data.deployment_id !== null && (
            <>
              {" "}· deployment <Link to={`/deployments?deployment=${data.deployment_id}`}>{data.deployment_id}</Link>
            </>
          )}
        </Text>
      )}
      {data && epochs.length === 0 && live && <Alert color="blue" mb="md">Waiting for the first epoch. The job starts training when its data stream is announced.</Alert>}
      <SimpleGrid cols={{ base: 1, lg: 2 }} mb="md">
        {names.map((name) => (
          <Paper withBorder p="xs" key={name}>
            <Chart label={`curve ${name}`} height={260} option={curveOption(name, epochs)} />
          </Paper>
        ))}
      </SimpleGrid>
      {data && <TestMetrics result={data} />}
      {data && Array.isArray(data.confusion_matrix) && (
        <Paper withBorder p="xs" mb="md">
          <Chart label="confusion matrix" height={360} option={confusionOption(data.confusion_matrix as number[][])} />
        </Paper>
      )}
      {others.length > 1 && names.length > 0 && <Compare results={others} metric={names.includes("accuracy") ? "accuracy" : names[0]!} configurationId={configurationId!} />}
      {data?.deployment_id === null ? (
        <Text size="sm" c="dimmed">
          Imported from a trained model file: no training job ran, so there is no job log.
        </Text>
      ) : (
        <Logs text={logs.data?.logs ?? ""} status={data?.status} follow={live} />
      )}
      {data && (
        <Group mt="md">
          <Button variant="subtle" onClick={() => saveJson(`result-${pk}-metrics.json`, { epochs: data.epochs, train: data.train_metrics, validation: data.validation_metrics, test: data.test_metrics, confusion_matrix: data.confusion_matrix, training_time_s: data.training_time_s })}>
            Download the metrics as JSON
          </Button>
        </Group>
      )}
    </>
  );
}

function curveOption(metric: string, epochs: ReturnType<typeof epochsOf>): ChartOption {
  return {
    title: { text: metric, left: "center", textStyle: { fontSize: 14 } },
    tooltip: { trigger: "axis" },
    legend: { bottom: 0 },
    grid: { left: 50, right: 20, top: 40, bottom: 50 },
    xAxis: { type: "value", name: "epoch", minInterval: 1 },
    yAxis: { type: "value", scale: true },
    series: [
      { name: "train", type: "line", data: curve(epochs, metric, "train"), showSymbol: true },
      { name: "validation", type: "line", data: curve(epochs, metric, "validation"), showSymbol: true },
    ],
  };
}

function confusionOption(matrix: number[][]): ChartOption {
  const labels = matrix.map((_, index) => String(index));
  const cells = matrix.flatMap((row, actual) => row.map((count, predicted) => [predicted, actual, count]));
  const max = Math.max(1, ...cells.map((cell) => cell[2]!));
  return {
    title: { text: "Confusion matrix (test split)", left: "center", textStyle: { fontSize: 14 } },
    tooltip: { position: "top" },
    grid: { left: 70, right: 20, top: 40, bottom: 80 },
    xAxis: { type: "category", data: labels, name: "predicted", nameLocation: "middle", nameGap: 28 },
    yAxis: { type: "category", data: labels, name: "actual", nameLocation: "middle", nameGap: 40, inverse: true },
    visualMap: { min: 0, max, calculable: true, orient: "horizontal", left: "center", bottom: 0 },
    series: [{ type: "heatmap", data: cells, label: { show: true } }],
  };
}

function TestMetrics({ result }: { result: Schemas["ResultOutput"] }) {
  const test = lastValues(result.test_metrics);
  const train = new Map(lastValues(result.train_metrics));
  const validation = new Map(lastValues(result.validation_metrics));
  const names = [...new Set([...train.keys(), ...validation.keys(), ...test.map(([name]) => name)])];
  if (names.length === 0) return null;
  const testMap = new Map(test);
  const show = (value: number | undefined) => (value === undefined ? "—" : value.toFixed(4));
  return (
    <Paper withBorder p="md" mb="md">
      <Text fw={600}>Metrics (last epoch and test split)</Text>
      <Table data-testid="metrics-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Metric</Table.Th>
            <Table.Th>Train</Table.Th>
            <Table.Th>Validation</Table.Th>
            <Table.Th>Test</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {names.map((name) => (
            <Table.Tr key={name}>
              <Table.Td>{name}</Table.Td>
              <Table.Td>{show(train.get(name))}</Table.Td>
              <Table.Td>{show(validation.get(name))}</Table.Td>
              <Table.Td>{show(testMap.get(name))}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Paper>
  );
}

/** Every result of one configuration on one chart: validation (or train) curves side by side. */
function Compare({ results, metric, configurationId }: { results: Schemas["ResultOutput"][]; metric: string; configurationId: number }) {
  const option = useMemo<ChartOption>(
    () => ({
      title: { text: `${metric}: the results of configuration ${configurationId} compared`, left: "center", textStyle: { fontSize: 14 } },
      tooltip: { trigger: "axis" },
      legend: { bottom: 0 },
      grid: { left: 50, right: 20, top: 40, bottom: 50 },
      xAxis: { type: "value", name: "epoch", minInterval: 1 },
      yAxis: { type: "value", scale: true },
      series: results.map((other) => {
        const epochs = epochsOf(other.epochs);
        const validation = curve(epochs, metric, "validation");
        return { name: `${other.model_name} (result ${other.id})`, type: "line", data: validation.length > 0 ? validation : curve(epochs, metric, "train") };
      }),
    }),
    [results, metric, configurationId],
  );
  return (
    <Paper withBorder p="xs" mb="md" data-testid="comparison" data-results={results.length}>
      <Chart label="comparison" option={option} />
    </Paper>
  );
}

/**
 * The job's log tail, titled with the result's status (the runner's own state lags behind it),
 * polled for new lines while the result is live and no longer once it is final.
 */
function Logs({ text, status, follow }: { text: string; status: string | undefined; follow: boolean }) {
  const viewport = useRef<HTMLDivElement>(null);
  const tail = text.split("\n").slice(-200).join("\n");
  // New lines scroll into view, the last ones too (those that came with the final status).
  useEffect(() => {
    if (viewport.current) viewport.current.scrollTop = viewport.current.scrollHeight;
  }, [tail]);
  return (
    <Paper withBorder p="md" data-testid="job-log-panel" data-following={follow}>
      <Text fw={600}>
        Job log{status ? ` (${status}${follow ? ", following" : ""})` : ""}
      </Text>
      <ScrollArea h={240} viewportRef={viewport} type="auto">
        <Code block data-testid="job-log" tabIndex={0} aria-label="Job log">
          {tail || "No log yet."}
        </Code>
      </ScrollArea>
    </Paper>
  );
}

function saveJson(name: string, value: unknown) {
  const url = URL.createObjectURL(new Blob([JSON.stringify(value, null, 2)], { type: "application/json" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  URL.revokeObjectURL(url);
}
