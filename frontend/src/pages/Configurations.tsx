import { Anchor, Button, Group, MultiSelect, Stack, Table, TextInput } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, ApiError, unwrap } from "../api/client";
import { formatTime } from "../lib/format";
import { ConfirmDialog, EmptyState, ErrorAlert, ListTable, PageHeader } from "../components/common";

export function ConfigurationsPage() {
  const client = useQueryClient();
  const configurations = useQuery({ queryKey: ["configurations"], queryFn: () => unwrap(api.GET("/api/configurations")) });
  const models = useQuery({ queryKey: ["models"], queryFn: () => unwrap(api.GET("/api/models")) });
  const [deleting, setDeleting] = useState<number | null>(null);
  const remove = useMutation({
    mutationFn: (pk: number) => unwrap(api.DELETE("/api/configurations/{id}", { params: { path: { id: pk } } })),
    onSuccess: () => {
      setDeleting(null);
      void client.invalidateQueries({ queryKey: ["configurations"] });
    },
  });
  const names = new Map((models.data ?? []).map((model) => [model.id, model.name]));
  const list = configurations.data ?? [];
  return (
    <>
      <PageHeader title="Configurations">
        <Button component={Link} to="/configurations/new">
          New configuration
        </Button>
      </PageHeader>
      <ErrorAlert error={configurations.error} />
      {configurations.isSuccess && list.length === 0 && (
        <EmptyState>No configurations yet. A configuration groups the models you train together: create one from your models, then deploy it.</EmptyState>
      )}
      {list.length > 0 && (
        <ListTable columns={["ID", "Name", "Models", "Created", "Actions"]}>
          {list.map((configuration) => (
            <Table.Tr key={configuration.id}>
              <Table.Td>{configuration.id}</Table.Td>
              <Table.Td>
                <Anchor component={Link} to={`/configurations/${configuration.id}`}>
                  {configuration.name}
                </Anchor>
              </Table.Td>
              <Table.Td>
                {configuration.ml_model_ids.map((id, index) => (
                  <span key={id}>
                    {index > 0 && ", "}
                    <Anchor component={Link} to={`/models/${id}`}>
                      {names.get(id) ?? id}
                    </Anchor>
                  </span>
                ))}
              </Table.Td>
              <Table.Td>{formatTime(configuration.created_at)}</Table.Td>
              <Table.Td>
                <Group gap="xs">
                  <Button size="xs" component={Link} to={`/configurations/${configuration.id}/deploy`}>
                    Deploy
                  </Button>
                  <Button size="xs" variant="default" component={Link} to={`/deployments?configuration=${configuration.id}`}>
                    Deployments
                  </Button>
                  <Button size="xs" color="red" variant="outline" onClick={() => setDeleting(configuration.id)}>
                    Delete
                  </Button>
                </Group>
              </Table.Td>
            </Table.Tr>
          ))}
        </ListTable>
      )}
      <ConfirmDialog
        opened={deleting !== null}
        title="Delete this configuration?"
        action="Delete"
        error={remove.error}
        pending={remove.isPending}
        onConfirm={() => deleting !== null && remove.mutate(deleting)}
        onClose={() => setDeleting(null)}
      >
        Configuration {deleting} is deleted; its models stay.
      </ConfirmDialog>
    </>
  );
}

export function ConfigurationEditPage() {
  const { id } = useParams();
  const pk = id ? Number(id) : null;
  const navigate = useNavigate();
  const client = useQueryClient();
  const models = useQuery({ queryKey: ["models"], queryFn: () => unwrap(api.GET("/api/models")) });
  const existing = useQuery({
    queryKey: ["configurations", pk],
    queryFn: () => unwrap(api.GET("/api/configurations/{id}", { params: { path: { id: pk! } } })),
    enabled: pk !== null,
  });
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [selected, setSelected] = useState<string[]>([]);
  useEffect(() => {
    if (!existing.data) return;
    setName(existing.data.name);
    setDescription(existing.data.description ?? "");
    setSelected(existing.data.ml_model_ids.map(String));
  }, [existing.data]);
  const save = useMutation({
    mutationFn: () => {
      const body = { name, description, ml_model_ids: selected.map(Number) };
      return pk === null
        ? unwrap(api.POST("/api/configurations", { body }))
        : unwrap(api.PATCH("/api/configurations/{id}", { params: { path: { id: pk } }, body }));
    },
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["configurations"] });
      navigate("/configurations");
    },
  });
  const fields = save.error instanceof ApiError ? save.error.fields : {};
  // Only the top of a chain is offered: the backend adds the whole chain.
  const choices = (models.data ?? []).filter((model) => !model.upper_id).map((model) => ({ value: String(model.id), label: `${model.name} (${model.framework})` }));
  return (
    <>
      <PageHeader title={pk === null ? "New configuration" : `Configuration ${existing.data?.name ?? pk}`} />
      <ErrorAlert error={save.error} />
      <form
        onSubmit={(event) => {
          event.preventDefault();
          save.mutate();
        }}
      >
        <Stack maw={640}>
          <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} error={fields.name} />
          <TextInput label="Description" value={description} onChange={(e) => setDescription(e.currentTarget.value)} error={fields.description} />
          <MultiSelect
            label="Models"
            description="Trained together, one result each. An early-exit chain is added whole."
            data={choices}
            value={selected}
            onChange={setSelected}
            searchable
            error={fields.ml_model_ids}
            nothingFoundMessage="No model: create one first"
          />
          <Group>
            <Button type="submit" loading={save.isPending}>
              {pk === null ? "Create" : "Save"}
            </Button>
          </Group>
        </Stack>
      </form>
    </>
  );
}
