import { Anchor, Button, Group, Paper, Stack, Table, Text } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useSearchParams } from "react-router";
import { api, unwrap, type Schemas } from "../api/client";
import { formatTime } from "../lib/format";
import { EmptyState, ErrorAlert, PageHeader, StatusBadge } from "../components/common";

const LIVE = new Set(["created", "running"]);

/** Deployments with their results; statuses refresh every second while any is live. */
export function DeploymentsPage() {
  const [params] = useSearchParams();
  const configuration = params.get("configuration");
  const only = params.get("deployment");
  const deployments = useQuery({ queryKey: ["deployments"], queryFn: () => unwrap(api.GET("/api/deployments")), refetchInterval: 5000 });
  const results = useQuery({
    queryKey: ["results"],
    queryFn: () => unwrap(api.GET("/api/results")),
    refetchInterval: (query) => ((query.state.data ?? []).some((result) => LIVE.has(result.status ?? "created")) ? 1000 : 5000),
  });
  const shown = (deployments.data ?? []).filter(
    (deployment) => (!configuration || String(deployment.configuration_id) === configuration) && (!only || String(deployment.id) === only),
  );
  const byDeployment = new Map<number, Schemas["ResultOutput"][]>();
  for (const result of results.data ?? []) {
    if (result.deployment_id !== null) byDeployment.set(result.deployment_id, [...(byDeployment.get(result.deployment_id) ?? []), result]);
  }
  const imported = (results.data ?? []).filter((result) => result.deployment_id === null);
  return (
    <>
      <PageHeader title="Deployments and results" />
      <ErrorAlert error={deployments.error ?? results.error} />
      {deployments.isSuccess && shown.length === 0 && (
        <EmptyState>
          No deployments yet. Deploy a configuration from the <Anchor component={Link} to="/configurations">Configurations</Anchor> page; its results appear here and update live.
        </EmptyState>
      )}
      <Stack>
        {shown.map((deployment) => (
          <Paper withBorder p="md" key={deployment.id} data-testid={`deployment-${deployment.id}`}>
            <Group justify="space-between" mb="xs">
              <Text fw={600}>
                Deployment {deployment.id} · {deployment.mode} · batch {deployment.batch_size}
                {deployment.description ? ` · ${deployment.description}` : ""}
              </Text>
              <Text size="sm" c="dimmed">
                configuration <Anchor component={Link} to={`/configurations/${deployment.configuration_id}`}>{deployment.configuration_id}</Anchor> · {formatTime(deployment.created_at)}
              </Text>
            </Group>
            <ResultsTable results={byDeployment.get(deployment.id) ?? []} />
          </Paper>
        ))}
        {imported.length > 0 && !only && !configuration && (
          <Paper withBorder p="md">
            <Text fw={600} mb="xs">
              Imported models
            </Text>
            <ResultsTable results={imported} />
          </Paper>
        )}
      </Stack>
    </>
  );
}

function ResultsTable({ results }: { results: Schemas["ResultOutput"][] }) {
  const client = useQueryClient();
  const stop = useMutation({
    mutationFn: (pk: number) => unwrap(api.POST("/api/results/{id}/stop", { params: { path: { id: pk } } })),
    onSettled: () => void client.invalidateQueries({ queryKey: ["results"] }),
  });
  if (results.length === 0) return <Text size="sm">No results yet.</Text>;
  return (
    <>
      <ErrorAlert error={stop.error} />
      <Table>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Result</Table.Th>
            <Table.Th>Model</Table.Th>
            <Table.Th>Status</Table.Th>
            <Table.Th>Epochs</Table.Th>
            <Table.Th>Started</Table.Th>
            <Table.Th>Finished</Table.Th>
            <Table.Th>Actions</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {results.map((result) => (
            <Table.Tr key={result.id} data-testid={`result-row-${result.id}`}>
              <Table.Td>
                <Anchor component={Link} to={`/results/${result.id}`}>
                  Result {result.id}
                </Anchor>
              </Table.Td>
              <Table.Td>{result.model_name}</Table.Td>
              <Table.Td>
                <StatusBadge status={result.status} />
              </Table.Td>
              <Table.Td>{Array.isArray(result.epochs) ? result.epochs.length : 0}</Table.Td>
              <Table.Td>{formatTime(result.started_at)}</Table.Td>
              <Table.Td>{formatTime(result.finished_at)}</Table.Td>
              <Table.Td>
                <Group gap="xs">
                  {LIVE.has(result.status ?? "created") && (
                    <Button size="xs" variant="outline" color="red" onClick={() => stop.mutate(result.id)}>
                      Stop
                    </Button>
                  )}
                  {result.status === "finished" && (
                    <Button size="xs" variant="default" component={Link} to={`/inferences/new?result=${result.id}`}>
                      Deploy for inference
                    </Button>
                  )}
                </Group>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </>
  );
}
