"""Digits: a Keras and a PyTorch model trained side by side on one stream, compared, and the
better one served.

scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes, no download): the
first 1,500 are streamed with a RawSink into one deployment of a configuration that holds both
models; the remaining 297 are sent to the better model's inference and every answer is matched
to its input by key.

    python -m examples.digits            # full size: 20 epochs
    python -m examples.digits --small    # what make test runs: 4 epochs

The Keras model is also downloaded as ONNX (converted once by the backend's executor) and run
here with onnxruntime, no TensorFlow, on the held-out digits.

Bar: each model's test accuracy, the served model's accuracy and the ONNX model's accuracy on
the held-out digits are at least 0.90 (0.80 with --small). Measured at full size (2-core
machine, 2026-12-03): see docs/examples.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits

from examples.platform import Platform, from_command_line, run_example
from kafkaml.client import Result
from kafkaml.datasources import RawSink
from kafkaml.frameworks.onnx import OnnxModel

HELD_OUT = 297
KERAS_CODE = """\
model = keras.Sequential([
    keras.Input((64,)),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(0.005),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""
TORCH_IMPORTS = "import torch\nfrom ignite.metrics import Accuracy, Loss"
TORCH_CODE = """\
class Digits(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    def forward(self, x):
        return self.layers(x)
    def loss_fn(self):
        return torch.nn.CrossEntropyLoss()
    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.005)
    def metrics(self):
        return {"loss": Loss(self.loss_fn()), "accuracy": Accuracy()}
model = Digits()
"""


@dataclass(frozen=True)
class Outcome:
    test_accuracy: dict[str, float]  # per framework, from the training job's test split
    served: str  # the framework whose model was served
    served_accuracy: float  # on the held-out digits, from the inference's answers
    answered: int
    onnx_accuracy: float  # the Keras model downloaded as ONNX, run here with onnxruntime


def digits() -> tuple[np.ndarray, np.ndarray]:
    """Images as 64 floats in [0, 1], labels as int64, in a fixed shuffled order."""
    data = load_digits()
    order = np.random.default_rng(7).permutation(len(data.target))
    x = (data.data[order] / 16.0).astype(np.float32)
    return x, data.target[order].astype(np.int64)


def run(platform: Platform, *, epochs: int) -> Outcome:
    client = platform.client
    models = [
        client.models.create(name="digits-keras", framework="tensorflow",
                             imports="import keras", code=KERAS_CODE),
        client.models.create(name="digits-torch", framework="pytorch",
                             imports=TORCH_IMPORTS, code=TORCH_CODE),
    ]  # fmt: skip
    configuration = client.configurations.create(
        name="digits", model_ids=[m.id for m in models], description="Keras vs PyTorch"
    )
    deployment = client.deployments.create(configuration.id, batch_size=32, epochs=epochs)
    _step(f"models {models[0].id} (Keras) and {models[1].id} (PyTorch), configuration "
          f"{configuration.id}, deployment {deployment.id} ({epochs} epochs)")  # fmt: skip
    x, y = digits()
    topic = platform.topic("digits")
    with RawSink(platform.bootstrap_servers, topic, deployment.id, validation_rate=0.1,
                 test_rate=0.15, **platform.sink_options()) as sink:  # fmt: skip
        sink.send_many(x[:-HELD_OUT], y[:-HELD_OUT])
    _step(f"{len(x) - HELD_OUT:,} digits sent to topic {topic!r}; training both models")
    results = [
        client.results.wait(i, timeout_s=1800, progress=_report) for i in deployment.result_ids
    ]
    _check_finished(results)
    best = max(results, key=lambda r: r.test_metrics["accuracy"])
    keras = next(r for r in results if r.framework == "tensorflow")
    inference = client.inferences.create(
        best.id, input_topic=platform.topic("digits-in"), output_topic=platform.topic("digits-out")
    )
    _step(f"serving result {best.id} ({best.framework}) as inference {inference.id}")
    client.inferences.wait(inference.id)
    _step(f"inference {inference.id} running; sending {HELD_OUT} held-out digits to it")
    try:
        answers = client.predict(inference.id, x[-HELD_OUT:], timeout_s=600)
    finally:
        client.inferences.stop(inference.id)
    predicted = np.array([a.argmax for a in answers])
    _step("downloading the Keras model as ONNX")
    return Outcome(
        test_accuracy={r.framework: r.test_metrics["accuracy"] for r in results},
        served=best.framework,
        served_accuracy=float(np.mean(predicted == y[-HELD_OUT:])),
        answered=len(answers),
        onnx_accuracy=_onnx_accuracy(platform, keras, x[-HELD_OUT:], y[-HELD_OUT:]),
    )


def _onnx_accuracy(platform: Platform, result: Result, x: np.ndarray, y: np.ndarray) -> float:
    """The result's model downloaded as ONNX and run here with onnxruntime, no framework."""
    model = OnnxModel(platform.client.results.artifact(result.id, artifact_format="onnx"))
    return float(np.mean(np.argmax(model.predict_batch(x), axis=1) == y))


def check(outcome: Outcome, bar: float) -> None:
    """Raises AssertionError naming what fell short."""
    for framework, accuracy in outcome.test_accuracy.items():
        assert accuracy >= bar, f"{framework} test accuracy {accuracy:.3f} < {bar}"
    assert outcome.answered == HELD_OUT, f"{outcome.answered} of {HELD_OUT} digits answered"
    assert outcome.served_accuracy >= bar, (
        f"served {outcome.served} model: accuracy {outcome.served_accuracy:.3f} < {bar}"
    )
    assert outcome.onnx_accuracy >= bar, f"Keras model as ONNX: {outcome.onnx_accuracy:.3f}"


def _step(text: str) -> None:
    print(f"- {text}", file=sys.stderr)


def _report(result: Result) -> None:
    epochs = len(result.epochs)
    print(f"  result {result.id} ({result.framework}): {result.status}, "
          f"{epochs} epoch{'' if epochs == 1 else 's'}", file=sys.stderr)  # fmt: skip


def _check_finished(results: list[Result]) -> None:
    failed = [f"result {r.id} ({r.framework}): {r.status}: {r.error}" for r in results
              if r.status != "finished"]  # fmt: skip
    if failed:
        raise AssertionError("training did not finish: " + "; ".join(failed))


def main(argv: list[str] | None = None) -> int:
    platform, small = from_command_line(__doc__, argv)
    bar = 0.80 if small else 0.90
    outcome = run(platform, epochs=4 if small else 20)
    for framework, accuracy in outcome.test_accuracy.items():
        print(f"{framework:<12} test accuracy {accuracy:.3f}")
    print(f"served: {outcome.served}, {outcome.answered} held-out digits answered, "
          f"accuracy {outcome.served_accuracy:.3f}")  # fmt: skip
    print(f"Keras model as ONNX (onnxruntime here): accuracy {outcome.onnx_accuracy:.3f}")
    try:
        check(outcome, bar)
    except AssertionError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"OK: every accuracy >= {bar}")
    return 0


if __name__ == "__main__":
    run_example(main)
