"""Online: incremental training on an open-ended stream, and a hot swap of the running
inference to the newer model the stream produced.

A PyTorch model trains indefinitely on windows of an online digits stream (OnlineRawSink: the
control message goes out with the first sample, the topic has no end). Whenever its validation
accuracy does not get worse, the job publishes a snapshot: a new finished result. The first
snapshot is served at once; more windows arrive; the running inference is then swapped to the
newest snapshot, without stopping, and answers the held-out digits again.

    python -m examples.online            # full size: windows of 300 samples
    python -m examples.online --small    # what make test runs: windows of 150, fewer of them

Bar: every held-out digit answered once by each model, and the swapped-in model's accuracy is
at least 0.85 (0.75 with --small). Measured at full size: see docs/examples.md.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from examples.digits import HELD_OUT, TORCH_CODE, TORCH_IMPORTS, digits
from examples.platform import Platform, from_command_line, run_example
from kafkaml.client import Client, Result
from kafkaml.datasources import OnlineRawSink


@dataclass(frozen=True)
class Outcome:
    first_accuracy: float  # the first snapshot, served first
    swapped_accuracy: float  # the newest snapshot, swapped in while running
    snapshots: int
    answered: tuple[int, int]


def run(platform: Platform, *, window: int, more_windows: int) -> Outcome:
    """Serve the first snapshot, stream `more_windows` windows more, then swap to the
    newest snapshot."""
    client = platform.client
    model = client.models.create(
        name="digits-online", framework="pytorch", imports=TORCH_IMPORTS, code=TORCH_CODE
    )
    configuration = client.configurations.create(name="digits-online", model_ids=[model.id])
    options = {"indefinite": True, "monitoring_metric": "accuracy", "change": "up",
               "improvement": 0.0, "window": window}  # fmt: skip
    deployment = client.deployments.create(
        configuration.id, batch_size=32, epochs=5, mode="incremental", options=options
    )
    training = deployment.result_ids[0]
    x, y = digits()
    train_x, train_y = x[:-HELD_OUT], y[:-HELD_OUT]
    test_x, test_y = x[-HELD_OUT:], y[-HELD_OUT:]
    topic = platform.topic("digits-online")
    with OnlineRawSink(platform.bootstrap_servers, topic, deployment.id, validation_rate=0.2,
                       **platform.sink_options()) as sink:  # fmt: skip
        stream = _windows(train_x, train_y, window)
        first = _next_snapshot(client, training, None, sink, stream)
        inference = client.inferences.create(
            first.id, input_topic=platform.topic("online-in"),
            output_topic=platform.topic("online-out"),
        )  # fmt: skip
        client.inferences.wait(inference.id)
        try:
            before = client.predict(inference.id, test_x, timeout_s=600)
            for _ in range(more_windows):
                sink.send_many(*next(stream))
            newest = _next_snapshot(client, training, first.id, sink, stream)
            version = client.inferences.swap(inference.id, newest.id).model_version
            _wait_for_version(client, inference.id, test_x[:5], version)
            after = client.predict(inference.id, test_x, timeout_s=600)
            assert {a.model_version for a in after} == {version}, "answers of the old model"
        finally:
            client.inferences.stop(inference.id)
            client.results.stop(training)  # indefinite training ends only when asked
    return Outcome(
        first_accuracy=_accuracy(before, test_y),
        swapped_accuracy=_accuracy(after, test_y),
        snapshots=len(_snapshots(client, training)),
        answered=(len(before), len(after)),
    )


def _windows(x: np.ndarray, y: np.ndarray, size: int):  # type: ignore[no-untyped-def]
    """Windows of the training digits, reshuffled on each pass: an open-ended stream."""
    rng = np.random.default_rng(3)
    while True:
        order = rng.permutation(len(y))
        for start in range(0, len(y) - size + 1, size):
            chosen = order[start : start + size]
            yield x[chosen], y[chosen]


def _next_snapshot(client: Client, training: int, after: int | None, sink, stream) -> Result:  # type: ignore[no-untyped-def]
    """Stream windows, one at a time, until the job publishes a snapshot newer than `after`."""
    for _ in range(40):
        trained = len(client.results.get(training).epochs)
        sink.send_many(*next(stream))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            newer = [r for r in _snapshots(client, training) if after is None or r.id > after]
            if newer:
                return max(newer, key=lambda r: r.id)
            status = client.results.get(training)
            if status.final:
                raise AssertionError(f"training ended: {status.status}: {status.error}")
            if len(status.epochs) > trained:
                break  # the job trained on this window without a snapshot: send another
            time.sleep(0.5)
    raise AssertionError("no new snapshot after 40 windows")


def _wait_for_version(client: Client, inference: int, probe: np.ndarray, version: str) -> None:
    """Until the replicas answer with the swapped-in model (they poll for the swap)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if {a.model_version for a in client.predict(inference, probe)} == {version}:
            return
    raise AssertionError(f"the inference did not switch to model version {version}")


def _snapshots(client: Client, training: int) -> list[Result]:
    return [r for r in client.results.list() if r.snapshot_of_id == training]


def _accuracy(answers: list, labels: np.ndarray) -> float:  # type: ignore[type-arg]
    return float(np.mean(np.array([a.argmax for a in answers]) == labels))


def check(outcome: Outcome, bar: float) -> None:
    assert outcome.answered == (HELD_OUT, HELD_OUT), f"answered {outcome.answered} of {HELD_OUT}"
    assert outcome.snapshots >= 2, f"{outcome.snapshots} snapshots"
    assert outcome.swapped_accuracy >= bar, f"swapped-in accuracy {outcome.swapped_accuracy:.3f}"


def main(argv: list[str] | None = None) -> int:
    platform, small = from_command_line(__doc__, argv)
    bar = 0.75 if small else 0.85
    outcome = run(platform, window=150 if small else 300, more_windows=3 if small else 6)
    print(f"first snapshot: accuracy {outcome.first_accuracy:.3f}; after the swap: "
          f"{outcome.swapped_accuracy:.3f}; {outcome.snapshots} snapshots")  # fmt: skip
    try:
        check(outcome, bar)
    except AssertionError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"OK: swapped-in accuracy >= {bar}, every input answered once by each model")
    return 0


if __name__ == "__main__":
    run_example(main)
