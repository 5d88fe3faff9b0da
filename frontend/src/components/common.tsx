import { Alert, Badge, Button, Group, Modal, Stack, Table, Text, Title, type TableProps } from "@mantine/core";
import type { ReactNode } from "react";
import { ApiError } from "../api/client";

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <Group justify="space-between" mb="md">
      <Title order={2}>{title}</Title>
      <Group>{children}</Group>
    </Group>
  );
}

/** An error in the API's own words (its message, and field errors not shown at a field). */
export function ErrorAlert({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : String(error);
  const fields = error instanceof ApiError ? Object.entries(error.fields) : [];
  return (
    <Alert color="red" title={title ?? "The request was refused"} role="alert" mb="md">
      <Stack gap={2}>
        <Text size="sm">{message}</Text>
        {fields.map(([field, text]) => (
          <Text size="sm" key={field}>
            {field}: {text}
          </Text>
        ))}
      </Stack>
    </Alert>
  );
}

/** A list page's table: the column headings, then the rows (`Table.Tr`) the page renders. */
export function ListTable({ columns, children, ...props }: { columns: string[]; children: ReactNode } & TableProps) {
  return (
    <Table striped {...props}>
      <Table.Thead>
        <Table.Tr>
          {columns.map((column) => (
            <Table.Th key={column}>{column}</Table.Th>
          ))}
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>{children}</Table.Tbody>
    </Table>
  );
}

/** Asks before an action that cannot be undone (delete, revoke), and shows its refusal. */
export function ConfirmDialog({
  opened,
  title,
  action,
  error,
  pending,
  onConfirm,
  onClose,
  children,
}: {
  opened: boolean;
  title: string;
  action: string;
  error: unknown;
  pending: boolean;
  onConfirm: () => void;
  onClose: () => void;
  children: ReactNode;
}) {
  return (
    <Modal opened={opened} onClose={onClose} title={title}>
      <Text mb="md">{children}</Text>
      <ErrorAlert error={error} />
      <Group justify="flex-end">
        <Button variant="default" onClick={onClose}>
          Keep it
        </Button>
        <Button color="red" loading={pending} onClick={onConfirm}>
          {action}
        </Button>
      </Group>
    </Modal>
  );
}

/** What to do next on a page that has nothing to list yet. */
export function EmptyState({ children }: { children: ReactNode }) {
  return (
    <Alert color="gray" variant="light" data-testid="empty-state">
      {children}
    </Alert>
  );
}

// Dark enough for white badge text to reach WCAG AA (4.5:1) at badge size.
const STATUS_COLORS: Record<string, string> = {
  created: "#495057",
  running: "#1864ab",
  finished: "#1e6b30",
  failed: "#a61e1e",
  stopped: "#8a4b00",
  active: "#1e6b30",
  revoked: "#a61e1e",
};

export function StatusBadge({ status }: { status: string | undefined }) {
  const value = status ?? "created";
  return (
    <Badge color={STATUS_COLORS[value] ?? "#495057"} variant="filled" data-testid="status" data-status={value}>
      {value}
    </Badge>
  );
}
