import { Alert, Button, Checkbox, Code, Group, Input, Paper, SegmentedControl, Select, Stack, Table, Text, TextInput } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { notifications } from "@mantine/notifications";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useState } from "react";
import { useNavigate, useParams } from "react-router";
import { api, ApiError, unwrap, type Schemas } from "../api/client";
import { ConfirmDialog, ErrorAlert, PageHeader } from "../components/common";
import { modelErrorText, TEMPLATES, withoutLine, type ModelSummary } from "../lib/models";

const CodeEditor = lazy(() => import("../components/CodeEditor"));

type Framework = Schemas["FrameworkEnum"];

export default function ModelEditPage() {
  const { id } = useParams();
  const modelId = id ? Number(id) : null;
  const client = useQueryClient();
  const navigate = useNavigate();
  const existing = useQuery({
    queryKey: ["models", modelId],
    queryFn: () => unwrap(api.GET("/api/models/{id}", { params: { path: { id: modelId! } } })),
    enabled: modelId !== null,
  });
  const models = useQuery({ queryKey: ["models"], queryFn: () => unwrap(api.GET("/api/models")) });
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [framework, setFramework] = useState<Framework>("tensorflow");
  const [imports, setImports] = useState(TEMPLATES.tensorflow.imports);
  const [code, setCode] = useState(TEMPLATES.tensorflow.code);
  const [distributed, setDistributed] = useState(false);
  const [upperId, setUpperId] = useState<string | null>(null);
  const [confirmDelete, deleteModal] = useDisclosure(false);

  useEffect(() => {
    const model = existing.data;
    if (!model) return;
    setName(model.name);
    setDescription(model.description ?? "");
    setFramework(model.framework);
    setImports(model.imports ?? "");
    setCode(model.code ?? "");
    setDistributed(model.distributed ?? false);
    setUpperId(model.upper_id ? String(model.upper_id) : null);
  }, [existing.data]);

  const save = useMutation({
    mutationFn: () => {
      const body = { name, description, framework, imports, code, distributed, upper_id: upperId ? Number(upperId) : null };
      return modelId === null
        ? unwrap(api.POST("/api/models", { body }))
        : unwrap(api.PATCH("/api/models/{id}", { params: { path: { id: modelId } }, body }));
    },
    onSuccess: (model) => {
      void client.invalidateQueries({ queryKey: ["models"] });
      client.setQueryData(["models", model.id], model);
      notifications.show({ color: "green", message: `Model “${model.name}” saved.` });
      if (modelId === null) navigate(`/models/${model.id}`, { replace: true });
    },
  });
  const remove = useMutation({
    mutationFn: () => unwrap(api.DELETE("/api/models/{id}", { params: { path: { id: modelId! } } })),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["models"] });
      navigate("/models");
    },
  });

  const error = save.error instanceof ApiError ? save.error : null;
  const fields = error?.fields ?? {};
  const errorField = (error?.extra.field as string | undefined) === "imports" ? "imports" : "code";
  // Once, with its line in front; the editor marks that line with the same words.
  const errorText = error ? modelErrorText(error.message, error.line, errorField) : undefined;
  const summary = (save.data?.summary ?? existing.data?.summary) as ModelSummary | undefined;
  const uppers = (models.data ?? []).filter((model) => model.distributed && model.id !== modelId);

  function chooseFramework(value: Framework) {
    const untouched = code === TEMPLATES[framework].code || code.trim() === "";
    setFramework(value);
    if (untouched) {
      setImports(TEMPLATES[value].imports);
      setCode(TEMPLATES[value].code);
    }
  }

  return (
    <>
      <PageHeader title={modelId === null ? "New model" : `Model ${existing.data?.name ?? modelId}`}>
        {modelId !== null && (
          <Button color="red" variant="outline" onClick={deleteModal.open}>
            Delete
          </Button>
        )}
      </PageHeader>
      <ErrorAlert error={existing.error} />
      <form
        onSubmit={(event) => {
          event.preventDefault();
          save.mutate();
        }}
      >
        <Stack maw={960}>
          <Group grow align="flex-start">
            <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={fields.name} />
            <TextInput label="Description" value={description} onChange={(e) => setDescription(e.currentTarget.value)} error={fields.description} />
          </Group>
          <Input.Wrapper label="Framework" description="The template changes with it while the code is untouched.">
            <SegmentedControl
              value={framework}
              onChange={(value) => chooseFramework(value as Framework)}
              data={[
                { value: "tensorflow", label: "TensorFlow/Keras" },
                { value: "pytorch", label: "PyTorch (Ignite)" },
              ]}
            />
          </Input.Wrapper>
          <Group>
            <Button variant="subtle" size="xs" onClick={() => { setImports(TEMPLATES.tensorflow.imports); setCode(TEMPLATES.tensorflow.code); setFramework("tensorflow"); }}>
              Use the Keras template
            </Button>
            <Button variant="subtle" size="xs" onClick={() => { setImports(TEMPLATES.pytorch.imports); setCode(TEMPLATES.pytorch.code); setFramework("pytorch"); }}>
              Use the PyTorch template
            </Button>
          </Group>
          {error && (
            <Alert color="red" role="alert" title="The model was not saved" data-testid="model-error">
              {errorText}
            </Alert>
          )}
          <Suspense fallback={<Text size="sm">Loading the editor…</Text>}>
            <Input.Wrapper label="Imports" error={fields.imports}>
              <CodeEditor label="imports" value={imports} onChange={setImports} errorLine={errorField === "imports" ? error?.line : null} errorMessage={error ? withoutLine(error.message, error.line) : undefined} minHeight="48px" />
            </Input.Wrapper>
            <Input.Wrapper label="Code" description="Must define `model`." error={fields.code}>
              <CodeEditor label="code" value={code} onChange={setCode} errorLine={errorField === "code" ? error?.line : null} errorMessage={error ? withoutLine(error.message, error.line) : undefined} minHeight="220px" />
            </Input.Wrapper>
          </Suspense>
          <Group align="flex-end">
            <Checkbox label="Distributed (part of an early-exit chain)" checked={distributed} onChange={(e) => setDistributed(e.currentTarget.checked)} />
            {distributed && (
              <Select
                label="Upper model"
                description="The model this one forwards to; empty for the top of the chain."
                clearable
                data={uppers.map((model) => ({ value: String(model.id), label: `${model.id} · ${model.name}` }))}
                value={upperId}
                onChange={setUpperId}
                error={fields.upper_id}
              />
            )}
          </Group>
          <Group>
            <Button type="submit" loading={save.isPending}>
              {modelId === null ? "Check and create" : "Check and save"}
            </Button>
            <Text size="sm" c="dimmed">
              The executor runs the code in a sandbox first; only valid code is stored.
            </Text>
          </Group>
        </Stack>
      </form>
      {summary && <SummaryView summary={summary} />}
      {modelId === null && <ImportModel imports={imports} code={code} />}
      <ConfirmDialog
        opened={confirmDelete}
        title="Delete this model?"
        action="Delete"
        error={remove.error}
        pending={remove.isPending}
        onConfirm={() => remove.mutate()}
        onClose={deleteModal.close}
      >
        The model “{existing.data?.name}” and its code are deleted. A model used by a configuration cannot be deleted.
      </ConfirmDialog>
    </>
  );
}

