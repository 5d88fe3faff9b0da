import { Anchor, Button, Code, Group, Input, NumberInput, Paper, ScrollArea, SegmentedControl, Select, SimpleGrid, Stack, Table, Text, TextInput, Textarea } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import { api, ApiError, unwrap, type FieldErrors, type Schemas } from "../api/client";
import { formatTime } from "../lib/format";
import { EmptyState, ErrorAlert, ListTable, PageHeader, StatusBadge } from "../components/common";
import { buildInferenceRequest, defaultInferenceForm, DELIVERY_OPTIONS, INPUT_FORMATS, type InferenceForm, type InferenceRequest } from "../lib/inferenceForm";

type Inference = Schemas["InferenceOutput"];

/** Ready of desired replicas, and the restarts of crashed replicas when there were any. */
function replicasText(inference: Inference): string {
  const restarts = inference.restarts ? ` · ${inference.restarts} restarts` : "";
  return `${inference.ready_replicas ?? 0}/${inference.replicas ?? 1} ready${restarts}`;
}

export function InferencesPage() {
  const inferences = useQuery({ queryKey: ["inferences"], queryFn: () => unwrap(api.GET("/api/inferences")), refetchInterval: 2000 });
  const list = inferences.data ?? [];
  return (
    <>
      <PageHeader title="Inferences" />
      <ErrorAlert error={inferences.error} />
      {inferences.isSuccess && list.length === 0 && (
        <EmptyState>
          No inferences yet. Open a finished result on the <Anchor component={Link} to="/deployments">Deployments</Anchor> page and choose “Deploy for inference”.
        </EmptyState>
      )}
      {list.length > 0 && (
        <ListTable columns={["ID", "Result", "Status", "Replicas", "Input → output", "Format", "Delivery", "Model version", "Created"]}>
          {list.map((inference) => (
            <Table.Tr key={inference.id}>
              <Table.Td>
                <Anchor component={Link} to={`/inferences/${inference.id}`}>
                  Inference {inference.id}
                </Anchor>
              </Table.Td>
              <Table.Td>
                <Anchor component={Link} to={`/results/${inference.result_id}`}>
                  {inference.result_id}
                </Anchor>
              </Table.Td>
              <Table.Td>
                <StatusBadge status={inference.status} />
              </Table.Td>
              <Table.Td>{replicasText(inference)}</Table.Td>
              <Table.Td>
                {inference.input_topic} → {inference.output_topic}
                {inference.upper_topic ? ` (upper ${inference.upper_topic}, limit ${inference.limit})` : ""}
              </Table.Td>
              <Table.Td>{inference.input_format}</Table.Td>
              <Table.Td>{inference.delivery ?? "exactly-once"}</Table.Td>
              <Table.Td>
                <Code>{inference.model_version.slice(0, 12)}</Code>
              </Table.Td>
              <Table.Td>{formatTime(inference.created_at)}</Table.Td>
            </Table.Tr>
          ))}
        </ListTable>
      )}
    </>
  );
}

