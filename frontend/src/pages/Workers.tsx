import { Alert, Button, Code, CopyButton, Group, Modal, NumberInput, Paper, SimpleGrid, Stack, Table, Text, TextInput, Textarea } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, ApiError, unwrap, type FieldErrors, type Schemas } from "../api/client";
import { formatTime } from "../lib/format";
import { buildWorkerRequest, emptyDataset, type DatasetRow } from "../lib/workerForm";
import { ConfirmDialog, EmptyState, ErrorAlert, ListTable, PageHeader, StatusBadge } from "../components/common";

/** Data owners' workers for federated deployments: register one (its credential is shown once), list, revoke. */
export function WorkersPage() {
  const client = useQueryClient();
  const workers = useQuery({ queryKey: ["workers"], queryFn: () => unwrap(api.GET("/api/federated/workers")) });
  const [registering, setRegistering] = useState(false);
  const [created, setCreated] = useState<Schemas["WorkerCreatedOutput"] | null>(null);
  const [revoking, setRevoking] = useState<Schemas["WorkerOutput"] | null>(null);
  const revoke = useMutation({
    mutationFn: (pk: number) => unwrap(api.DELETE("/api/federated/workers/{id}", { params: { path: { id: pk } } })),
    onSuccess: () => {
      setRevoking(null);
      void client.invalidateQueries({ queryKey: ["workers"] });
    },
  });
  const list = workers.data ?? [];
  return (
    <>
      <PageHeader title="Federated workers">
        <Button onClick={() => setRegistering(true)}>Register worker</Button>
      </PageHeader>
      <ErrorAlert error={workers.error} />
      {workers.isSuccess && list.length === 0 && (
        <EmptyState>
          No workers yet. A worker trains your federated deployments where the data lives and sends back only weights. Register one for each data owner and hand them its credential.
        </EmptyState>
      )}
      {list.length > 0 && (
        <ListTable columns={["ID", "Name", "Worker ID", "Datasets", "Registered", "Status", "Actions"]}>
          {list.map((worker) => (
            <Table.Tr key={worker.id} data-testid={`worker-${worker.name}`}>
              <Table.Td>{worker.id}</Table.Td>
              <Table.Td>{worker.name}</Table.Td>
              <Table.Td>
                <Code>{worker.worker_id}</Code>
              </Table.Td>
              <Table.Td>
                {worker.datasets.map((dataset) => `${dataset.name} [${dataset.input_shape.join(" ")}] × ${dataset.samples}`).join(", ")}
              </Table.Td>
              <Table.Td>{formatTime(worker.created_at)}</Table.Td>
              <Table.Td>
                <StatusBadge status={worker.revoked_at ? "revoked" : "active"} />
              </Table.Td>
              <Table.Td>
                {worker.revoked_at ? (
                  <Text size="sm" c="dimmed">
                    Revoked {formatTime(worker.revoked_at)}
                  </Text>
                ) : (
                  <Button size="xs" color="red" variant="outline" onClick={() => setRevoking(worker)}>
                    Revoke
                  </Button>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </ListTable>
      )}
      {registering && (
        <RegisterDialog
          onClose={() => setRegistering(false)}
          onCreated={(worker) => {
            setRegistering(false);
            setCreated(worker);
            void client.invalidateQueries({ queryKey: ["workers"] });
          }}
        />
      )}
      {created && <CredentialDialog worker={created} onClose={() => setCreated(null)} />}
      <ConfirmDialog
        opened={revoking !== null}
        title="Revoke this worker?"
        action="Revoke"
        error={revoke.error}
        pending={revoke.isPending}
        onConfirm={() => revoking && revoke.mutate(revoking.id)}
        onClose={() => setRevoking(null)}
      >
        {revoking?.name}’s credential stops working at once: its calls are refused and the coordinators drop its updates. This cannot be undone; register a new worker to let the data owner back in.
      </ConfirmDialog>
    </>
  );
}

function RegisterDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (worker: Schemas["WorkerCreatedOutput"]) => void }) {
  const [name, setName] = useState("");
  const [rows, setRows] = useState<DatasetRow[]>([emptyDataset()]);
  const [errors, setErrors] = useState<FieldErrors>({});
  const create = useMutation({
    mutationFn: (body: Schemas["WorkerCreateInputRequest"]) => unwrap(api.POST("/api/federated/workers", { body })),
    onSuccess: onCreated,
  });
  const fields = { ...errors, ...(create.error instanceof ApiError ? create.error.fields : {}) };
  // An edited field's client-side error goes away at once; the API's come back on submit.
  const clear = (...keys: string[]) => setErrors((current) => Object.fromEntries(Object.entries(current).filter(([key]) => !keys.includes(key))));
  const setRow = (index: number, change: Partial<DatasetRow>) => {
    setRows(rows.map((row, i) => (i === index ? { ...row, ...change } : row)));
    clear("datasets", ...Object.keys(change).map((key) => `datasets.${index}.${key}`));
  };
  const submit = () => {
    const built = buildWorkerRequest(name, rows);
    setErrors(built.errors);
    if (built.body) create.mutate(built.body);
  };
  return (
    <Modal opened onClose={onClose} title="Register a federated worker" size="lg">
      <Stack>
        <ErrorAlert error={create.error} />
        <TextInput
          label="Name"
          description="Whose worker it is, e.g. hospital-a."
          required
          value={name}
          onChange={(e) => {
            setName(e.currentTarget.value);
            clear("name");
          }}
          error={fields.name}
        />
        {fields.datasets && (
          <Alert color="red" role="alert">
            {fields.datasets}
          </Alert>
        )}
        {rows.map((row, index) => (
          <Paper withBorder p="sm" key={index}>
            <SimpleGrid cols={{ base: 1, sm: 3 }}>
              <TextInput label="Dataset name" required value={row.name} onChange={(e) => setRow(index, { name: e.currentTarget.value })} error={fields[`datasets.${index}.name`]} />
              <TextInput
                label="Input shape"
                description="One sample's, e.g. 28 28."
                // Under the box, not above it: the row's boxes line up with the other fields'.
                inputWrapperOrder={["label", "input", "description", "error"]}
                required
                value={row.input_shape}
                onChange={(e) => setRow(index, { input_shape: e.currentTarget.value })}
                error={fields[`datasets.${index}.input_shape`]}
              />
              <NumberInput label="Training samples" required min={0} value={row.samples} onChange={(value) => setRow(index, { samples: value })} error={fields[`datasets.${index}.samples`]} />
            </SimpleGrid>
            <Textarea
              mt="xs"
              label="Dataset restrictions (JSON)"
              description="As the worker's sink announces them; a deployment's data restrictions must match."
              autosize
              minRows={1}
              value={row.dataset_restrictions}
              onChange={(e) => setRow(index, { dataset_restrictions: e.currentTarget.value })}
              error={fields[`datasets.${index}.dataset_restrictions`]}
              styles={{ input: { fontFamily: "monospace" } }}
            />
            {rows.length > 1 && (
              <Button mt="xs" size="xs" variant="subtle" color="red" onClick={() => setRows(rows.filter((_, i) => i !== index))}>
                Remove this dataset
              </Button>
            )}
          </Paper>
        ))}
        <Group justify="space-between">
          <Button variant="default" onClick={() => setRows([...rows, emptyDataset()])}>
            Add a dataset
          </Button>
          <Group>
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button loading={create.isPending} onClick={submit}>
              Register
            </Button>
          </Group>
        </Group>
      </Stack>
    </Modal>
  );
}

// Long lines wrap rather than scroll: a scrolling block would need to take the keyboard focus.
const WRAPPED = { whiteSpace: "pre-wrap", wordBreak: "break-all" } as const;

function CredentialDialog({ worker, onClose }: { worker: Schemas["WorkerCreatedOutput"]; onClose: () => void }) {
  const command = [
    `KAFKAML_BACKEND_URL=${window.location.origin} \\`,
    `KAFKAML_WORKER_CREDENTIAL='${worker.credential}' \\`,
    "KAFKAML_KAFKA_BOOTSTRAP_SERVERS=<the data owner's brokers> \\",
    "kafkaml federated-worker",
  ].join("\n");
  return (
    <Modal opened onClose={onClose} title={`Worker ${worker.name} registered`} size="lg">
      <Alert color="red" mb="md" title="Copy the credential now">
        It is shown this once: the platform keeps only its hash. Hand it to the data owner, who starts the worker with it.
      </Alert>
      <Paper withBorder p="sm" pos="relative" mb="md">
        <Code block data-testid="worker-credential" style={WRAPPED}>
          {worker.credential}
        </Code>
        <CopyButton value={worker.credential}>
          {({ copied, copy }) => (
            <Button size="xs" pos="absolute" top={8} right={8} variant="default" onClick={copy}>
              {copied ? "Copied" : "Copy"}
            </Button>
          )}
        </CopyButton>
      </Paper>
      <Text size="sm" mb="xs">
        At the data owner’s site, with the dataset’s settings (docs/federated.md, “Running a worker”):
      </Text>
      <Code block mb="md" style={WRAPPED}>
        {command}
      </Code>
      <Group justify="flex-end">
        <Button onClick={onClose}>I have copied it</Button>
      </Group>
    </Modal>
  );
}
