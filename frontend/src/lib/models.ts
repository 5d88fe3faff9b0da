import type { Schemas } from "../api/client";

export type FrameworkFilter = "all" | Schemas["FrameworkEnum"];

export function filterModels<T extends Pick<Schemas["MLModelOutput"], "name" | "description" | "framework">>(
  models: T[],
  search: string,
  framework: FrameworkFilter,
): T[] {
  const needle = search.trim().toLowerCase();
  return models.filter(
    (model) =>
      (framework === "all" || model.framework === framework) &&
      (!needle || model.name.toLowerCase().includes(needle) || (model.description ?? "").toLowerCase().includes(needle)),
  );
}

export type ModelSummary = {
  input_shape: (number | null)[];
  output_shape: (number | null)[] | (number | null)[][];
  params: number | null;
  layers: Record<string, unknown>[];
};

export const TEMPLATES: Record<Schemas["FrameworkEnum"], { imports: string; code: string }> = {
  tensorflow: {
    imports: "import keras",
    code: [
      "# A classifier of 4 features into 3 classes; `model` must be a compiled Keras model.",
      "model = keras.Sequential([",
      "    keras.Input((4,)),",
      "    keras.layers.Dense(16, activation='relu'),",
      "    keras.layers.Dense(3, activation='softmax'),",
      "])",
      "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy',",
      "              metrics=['accuracy'])",
    ].join("\n"),
  },
  pytorch: {
    imports: "import torch\nfrom ignite.metrics import Accuracy, Loss",
    code: [
      "# `model` is an nn.Module with loss_fn(), optimizer() and metrics() (which includes 'loss').",
      "class Net(torch.nn.Module):",
      "    def __init__(self):",
      "        super().__init__()",
      "        self.layers = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),",
      "                                          torch.nn.Linear(16, 3))",
      "",
      "    def forward(self, x):",
      "        return self.layers(x)",
      "",
      "    def loss_fn(self):",
      "        return torch.nn.CrossEntropyLoss()",
      "",
      "    def optimizer(self):",
      "        return torch.optim.Adam(self.parameters(), lr=0.01)",
      "",
      "    def metrics(self):",
      "        return {'loss': Loss(self.loss_fn()), 'accuracy': Accuracy()}",
      "",
      "model = Net()",
    ].join("\n"),
  },
};

/**
 * The executor's refusal as the model page shows it, once: "Code, line 20: syntax error: ...".
 * The executor's message may already end with where it happened ("(code, line 20)", Python's
 * own wording); that tail is dropped when the line is shown in front.
 */
export function modelErrorText(message: string, line: number | null, field: "code" | "imports"): string {
  if (!line) return message;
  return `${field === "imports" ? "Imports" : "Code"}, line ${line}: ${withoutLine(message, line)}`;
}

/** The executor's message without its "(code, line N)" tail: the editor marks the line itself. */
export function withoutLine(message: string, line: number | null): string {
  return line ? message.replace(new RegExp(`\\s*\\((?:code|imports|<[^>]*>), line ${line}\\)\\s*$`), "") : message;
}