export function InferenceCreatePage() {
  const [params] = useSearchParams();
  const resultId = Number(params.get("result"));
  const navigate = useNavigate();
  const client = useQueryClient();
  const defaults = useQuery({
    queryKey: ["results", resultId, "inference-defaults"],
    queryFn: () => unwrap(api.GET("/api/results/{id}/inference-defaults", { params: { path: { id: resultId } } })),
    enabled: resultId > 0,
  });
  const [form, setForm] = useState<InferenceForm>(() => defaultInferenceForm(resultId));
  const [localErrors, setLocalErrors] = useState<FieldErrors>({});
  useEffect(() => {
    if (!defaults.data) return;
    // Pre-filled from the datasource the result was trained on, as Kafka-ML does.
    setForm((current) => ({
      ...current,
      input_format: (defaults.data.input_format || "RAW") as Schemas["InputFormatEnum"],
      input_config: JSON.stringify(defaults.data.input_config, null, 2),
    }));
  }, [defaults.data]);
  const create = useMutation({
    mutationFn: (body: InferenceRequest) => unwrap(api.POST("/api/inferences", { body })),
    onSuccess: (inference) => {
      void client.invalidateQueries({ queryKey: ["inferences"] });
      navigate(`/inferences/${inference.id}`);
    },
  });
  const fields: FieldErrors = { ...(create.error instanceof ApiError ? create.error.fields : {}), ...localErrors };
  const set = (key: keyof InferenceForm, value: string | number) => setForm((current) => ({ ...current, [key]: value }));
  if (!resultId) return <EmptyState>Choose a finished result to deploy, from the Deployments page.</EmptyState>;
  return (
    <>
      <PageHeader title={`Deploy result ${resultId} for inference`} />
      <ErrorAlert error={defaults.error} title="No datasource to pre-fill from" />
      <ErrorAlert error={create.error} title="The inference was not created" />
      <form
        onSubmit={(event) => {
          event.preventDefault();
          const { body, errors } = buildInferenceRequest(form, resultId);
          setLocalErrors(errors);
          if (body) create.mutate(body);
        }}
      >
        <Stack maw={900}>
          <SimpleGrid cols={3}>
            <NumberInput label="Replicas" description="Consumers sharing the input topic’s partitions." min={1} max={100} value={form.replicas} onChange={(value) => set("replicas", value)} error={fields.replicas} />
            <TextInput label="Input topic" description="Samples to predict." value={form.input_topic} onChange={(e) => set("input_topic", e.currentTarget.value)} error={fields.input_topic} />
            <TextInput label="Output topic" description='One {"values": [...]} per input.' value={form.output_topic} onChange={(e) => set("output_topic", e.currentTarget.value)} error={fields.output_topic} />
          </SimpleGrid>
          <SimpleGrid cols={2}>
            <Select label="Input format" description="How input records are encoded." data={INPUT_FORMATS} allowDeselect={false} value={form.input_format} onChange={(value) => set("input_format", value ?? "RAW")} error={fields.input_format} />
            <Textarea label="Input configuration (JSON)" description="From the training datasource; edit for other producers." autosize minRows={3} value={form.input_config} onChange={(e) => set("input_config", e.currentTarget.value)} error={fields.input_config} styles={{ input: { fontFamily: "monospace" } }} />
          </SimpleGrid>
          <SimpleGrid cols={3}>
            <TextInput label="Input brokers" description="Empty: the platform’s Kafka." placeholder="host:port,host:port" value={form.input_bootstrap} onChange={(e) => set("input_bootstrap", e.currentTarget.value)} error={fields.input_bootstrap} />
            <TextInput label="Output brokers" description="Empty: the platform’s Kafka." placeholder="host:port" value={form.output_bootstrap} onChange={(e) => set("output_bootstrap", e.currentTarget.value)} error={fields.output_bootstrap} />
            <TextInput label="Upper brokers" description="Early exit: where the upper tier listens." value={form.upper_bootstrap} onChange={(e) => set("upper_bootstrap", e.currentTarget.value)} error={fields.upper_bootstrap} />
            <TextInput label="Upper topic" description="Early exit: forward unsure samples here." value={form.upper_topic} onChange={(e) => set("upper_topic", e.currentTarget.value)} error={fields.upper_topic} />
            <NumberInput label="Limit" description="Forward when the highest confidence is below it." decimalScale={4} value={form.limit} onChange={(value) => set("limit", value)} error={fields.limit} />
          </SimpleGrid>
          <Input.Wrapper label="Delivery" description={DELIVERY_OPTIONS.find((option) => option.value === form.delivery)?.help} error={fields.delivery}>
            <SegmentedControl fullWidth value={form.delivery} onChange={(value) => set("delivery", value)} data={DELIVERY_OPTIONS.map(({ value, label }) => ({ value, label }))} aria-label="Delivery" />
          </Input.Wrapper>
          <Group>
            <Button type="submit" loading={create.isPending}>
              Deploy inference
            </Button>
          </Group>
        </Stack>
      </form>
    </>
  );
}

