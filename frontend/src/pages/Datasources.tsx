import { Button, Code, Group, Modal, NumberInput, Table, Text } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useMutation, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api, ApiError, unwrap, type Schemas } from "../api/client";
import { formatTime } from "../lib/format";
import { EmptyState, ErrorAlert, ListTable, PageHeader } from "../components/common";

export function DatasourcesPage() {
  const datasources = useQuery({ queryKey: ["datasources"], queryFn: () => unwrap(api.GET("/api/datasources")), refetchInterval: 5000 });
  const [replaying, setReplaying] = useState<Schemas["DatasourceOutput"] | null>(null);
  const list = datasources.data ?? [];
  return (
    <>
      <PageHeader title="Datasources" />
      <ErrorAlert error={datasources.error} />
      {datasources.isSuccess && list.length === 0 && (
        <EmptyState>No data streams announced yet. A producer’s sink announces its stream when it closes; the stream then appears here and can be replayed into another deployment.</EmptyState>
      )}
      {list.length > 0 && (
        <ListTable columns={["ID", "Deployment", "Description", "Format", "Topic ranges", "Samples", "Validation / test", "Sent", "Actions"]}>
          {list.map((source) => (
            <Table.Tr key={source.id}>
              <Table.Td>{source.id}</Table.Td>
              <Table.Td>{source.deployment_id}</Table.Td>
              <Table.Td>{source.description}</Table.Td>
              <Table.Td>{source.input_format}</Table.Td>
              <Table.Td>
                <Code>{source.topic}</Code>
              </Table.Td>
              <Table.Td>{source.total_msg ?? "stream"}</Table.Td>
              <Table.Td>
                {source.validation_rate ?? 0} / {source.test_rate ?? 0}
              </Table.Td>
              <Table.Td>{formatTime(source.sent_at ?? source.recorded_at)}</Table.Td>
              <Table.Td>
                <Button size="xs" variant="default" onClick={() => setReplaying(source)}>
                  Replay
                </Button>
              </Table.Td>
            </Table.Tr>
          ))}
        </ListTable>
      )}
      {replaying && <ReplayDialog source={replaying} onClose={() => setReplaying(null)} />}
    </>
  );
}

function ReplayDialog({ source, onClose }: { source: Schemas["DatasourceOutput"]; onClose: () => void }) {
  const [deployment, setDeployment] = useState<number | string>("");
  const replay = useMutation({
    mutationFn: () => unwrap(api.POST("/api/datasources/{id}/replay", { params: { path: { id: source.id } }, body: { deployment_id: Number(deployment) } })),
    onSuccess: () => {
      notifications.show({ color: "green", message: `Datasource ${source.id} announced to deployment ${deployment}.` });
      onClose();
    },
  });
  const fields = replay.error instanceof ApiError ? replay.error.fields : {};
  return (
    <Modal opened onClose={onClose} title={`Replay datasource ${source.id}`}>
      <Text size="sm" mb="sm">
        The same records are announced again to another deployment. They must still be in Kafka: the topic’s retention may have deleted old ones.
      </Text>
      <ErrorAlert error={replay.error} />
      <NumberInput label="Target deployment ID" min={1} value={deployment} onChange={setDeployment} error={fields.deployment_id} />
      <Group justify="flex-end" mt="md">
        <Button variant="default" onClick={onClose}>
          Cancel
        </Button>
        <Button disabled={!deployment} loading={replay.isPending} onClick={() => replay.mutate()}>
          Replay
        </Button>
      </Group>
    </Modal>
  );
}
