import "@mantine/core/styles.css";
import "@mantine/notifications/styles.css";
import { Anchor, CloseButton, createTheme, MantineProvider, NavLink, type CSSVariablesResolver } from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter } from "react-router";
import { App } from "./App";
import { ApiError } from "./api/client";

// Darker shades than Mantine's defaults, so white-on-color buttons and colored text on white
// reach WCAG AA contrast (axe's color-contrast check).
// Every close button (notifications, dialogs) gets a name for screen readers.
const theme = createTheme({
  primaryShade: 9,
  components: {
    CloseButton: CloseButton.extend({ defaultProps: { "aria-label": "Close" } as Record<string, string> }),
    Anchor: Anchor.extend({ defaultProps: { underline: "always" } }),
    NavLink: NavLink.extend({ defaultProps: { variant: "filled" } }),
  },
});
const cssVariables: CSSVariablesResolver = () => ({ variables: {}, light: { "--mantine-color-dimmed": "#495057", "--mantine-color-error": "#c92a2a" }, dark: {} });

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A refused request (404, 403) is not retried: the user sees the API's message at once.
      retry: (count, error) => !(error instanceof ApiError) && count < 2,
      refetchOnWindowFocus: true,
    },
  },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <MantineProvider defaultColorScheme="light" theme={theme} cssVariablesResolver={cssVariables}>
      <Notifications position="top-right" />
      <QueryClientProvider client={queryClient}>
        <BrowserRouter>
          <App />
        </BrowserRouter>
      </QueryClientProvider>
    </MantineProvider>
  </StrictMode>,
);