export function InferenceDetailPage() {
  const pk = Number(useParams().id);
  const client = useQueryClient();
  const inference = useQuery({
    queryKey: ["inferences", pk],
    queryFn: () => unwrap(api.GET("/api/inferences/{id}", { params: { path: { id: pk } } })),
    refetchInterval: 1000,
  });
  const logs = useQuery({
    queryKey: ["inferences", pk, "logs"],
    queryFn: () => unwrap(api.GET("/api/inferences/{id}/logs", { params: { path: { id: pk } } })),
    refetchInterval: 3000,
  });
  const results = useQuery({ queryKey: ["results"], queryFn: () => unwrap(api.GET("/api/results")) });
  const [replicas, setReplicas] = useState<number | string>("");
  const [swapTo, setSwapTo] = useState<string | null>(null);
  const refresh = () => void client.invalidateQueries({ queryKey: ["inferences"] });
  const scale = useMutation({ mutationFn: () => unwrap(api.POST("/api/inferences/{id}/scale", { params: { path: { id: pk } }, body: { replicas: Number(replicas) } })), onSuccess: refresh });
  const swap = useMutation({ mutationFn: () => unwrap(api.POST("/api/inferences/{id}/swap", { params: { path: { id: pk } }, body: { result_id: Number(swapTo) } })),
    onSuccess: () => {
      setSwapTo(null); // now the served result: no longer a choice
      refresh();
    },
  });
  const stop = useMutation({ mutationFn: () => unwrap(api.POST("/api/inferences/{id}/stop", { params: { path: { id: pk } } })), onSuccess: refresh });
  const data = inference.data;
  const active = data && (data.status === "running" || data.status === "created");
  const finished = (results.data ?? []).filter((result) => result.status === "finished" && result.id !== data?.result_id);
  return (
    <>
      <PageHeader title={`Inference ${pk}`}>
        {data && <StatusBadge status={data.status} />}
        <Button component={Link} to={`/inferences/${pk}/visualization`} variant="default">
          Live visualization
        </Button>
        {active && (
          <Button color="red" variant="outline" loading={stop.isPending} onClick={() => stop.mutate()}>
            Stop
          </Button>
        )}
      </PageHeader>
      <ErrorAlert error={inference.error ?? (scale.error instanceof ApiError && scale.error.fields.replicas ? null : scale.error) ?? swap.error ?? stop.error} />
      {data && (
        <Stack>
          <Text size="sm">
            Result <Link to={`/results/${data.result_id}`}>{data.result_id}</Link> · replicas <span data-testid="replicas">{replicasText(data)}</span> · {data.input_topic} → {data.output_topic} · {data.input_format} · model version{" "}
            <Code data-testid="model-version">{data.model_version}</Code>
          </Text>
          <Text size="sm" data-testid="delivery">
            Delivery: {data.delivery ?? "exactly-once"} ({DELIVERY_OPTIONS.find((option) => option.value === (data.delivery ?? "exactly-once"))?.help})
          </Text>
          {data.error && <ErrorAlert error={data.error} title="The inference reported an error" />}
          {data.last_exit_reason && (
            <Text size="sm" c="dimmed" data-testid="last-exit">
              Last replica exit: {data.last_exit_reason}
            </Text>
          )}
          {active && (
            <Group align="flex-end">
              <NumberInput label="Replicas" min={1} max={100} value={replicas === "" ? (data.replicas ?? 1) : replicas} onChange={setReplicas} w={140} error={scale.error instanceof ApiError ? scale.error.fields.replicas : undefined} />
              <Button loading={scale.isPending} onClick={() => scale.mutate()}>
                Scale
              </Button>
              <Select label="Swap the model for" placeholder="a finished result" data={finished.map((result) => ({ value: String(result.id), label: `result ${result.id} · ${result.model_name}` }))} value={swapTo} onChange={setSwapTo} w={280} />
              <Button variant="default" disabled={!swapTo} loading={swap.isPending} onClick={() => swap.mutate()}>
                Swap
              </Button>
            </Group>
          )}
          <Paper withBorder p="md">
            <Text fw={600}>Replica logs{logs.data?.state ? ` (${logs.data.state})` : ""}</Text>
            <ScrollArea h={240} type="auto">
              <Code block tabIndex={0} aria-label="Replica logs">
                {(logs.data?.logs ?? "").split("\n").slice(-200).join("\n") || "No log yet."}
              </Code>
            </ScrollArea>
          </Paper>
        </Stack>
      )}
    </>
  );
}
