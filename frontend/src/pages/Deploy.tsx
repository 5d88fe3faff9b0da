import { Alert, Button, Checkbox, Code, CopyButton, Group, NumberInput, Paper, SegmentedControl, Select, SimpleGrid, Stack, Text, TextInput, Textarea, Input } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams } from "react-router";
import { api, ApiError, unwrap } from "../api/client";
import { ErrorAlert, PageHeader } from "../components/common";
import { buildDeployRequest, DEFAULT_FORM, federatedWorkerSnippet, rawSinkSnippet, type DeployForm, type Mode, type Strategy } from "../lib/deployForm";
import type { ModelSummary } from "../lib/models";

const MODES: { value: Mode; label: string; help: string }[] = [
  { value: "classic", label: "Classic", help: "Train once on the announced stream, then evaluate on its test split." },
  { value: "incremental", label: "Incremental", help: "Keep training on an open stream, window by window." },
  { value: "distributed", label: "Distributed", help: "Train an early-exit chain of models as one." },
  { value: "semi-supervised", label: "Semi-supervised", help: "Label the unlabeled stream with confident predictions, in rounds." },
  { value: "federated", label: "Federated", help: "Data owners train locally; only weights travel, aggregated per round." },
];

export function DeployPage() {
  const { id } = useParams();
  const configurationId = Number(id);
  const client = useQueryClient();
  const [form, setForm] = useState<DeployForm>(DEFAULT_FORM);
  const [localErrors, setLocalErrors] = useState<Record<string, string>>({});
  const configuration = useQuery({
    queryKey: ["configurations", configurationId],
    queryFn: () => unwrap(api.GET("/api/configurations/{id}", { params: { path: { id: configurationId } } })),
  });
  const models = useQuery({ queryKey: ["models"], queryFn: () => unwrap(api.GET("/api/models")) });
  const platform = useQuery({ queryKey: ["platform"], queryFn: () => unwrap(api.GET("/api/platform")), staleTime: Infinity });
  const deploy = useMutation({
    mutationFn: () => {
      const { body, errors } = buildDeployRequest(form, configurationId);
      setLocalErrors(errors);
      if (!body) throw new ApiError(400, "Some fields need attention.", { fields: {} });
      return unwrap(api.POST("/api/deployments", { body }));
    },
    onSuccess: () => void client.invalidateQueries({ queryKey: ["deployments"] }),
  });
  const apiErrors = deploy.error instanceof ApiError ? deploy.error.fields : {};
  const errors = { ...apiErrors, ...localErrors };
  const set = <K extends keyof DeployForm>(key: K, value: DeployForm[K]) => {
    setForm((current) => ({ ...current, [key]: value }));
    if (key === "mode") {
      // The last attempt's errors were about the other mode's fields, hidden now.
      deploy.reset();
      setLocalErrors({});
    } else {
      setLocalErrors((current) => Object.fromEntries(Object.entries(current).filter(([field]) => field !== key)));
    }
  };
  const setIn = <K extends "incremental" | "distributed" | "semi_supervised" | "federated">(key: K, patch: Partial<DeployForm[K]>) =>
    setForm((current) => ({ ...current, [key]: { ...current[key], ...patch } }));

  const configured = (models.data ?? []).filter((model) => configuration.data?.ml_model_ids.includes(model.id));
  const inputShape = (configured[0]?.summary as ModelSummary | undefined)?.input_shape;

  if (deploy.isSuccess) {
    const deployment = deploy.data;
    const bootstrap = platform.data?.kafka_bootstrap_servers ?? "127.0.0.1:9092";
    const federated = deployment.mode === "federated";
    const snippet = federated
      ? federatedWorkerSnippet({ deploymentId: deployment.id, bootstrap, controlTopic: platform.data?.control_topic, framework: configured[0]?.framework })
      : rawSinkSnippet({ deploymentId: deployment.id, bootstrap, controlTopic: platform.data?.control_topic, inputShape });
    return (
      <>
        <PageHeader title={federated ? `Deployment ${deployment.id} is waiting for its workers` : `Deployment ${deployment.id} is waiting for data`} />
        <Stack maw={900}>
          {federated ? (
            <Text>
              Its coordinator publishes the global model each round and waits for the data owners’ updates. Each data owner keeps its data and runs a worker for deployment <b>{deployment.id}</b>, for
              example:
            </Text>
          ) : (
            <Text>
              Its training {deployment.result_ids.length === 1 ? "job starts" : "jobs start"} as soon as a producer announces a stream for deployment <b>{deployment.id}</b>. Send your data with a sink, for
              example:
            </Text>
          )}
          <Paper withBorder p="sm" pos="relative">
            <Code block data-testid="sink-snippet">
              {snippet}
            </Code>
            <CopyButton value={snippet}>
              {({ copied, copy }) => (
                <Button size="xs" pos="absolute" top={8} right={8} variant="default" onClick={copy}>
                  {copied ? "Copied" : "Copy"}
                </Button>
              )}
            </CopyButton>
          </Paper>
          <Group>
            <Button component={Link} to={`/deployments?deployment=${deployment.id}`}>
              Watch its results
            </Button>
          </Group>
        </Stack>
      </>
    );
  }

  return (
    <>
      <PageHeader title={`Deploy ${configuration.data?.name ?? `configuration ${configurationId}`}`} />
      <ErrorAlert error={configuration.error} />
      {deploy.error && <ErrorAlert error={deploy.error} title="The deployment was not created" />}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          deploy.mutate();
        }}
      >
        <Stack maw={900}>
          <Text size="sm">Models: {configured.map((model) => `${model.name} (${model.framework})`).join(", ") || "—"}</Text>
          <Input.Wrapper label="Mode" description={MODES.find((mode) => mode.value === form.mode)?.help}>
            <SegmentedControl fullWidth value={form.mode} onChange={(value) => set("mode", value as Mode)} data={MODES.map(({ value, label }) => ({ value, label }))} />
          </Input.Wrapper>
          <TextInput label="Description" description="Shown in the deployment list." value={form.description} onChange={(e) => set("description", e.currentTarget.value)} error={errors.description} />
          <SimpleGrid cols={3}>
            <NumberInput label="Batch size" description="Samples per training step." min={1} value={form.batch_size} onChange={(value) => set("batch_size", value)} error={errors.batch_size} />
            <NumberInput label="GPUs" description="GPUs per training job (0: CPU)." min={0} max={16} value={form.gpus} onChange={(value) => set("gpus", value)} error={errors.gpus} />
            <Select
              label="Reader"
              description="native: confluent-kafka; tfio: tensorflow-io."
              data={["native", "tfio"]}
              value={form.reader}
              allowDeselect={false}
              onChange={(value) => set("reader", (value as DeployForm["reader"]) ?? "native")}
              error={errors.reader}
            />
          </SimpleGrid>
          <SimpleGrid cols={2}>
            <Textarea label="Fit arguments (JSON)" description='Keras fit / Ignite run arguments, e.g. {"epochs": 5, "shuffle": true}.' autosize minRows={2} value={form.fit_kwargs} onChange={(e) => set("fit_kwargs", e.currentTarget.value)} error={errors.fit_kwargs} styles={{ input: { fontFamily: "monospace" } }} />
            <Textarea label="Evaluation arguments (JSON)" description="Passed to evaluate on the test split." autosize minRows={2} value={form.eval_kwargs} onChange={(e) => set("eval_kwargs", e.currentTarget.value)} error={errors.eval_kwargs} styles={{ input: { fontFamily: "monospace" } }} />
          </SimpleGrid>
          <Select
            label="Target"
            description="label: learn the record's label; input: reproduce the input (autoencoders; classic or incremental)."
            data={["label", "input"]}
            value={form.target}
            allowDeselect={false}
            onChange={(value) => set("target", (value as DeployForm["target"]) ?? "label")}
            error={errors.target}
          />
          <Checkbox label="Build a confusion matrix on the test split" checked={form.confusion_matrix} onChange={(e) => set("confusion_matrix", e.currentTarget.checked)} />
          {form.mode === "incremental" && (
            <Paper withBorder p="md">
              <SimpleGrid cols={3}>
                <NumberInput label="Stream timeout (ms)" description="Stop after this long without data." value={form.incremental.stream_timeout_ms} onChange={(value) => setIn("incremental", { stream_timeout_ms: value })} error={errors["incremental.stream_timeout_ms"]} />
                <NumberInput label="Window" description="Samples per training window." value={form.incremental.window} onChange={(value) => setIn("incremental", { window: value })} error={errors["incremental.window"]} />
                <Checkbox mt="lg" label="Indefinite (snapshot on improvement)" checked={form.incremental.indefinite} onChange={(e) => setIn("incremental", { indefinite: e.currentTarget.checked })} />
                <TextInput label="Monitoring metric" description="Metric that decides a snapshot, e.g. val_loss." value={form.incremental.monitoring_metric} onChange={(e) => setIn("incremental", { monitoring_metric: e.currentTarget.value })} error={errors["incremental.monitoring_metric"]} />
                <Select label="Better when it goes" description="up for accuracy, down for loss." data={["up", "down"]} allowDeselect={false} value={form.incremental.change} onChange={(value) => setIn("incremental", { change: (value as "up" | "down") ?? "up" })} />
                <NumberInput label="Improvement" description="Smallest change that counts." decimalScale={4} value={form.incremental.improvement} onChange={(value) => setIn("incremental", { improvement: value })} error={errors["incremental.improvement"]} />
              </SimpleGrid>
            </Paper>
          )}
          {form.mode === "distributed" && (
            <Paper withBorder p="md">
              <SimpleGrid cols={2}>
                <TextInput label="Optimizer" description="Keras optimizer name." value={form.distributed.optimizer} onChange={(e) => setIn("distributed", { optimizer: e.currentTarget.value })} error={errors["distributed.optimizer"]} />
                <NumberInput label="Learning rate" description="Of the optimizer." decimalScale={6} value={form.distributed.learning_rate} onChange={(value) => setIn("distributed", { learning_rate: value })} error={errors["distributed.learning_rate"]} />
                <TextInput label="Loss" description="Keras loss name." value={form.distributed.loss} onChange={(e) => setIn("distributed", { loss: e.currentTarget.value })} error={errors["distributed.loss"]} />
                <TextInput label="Metrics" description="Comma-separated Keras metric names." value={form.distributed.metrics} onChange={(e) => setIn("distributed", { metrics: e.currentTarget.value })} error={errors["distributed.metrics"]} />
              </SimpleGrid>
            </Paper>
          )}
          {form.mode === "semi-supervised" && (
            <Paper withBorder p="md">
              <SimpleGrid cols={2}>
                <NumberInput label="Rounds" description="Pseudo-labelling rounds." value={form.semi_supervised.rounds} onChange={(value) => setIn("semi_supervised", { rounds: value })} error={errors["semi_supervised.rounds"]} />
                <NumberInput label="Confidence" description="Smallest prediction confidence taken as a label (0..1)." decimalScale={3} value={form.semi_supervised.confidence} onChange={(value) => setIn("semi_supervised", { confidence: value })} error={errors["semi_supervised.confidence"]} />
              </SimpleGrid>
            </Paper>
          )}
          {form.mode === "federated" && (
            <Paper withBorder p="md">
              <SimpleGrid cols={3}>
                <NumberInput label="Rounds" description="Federated rounds (one reported epoch each)." min={1} value={form.federated.rounds} onChange={(value) => setIn("federated", { rounds: value })} error={errors["federated.rounds"]} />
                <NumberInput label="Local epochs" description="Epochs each worker trains per round." min={1} value={form.federated.local_epochs} onChange={(value) => setIn("federated", { local_epochs: value })} error={errors["federated.local_epochs"]} />
                <NumberInput label="Minimum clients" description="Updates a round needs; it ends as soon as this many arrived." min={1} value={form.federated.min_clients} onChange={(value) => setIn("federated", { min_clients: value })} error={errors["federated.min_clients"]} />
                <NumberInput label="Minimum data" description="A worker with fewer training samples takes no part." min={1} value={form.federated.min_data} onChange={(value) => setIn("federated", { min_data: value })} error={errors["federated.min_data"]} />
                <NumberInput label="Round timeout (s)" description="Fewer than the minimum clients by then fails the job." min={1} max={86400} value={form.federated.round_timeout_s} onChange={(value) => setIn("federated", { round_timeout_s: value })} error={errors["federated.round_timeout_s"]} />
                <Select
                  label="Strategy"
                  description="fedavg: weighted average; fedprox: adds a proximal term; fedadam: Adam steps on the server."
                  data={[
                    { value: "fedavg", label: "FedAvg" },
                    { value: "fedprox", label: "FedProx" },
                    { value: "fedadam", label: "FedAdam" },
                  ]}
                  allowDeselect={false}
                  value={form.federated.strategy}
                  onChange={(value) => setIn("federated", { strategy: (value as Strategy | null) ?? "fedavg" })}
                  error={errors["federated.strategy"]}
                />
                {form.federated.strategy === "fedprox" && (
                  <NumberInput label="Mu" description="FedProx's proximal weight (empty: 0.01)." min={0} decimalScale={6} value={form.federated.mu} onChange={(value) => setIn("federated", { mu: value })} error={errors["federated.mu"]} />
                )}
                {form.federated.strategy === "fedadam" && (
                  <NumberInput label="Server learning rate" description="FedAdam's server step size (empty: 0.01)." min={0} decimalScale={9} value={form.federated.server_learning_rate} onChange={(value) => setIn("federated", { server_learning_rate: value })} error={errors["federated.server_learning_rate"]} />
                )}
                <Textarea label="Data restrictions (JSON)" description="Each entry must equal the worker dataset's restriction." autosize minRows={1} value={form.federated.data_restrictions} onChange={(e) => setIn("federated", { data_restrictions: e.currentTarget.value })} error={errors["federated.data_restrictions"]} styles={{ input: { fontFamily: "monospace" } }} />
              </SimpleGrid>
            </Paper>
          )}
          {errors.non_field_errors && <Alert color="red">{errors.non_field_errors}</Alert>}
          <Group>
            <Button type="submit" loading={deploy.isPending}>
              Deploy
            </Button>
          </Group>
        </Stack>
      </form>
    </>
  );
}
