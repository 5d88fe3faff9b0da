"""SUSY: 18-feature binary classification sent in AVRO, in the shape of the TensorFlow I/O
Kafka tutorial's SUSY data.

The real file (5 M collision events, UCI) cannot be downloaded here, so a seeded generator
makes events of the same shape: 8 low-level kinematic features (lepton momenta and angles,
missing energy), whose distributions shift with the class, and 10 high-level features derived
from them non-linearly, as the physicists' features are. Samples and labels go out as Avro
records with named fields (AvroSink, the schemas in the control message); a Keras model trains
on them, is served, and classifies held-out events sent as Avro too.

    python -m examples.susy            # full size: 50,000 events, 10 epochs
    python -m examples.susy --small    # what make test runs: 4,000 events, 4 epochs

Bar: test accuracy and served accuracy on the held-out events at least 0.78 (0.75 with
--small); every held-out event answered once. Measured at full size: see docs/examples.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import numpy as np

from examples.platform import Platform, from_command_line, run_example
from kafkaml.datasources import AvroSink

FEATURES = [
    "lepton_1_pT", "lepton_1_eta", "lepton_1_phi", "lepton_2_pT", "lepton_2_eta",
    "lepton_2_phi", "missing_energy_magnitude", "missing_energy_phi", "MET_rel",
    "axial_MET", "M_R", "M_TR_2", "R", "MT2", "S_R", "M_Delta_R", "dPhi_r_b", "cos_theta_r1",
]  # fmt: skip
DATA_SCHEMA = {"type": "record", "name": "Event",
               "fields": [{"name": name, "type": "float"} for name in FEATURES]}  # fmt: skip
LABEL_SCHEMA = {"type": "record", "name": "Label", "fields": [{"name": "signal", "type": "float"}]}
HELD_OUT = 500
KERAS_CODE = """\
model = keras.Sequential([
    keras.Input((18,)),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.Adam(0.002), loss="binary_crossentropy",
              metrics=["accuracy"])
"""


@dataclass(frozen=True)
class Outcome:
    test_accuracy: float
    served_accuracy: float
    answered: int


def events(count: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """`count` events (18 float32 features) and their labels (1.0 signal, 0.0 background)."""
    rng = np.random.default_rng(seed)
    signal = rng.integers(0, 2, count).astype(np.float32)
    pt = rng.gamma(2.0 + 1.5 * signal[:, None], 0.5, (count, 2))
    eta = rng.normal(0.0, 1.2 - 0.3 * signal[:, None], (count, 2))
    phi = rng.uniform(-np.pi, np.pi, (count, 3))
    missing = rng.gamma(1.5 + 1.5 * signal, 0.6)
    low = np.column_stack([pt[:, 0], eta[:, 0], phi[:, 0], pt[:, 1], eta[:, 1], phi[:, 1],
                           missing, phi[:, 2]])  # fmt: skip
    dphi = np.cos(phi[:, 0] - phi[:, 2])
    high = np.column_stack([
        missing / (pt.sum(axis=1) + 1), missing * dphi, np.sqrt(pt[:, 0] * pt[:, 1]) * 2,
        np.hypot(pt[:, 0], missing), np.abs(eta[:, 0] - eta[:, 1]), pt.max(axis=1) * missing,
        np.log1p(pt.sum(axis=1) + missing), np.cosh(eta[:, 0] - eta[:, 1]) / 10, dphi,
        np.tanh(eta[:, 0] * eta[:, 1]),
    ])  # fmt: skip
    return np.column_stack([low, high]).astype(np.float32), signal


def run(platform: Platform, *, count: int, epochs: int) -> Outcome:
    client = platform.client
    model = client.models.create(
        name="susy", framework="tensorflow", imports="import keras", code=KERAS_CODE
    )
    configuration = client.configurations.create(name="susy", model_ids=[model.id])
    deployment = client.deployments.create(configuration.id, batch_size=128, epochs=epochs)
    x, y = events(count + HELD_OUT)
    schemas = {"data_scheme": json.dumps(DATA_SCHEMA), "label_scheme": json.dumps(LABEL_SCHEMA)}
    with AvroSink(platform.bootstrap_servers, platform.topic("susy"), deployment.id,
                  validation_rate=0.1, test_rate=0.1, **schemas,
                  **platform.sink_options()) as sink:  # fmt: skip
        sink.send_many(x[:count], y[:count])
    result = client.results.wait(deployment.result_ids[0], timeout_s=1800)
    assert result.status == "finished", f"training {result.status}: {result.error}"
    inference = client.inferences.create(
        result.id, input_topic=platform.topic("susy-in"), output_topic=platform.topic("susy-out")
    )
    assert inference.input_format == "AVRO"  # pre-filled from the training datasource
    client.inferences.wait(inference.id)
    try:
        answers = client.predict(inference.id, x[count:], timeout_s=600)
    finally:
        client.inferences.stop(inference.id)
    predicted = np.array([a.values[0] > 0.5 for a in answers])
    return Outcome(
        test_accuracy=result.test_metrics["accuracy"],
        served_accuracy=float(np.mean(predicted == (y[count:] > 0.5))),
        answered=len(answers),
    )


def check(outcome: Outcome, bar: float) -> None:
    assert outcome.answered == HELD_OUT, f"{outcome.answered} of {HELD_OUT} events answered"
    assert outcome.test_accuracy >= bar, f"test accuracy {outcome.test_accuracy:.3f} < {bar}"
    assert outcome.served_accuracy >= bar, f"served accuracy {outcome.served_accuracy:.3f}"


def main(argv: list[str] | None = None) -> int:
    platform, small = from_command_line(__doc__, argv)
    bar = 0.75 if small else 0.78
    outcome = run(platform, count=4000 if small else 50_000, epochs=4 if small else 10)
    print(f"test accuracy {outcome.test_accuracy:.3f}; served: {outcome.answered} held-out "
          f"events answered, accuracy {outcome.served_accuracy:.3f}")  # fmt: skip
    try:
        check(outcome, bar)
    except AssertionError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"OK: accuracies >= {bar}")
    return 0


if __name__ == "__main__":
    run_example(main)
