import { AppShell, Burger, Button, Center, Group, Loader, NavLink, Text, Title } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { lazy, Suspense } from "react";
import { Link, Navigate, Route, Routes, useLocation } from "react-router";
import { AuthProvider, useAuth } from "./lib/auth";
import { ConfigurationEditPage, ConfigurationsPage } from "./pages/Configurations";
import { DatasourcesPage } from "./pages/Datasources";
import { DeployPage } from "./pages/Deploy";
import { DeploymentsPage } from "./pages/Deployments";
import { InferenceCreatePage, InferenceDetailPage, InferencesPage } from "./pages/Inferences";
import { LoginPage } from "./pages/Login";
import { ModelsPage } from "./pages/Models";
import { WorkersPage } from "./pages/Workers";

// The pages with the code editor or charts load them (and themselves) on demand.
const ModelEditPage = lazy(() => import("./pages/ModelEdit"));
const ResultPage = lazy(() => import("./pages/Result"));
const VisualizationPage = lazy(() => import("./pages/Visualization"));

const SECTIONS = [
  { to: "/models", label: "Models" },
  { to: "/configurations", label: "Configurations" },
  { to: "/deployments", label: "Deployments" },
  { to: "/datasources", label: "Datasources" },
  { to: "/inferences", label: "Inferences" },
  { to: "/workers", label: "Federated workers" },
];

export function App() {
  return (
    <AuthProvider>
      <Shell />
    </AuthProvider>
  );
}

function Shell() {
  const { user, loading, signOut } = useAuth();
  const location = useLocation();
  const [opened, { toggle }] = useDisclosure();
  if (loading) {
    return (
      <Center h="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  }
  if (!user) return <LoginPage />;
  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 200, breakpoint: "sm", collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between">
          <Group>
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Menu" />
            <Title order={1} size="h3">
              kafkaml
            </Title>
          </Group>
          <Group>
            <Text size="sm" data-testid="signed-in-user">
              Signed in as <b>{user.username}</b>
            </Text>
            <Button variant="default" size="xs" onClick={() => void signOut()}>
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Sections">
        {SECTIONS.map((section) => (
          <NavLink
            key={section.to}
            component={Link}
            to={section.to}
            label={section.label}
            active={location.pathname.startsWith(section.to) || (section.to === "/deployments" && location.pathname.startsWith("/results"))}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        <Suspense fallback={<Loader aria-label="Loading page" />}>
          <Routes>
            <Route path="/" element={<Navigate to="/models" replace />} />
            <Route path="/models" element={<ModelsPage />} />
            <Route path="/models/new" element={<ModelEditPage />} />
            <Route path="/models/:id" element={<ModelEditPage />} />
            <Route path="/configurations" element={<ConfigurationsPage />} />
            <Route path="/configurations/new" element={<ConfigurationEditPage />} />
            <Route path="/configurations/:id" element={<ConfigurationEditPage />} />
            <Route path="/configurations/:id/deploy" element={<DeployPage />} />
            <Route path="/deployments" element={<DeploymentsPage />} />
            <Route path="/results/:id" element={<ResultPage />} />
            <Route path="/datasources" element={<DatasourcesPage />} />
            <Route path="/inferences" element={<InferencesPage />} />
            <Route path="/inferences/new" element={<InferenceCreatePage />} />
            <Route path="/inferences/:id" element={<InferenceDetailPage />} />
            <Route path="/inferences/:id/visualization" element={<VisualizationPage />} />
            <Route path="/workers" element={<WorkersPage />} />
            <Route path="*" element={<Text>There is no page at {location.pathname}.</Text>} />
          </Routes>
        </Suspense>
      </AppShell.Main>
    </AppShell>
  );
}
