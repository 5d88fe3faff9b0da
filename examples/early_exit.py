"""Early exit: an edge / cloud chain on digits; the edge answers what it is sure of and
forwards the rest upward.

Two Keras sub-models form one distributed model: the edge tier (64 pixels -> 32 hidden units ->
10-class exit) and the cloud tier (the edge's 32 hidden units -> 10 classes). They are trained
together as one chain (mode `distributed`, one job). Then each tier is served: the edge
inference answers a digit itself when its exit is confident (max probability >= `limit`) and
otherwise forwards its hidden units, as float32 bytes under the same key, to the upper topic,
where the cloud inference answers it. Every input gets exactly one answer, from one tier.

    python -m examples.early_exit            # full size: 20 epochs
    python -m examples.early_exit --small    # what make test runs: 6 epochs

Bar: every held-out digit answered exactly once across both tiers, some by each tier, and the
combined accuracy at least 0.90 (0.75 with --small). Measured at full size: docs/examples.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from examples.digits import HELD_OUT, digits
from examples.platform import Platform, from_command_line, run_example
from kafkaml.client import Inference, PredictionReader, send_inputs, unique_keys
from kafkaml.datasources import RawSink
from kafkaml.kafka import KafkaSettings

LIMIT = 0.9
CLOUD_CODE = """\
keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                  keras.layers.Dense(10, activation="softmax")], name="cloud")
"""
EDGE_CODE = """\
inputs = keras.Input((64,))
hidden = keras.layers.Dense(32, activation="relu")(inputs)
exit_ = keras.layers.Dense(10, activation="softmax")(hidden)
keras.Model(inputs, [hidden, exit_], name="edge")
"""


@dataclass(frozen=True)
class Outcome:
    answered_by_edge: int
    answered_by_cloud: int
    accuracy: float
    edge_test_accuracy: float
    cloud_test_accuracy: float


def run(platform: Platform, *, epochs: int) -> Outcome:
    client = platform.client
    cloud = client.models.create(
        name="digits-cloud",
        framework="tensorflow",
        imports="import keras",
        code=CLOUD_CODE,
        distributed=True,
    )
    edge = client.models.create(name="digits-edge", framework="tensorflow", imports="import keras",
                                code=EDGE_CODE, distributed=True, upper_id=cloud.id)  # fmt: skip
    configuration = client.configurations.create(name="digits-chain", model_ids=[cloud.id])
    options = {"optimizer": "adam", "learning_rate": 0.005,
               "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}  # fmt: skip
    deployment = client.deployments.create(
        configuration.id, batch_size=32, epochs=epochs, mode="distributed", options=options
    )
    x, y = digits()
    topic = platform.topic("digits-chain")
    with RawSink(platform.bootstrap_servers, topic, deployment.id, validation_rate=0.1,
                 test_rate=0.15, **platform.sink_options()) as sink:  # fmt: skip
        sink.send_many(x[:-HELD_OUT], y[:-HELD_OUT])
    results = {r.model_id: r for r in
               (client.results.wait(i, timeout_s=1800) for i in deployment.result_ids)}  # fmt: skip
    failed = [f"{r.model_name}: {r.status} {r.error}" for r in results.values()
              if r.status != "finished"]  # fmt: skip
    assert not failed, f"training did not finish: {failed}"
    upper, edge_out, cloud_out = (platform.topic(n) for n in ("chain-up", "edge-out", "cloud-out"))
    served = [
        client.inferences.create(results[cloud.id].id, input_topic=upper, output_topic=cloud_out),
        client.inferences.create(results[edge.id].id, input_topic=platform.topic("chain-in"),
                                 output_topic=edge_out, upper_topic=upper, limit=LIMIT),
    ]  # fmt: skip
    try:
        for inference in served:
            client.inferences.wait(inference.id)
        answers = _ask(platform, served[1], [edge_out, cloud_out], x[-HELD_OUT:])
    finally:
        for inference in served:
            client.inferences.stop(inference.id)
    predicted = np.array([a.argmax for a in answers])
    return Outcome(
        answered_by_edge=sum(a.topic == edge_out for a in answers),
        answered_by_cloud=sum(a.topic == cloud_out for a in answers),
        accuracy=float(np.mean(predicted == y[-HELD_OUT:])),
        edge_test_accuracy=_accuracy_of(results[edge.id].test_metrics),
        cloud_test_accuracy=_accuracy_of(results[cloud.id].test_metrics),
    )


def _ask(platform: Platform, edge: Inference, answer_topics: list[str], rows: np.ndarray) -> list:  # type: ignore[type-arg]
    """Send rows to the edge; read each row's one answer from whichever tier gave it."""
    kafka = KafkaSettings(bootstrap_servers=platform.bootstrap_servers)
    keys = unique_keys(len(rows))
    with PredictionReader(kafka, answer_topics) as reader:
        send_inputs(kafka, edge.input_topic, rows, keys, input_format=edge.input_format,
                    input_config=edge.input_config)  # fmt: skip
        return reader.read(keys, timeout_s=600)


def _accuracy_of(metrics: dict) -> float:  # type: ignore[type-arg]
    """The accuracy among a tier's test metrics (named with or without the tier's prefix)."""
    return float(next((v for k, v in metrics.items() if k.endswith("accuracy")), float("nan")))


def check(outcome: Outcome, bar: float) -> None:
    total = outcome.answered_by_edge + outcome.answered_by_cloud
    assert total == HELD_OUT, f"{total} of {HELD_OUT} digits answered"
    assert outcome.answered_by_edge > 0, "the edge answered nothing itself"
    assert outcome.answered_by_cloud > 0, "the edge forwarded nothing to the cloud"
    assert outcome.accuracy >= bar, f"combined accuracy {outcome.accuracy:.3f} < {bar}"


def main(argv: list[str] | None = None) -> int:
    platform, small = from_command_line(__doc__, argv)
    bar = 0.75 if small else 0.90
    outcome = run(platform, epochs=6 if small else 20)
    print(f"answered by the edge: {outcome.answered_by_edge}, forwarded to and answered by the "
          f"cloud: {outcome.answered_by_cloud}; combined accuracy {outcome.accuracy:.3f} "
          f"(test accuracy edge exit {outcome.edge_test_accuracy:.3f}, "
          f"cloud {outcome.cloud_test_accuracy:.3f})")  # fmt: skip
    try:
        check(outcome, bar)
    except AssertionError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"OK: each digit answered once, by one tier; accuracy >= {bar}")
    return 0


if __name__ == "__main__":
    run_example(main)