function SummaryView({ summary }: { summary: ModelSummary }) {
  return (
    <Paper withBorder p="md" mt="lg" maw={960} data-testid="model-summary">
      <Text fw={600} mb="xs">
        Summary
      </Text>
      <Text size="sm">
        Input shape <Code>{JSON.stringify(summary.input_shape)}</Code> · output shape <Code>{JSON.stringify(summary.output_shape)}</Code> · parameters{" "}
        <b>{summary.params?.toLocaleString() ?? "unknown"}</b>
      </Text>
      {summary.layers?.length > 0 && (
        <Table mt="sm">
          <Table.Thead>
            <Table.Tr>
              {Object.keys(summary.layers[0]!).map((key) => (
                <Table.Th key={key}>{key}</Table.Th>
              ))}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {summary.layers.map((layer, index) => (
              <Table.Tr key={index}>
                {Object.keys(summary.layers[0]!).map((key) => (
                  <Table.Td key={key}>{typeof layer[key] === "object" ? JSON.stringify(layer[key]) : String(layer[key] ?? "")}</Table.Td>
                ))}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Paper>
  );
}

/**
 * A trained model file (Keras, PyTorch, ONNX) stored as a finished result, ready to deploy. A
 * PyTorch file holds weights only: the imports and code in the editors above build the module.
 */
function ImportModel({ imports, code }: { imports: string; code: string }) {
  const navigate = useNavigate();
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [framework, setFramework] = useState<Framework>("tensorflow");
  const [format, setFormat] = useState<Schemas["ArtifactFormatEnum"]>("keras");
  const upload = useMutation({
    mutationFn: async () => {
      const form = new FormData();
      form.set("name", name);
      form.set("framework", framework);
      form.set("artifact_format", format);
      if (framework === "pytorch") {
        form.set("imports", imports);
        form.set("code", code);
      }
      form.set("artifact", file!);
      return unwrap(
        api.POST("/api/models/import", {
          body: form as unknown as Schemas["ModelImportInputRequest"],
          bodySerializer: (body) => body as unknown as FormData,
        }),
      );
    },
    onSuccess: (result) => navigate(`/results/${result.id}`),
  });
  return (
    <Paper withBorder p="md" mt="xl" maw={960}>
      <Text fw={600}>Or import a trained model file</Text>
      <Text size="sm" c="dimmed" mb="sm">
        It becomes a finished result that you can deploy for inference. A PyTorch file holds the weights only: the imports and code above build the module they load into.
      </Text>
      <ErrorAlert error={upload.error} />
      <Group align="flex-end">
        <TextInput label="Imported model name" value={name} onChange={(e) => setName(e.currentTarget.value)} />
        <Select label="Framework" data={[{ value: "tensorflow", label: "TensorFlow" }, { value: "pytorch", label: "PyTorch" }]} value={framework} onChange={(v) => {
            const chosen = (v as Framework) ?? "tensorflow";
            setFramework(chosen);
            if (format !== "onnx") setFormat(chosen === "pytorch" ? "pytorch" : "keras");
          }} allowDeselect={false} />
        <Select label="File format" data={["keras", "pytorch", "onnx"]} value={format} onChange={(v) => setFormat((v as Schemas["ArtifactFormatEnum"]) ?? "keras")} allowDeselect={false} />
        <input aria-label="Model file" type="file" onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} />
        <Button disabled={!file || !name} loading={upload.isPending} onClick={() => upload.mutate()}>
          Import
        </Button>
      </Group>
    </Paper>
  );
}

