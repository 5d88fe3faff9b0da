import { Alert, Badge, Group, Stack, Text, Title } from "@mantine/core";
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
};

export function StatusBadge({ status }: { status: string | undefined }) {
  const value = status ?? "created";
  return (
    <Badge color={STATUS_COLORS[value] ?? "#495057"} variant="filled" data-testid="status" data-status={value}>
      {value}
    </Badge>
  );
}
