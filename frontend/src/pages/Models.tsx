import { Anchor, Button, Group, SegmentedControl, Table, TextInput } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";
import { api, unwrap } from "../api/client";
import { formatTime } from "../lib/format";
import { EmptyState, ErrorAlert, ListTable, PageHeader } from "../components/common";
import { filterModels, type FrameworkFilter } from "../lib/models";

export function ModelsPage() {
  const [search, setSearch] = useState("");
  const [framework, setFramework] = useState<FrameworkFilter>("all");
  const models = useQuery({ queryKey: ["models"], queryFn: () => unwrap(api.GET("/api/models")) });
  const all = models.data ?? [];
  const shown = filterModels(all, search, framework);
  return (
    <>
      <PageHeader title="Models">
        <Button component={Link} to="/models/new">
          New model
        </Button>
      </PageHeader>
      <ErrorAlert error={models.error} />
      <Group mb="md">
        <TextInput aria-label="Search models" placeholder="Search by name or description" value={search} onChange={(e) => setSearch(e.currentTarget.value)} w={320} />
        <SegmentedControl
          aria-label="Framework"
          value={framework}
          onChange={(value) => setFramework(value as FrameworkFilter)}
          data={[
            { value: "all", label: "All" },
            { value: "tensorflow", label: "TensorFlow" },
            { value: "pytorch", label: "PyTorch" },
          ]}
        />
      </Group>
      {models.isSuccess && all.length === 0 && (
        <EmptyState>No models yet. Start with “New model”: pick a Keras or PyTorch template, and the code is checked before it is saved.</EmptyState>
      )}
      {all.length > 0 && (
        <ListTable columns={["ID", "Name", "Framework", "Description", "Parameters", "Chain", "Updated"]} highlightOnHover>
          {shown.map((model) => (
            <Table.Tr key={model.id}>
              <Table.Td>{model.id}</Table.Td>
              <Table.Td>
                <Anchor component={Link} to={`/models/${model.id}`}>
                  {model.name}
                </Anchor>
              </Table.Td>
              <Table.Td>{model.framework === "pytorch" ? "PyTorch" : "TensorFlow"}</Table.Td>
              <Table.Td>{model.description}</Table.Td>
              <Table.Td>{paramsOf(model.summary)}</Table.Td>
              <Table.Td>
                {model.upper_id ? (
                  <Anchor component={Link} to={`/models/${model.upper_id}`}>
                    upper: {model.upper_id}
                  </Anchor>
                ) : model.distributed ? (
                  "top of chain"
                ) : (
                  "—"
                )}
              </Table.Td>
              <Table.Td>{formatTime(model.updated_at)}</Table.Td>
            </Table.Tr>
          ))}
        </ListTable>
      )}
      {all.length > 0 && shown.length === 0 && <EmptyState>No model matches the search.</EmptyState>}
    </>
  );
}

function paramsOf(summary: unknown): string {
  const params = (summary as { params?: number | null } | null)?.params;
  return typeof params === "number" ? params.toLocaleString() : "—";
}
