"""Semi-supervised: few labels plus an unlabeled stream (self-training with pseudo-labels).

Of the 1,500 training digits only 200 are sent with their labels; the other 1,300 go to the
deployment's `unsupervised_topic` without labels (`send_many_unlabeled`). The job fits on the
labeled digits, then for each round labels the unlabeled digits it is confident about
(probability >= `confidence`) and refits on both. The result is served and answers the
held-out digits.

    python -m examples.semi_supervised            # full size: 30 epochs, 3 rounds
    python -m examples.semi_supervised --small    # what make test runs: 10 epochs, 2 rounds

Bar: every held-out digit answered once, accuracy at least 0.85 (0.70 with --small), from 200
labels. Measured at full size: see docs/examples.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from examples.digits import HELD_OUT, KERAS_CODE, digits
from examples.platform import Platform, from_command_line, run_example
from kafkaml.datasources import RawSink

LABELED = 200


@dataclass(frozen=True)
class Outcome:
    served_accuracy: float
    answered: int


def run(platform: Platform, *, epochs: int, rounds: int) -> Outcome:
    client = platform.client
    model = client.models.create(
        name="digits-semi", framework="tensorflow", imports="import keras", code=KERAS_CODE
    )
    configuration = client.configurations.create(name="digits-semi", model_ids=[model.id])
    deployment = client.deployments.create(
        configuration.id, batch_size=16, epochs=epochs, mode="semi-supervised",
        options={"rounds": rounds, "confidence": 0.9},
    )  # fmt: skip
    x, y = digits()
    train_x, train_y = x[:-HELD_OUT], y[:-HELD_OUT]
    labeled, unlabeled = platform.topic("digits-labeled"), platform.topic("digits-unlabeled")
    with RawSink(platform.bootstrap_servers, labeled, deployment.id, validation_rate=0.1,
                 unsupervised_topic=unlabeled, **platform.sink_options()) as sink:  # fmt: skip
        sink.send_many(train_x[:LABELED], train_y[:LABELED])
        sink.send_many_unlabeled(train_x[LABELED:])
    result = client.results.wait(deployment.result_ids[0], timeout_s=1800)
    assert result.status == "finished", f"training {result.status}: {result.error}"
    inference = client.inferences.create(
        result.id, input_topic=platform.topic("semi-in"), output_topic=platform.topic("semi-out")
    )
    client.inferences.wait(inference.id)
    try:
        answers = client.predict(inference.id, x[-HELD_OUT:], timeout_s=600)
    finally:
        client.inferences.stop(inference.id)
    predicted = np.array([a.argmax for a in answers])
    return Outcome(float(np.mean(predicted == y[-HELD_OUT:])), len(answers))


def check(outcome: Outcome, bar: float) -> None:
    assert outcome.answered == HELD_OUT, f"{outcome.answered} of {HELD_OUT} digits answered"
    assert outcome.served_accuracy >= bar, f"accuracy {outcome.served_accuracy:.3f} < {bar}"


def main(argv: list[str] | None = None) -> int:
    platform, small = from_command_line(__doc__, argv)
    bar = 0.70 if small else 0.85
    outcome = run(platform, epochs=10 if small else 30, rounds=2 if small else 3)
    print(f"{outcome.answered} held-out digits answered, accuracy {outcome.served_accuracy:.3f} "
          f"from {LABELED} labels")  # fmt: skip
    try:
        check(outcome, bar)
    except AssertionError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"OK: accuracy >= {bar}")
    return 0


if __name__ == "__main__":
    run_example(main)
