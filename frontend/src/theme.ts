import { Anchor, CloseButton, createTheme, NavLink, NumberInput, type CSSVariablesResolver } from "@mantine/core";

// Darker shades than Mantine's defaults, so white-on-color buttons and colored text on white
// reach WCAG AA contrast (axe's color-contrast check).
// Every close button (notifications, dialogs) gets a name for screen readers.
// Number inputs keep what the user typed: Mantine would clamp an out-of-range value on blur
// (0 becomes 1, silently); the form's check or the API then says what is wrong at the field.
export const theme = createTheme({
  primaryShade: 9,
  components: {
    CloseButton: CloseButton.extend({ defaultProps: { "aria-label": "Close" } as Record<string, string> }),
    Anchor: Anchor.extend({ defaultProps: { underline: "always" } }),
    NavLink: NavLink.extend({ defaultProps: { variant: "filled" } }),
    NumberInput: NumberInput.extend({ defaultProps: { clampBehavior: "none" } }),
  },
});

export const cssVariables: CSSVariablesResolver = () => ({ variables: {}, light: { "--mantine-color-dimmed": "#495057", "--mantine-color-error": "#c92a2a" }, dark: {} });
