import { python } from "@codemirror/lang-python";
import { linter, lintGutter, type Diagnostic } from "@codemirror/lint";
import CodeMirror, { EditorView } from "@uiw/react-codemirror";
import { useMemo } from "react";

type Props = {
  label: string;
  value: string;
  onChange: (value: string) => void;
  /** 1-based line the executor refused, shown as an error at that line. */
  errorLine?: number | null;
  errorMessage?: string;
  minHeight?: string;
};

/** Python editor (CodeMirror 6) that marks the executor's error at its line. */
export default function CodeEditor({ label, value, onChange, errorLine, errorMessage, minHeight = "120px" }: Props) {
  const extensions = useMemo(() => {
    const marks = linter(
      (view): Diagnostic[] => {
        if (!errorLine || errorLine > view.state.doc.lines) return [];
        const line = view.state.doc.line(errorLine);
        return [{ from: line.from, to: Math.max(line.to, line.from + 1), severity: "error", message: errorMessage ?? "Error" }];
      },
      { delay: 0 },
    );
    return [python(), lintGutter(), marks, EditorView.contentAttributes.of({ "aria-label": label })];
  }, [errorLine, errorMessage, label]);
  return (
    <div data-testid={`editor-${label}`} data-error-line={errorLine ?? undefined} style={{ border: "1px solid var(--mantine-color-gray-4)", borderRadius: 4 }}>
      <CodeMirror value={value} onChange={onChange} extensions={extensions} minHeight={minHeight} basicSetup={{ foldGutter: false }} />
    </div>
  );
}
