"""The connected-car example at reduced size on a real Mosquitto and Kafka, both frameworks.

Bars (README.md of the example): at full size (100 cars x 300 steps, `python -m
examples.connected_car`) precision and recall >= 0.8 each; at the reduced size run here, with
about 2,000 training readings, precision >= 0.8 and recall >= 0.7.
"""

from __future__ import annotations

import pytest

from examples.connected_car.pipeline import RunConfig, run
from mqtt_bridge.testing import Mosquitto


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_autoencoder_on_the_bridged_stream_flags_failing_cars(
    framework: str, kafka_bootstrap: str, mosquitto: Mosquitto
) -> None:
    config = RunConfig(
        bootstrap=kafka_bootstrap,
        framework=framework,
        cars=30,
        train_steps=100,
        test_steps=100,
        window=500,
        mqtt_port=mosquitto.port,
    )

    result = run(config)

    assert result.scored == 3000
    assert result.trained_on > 1500
    assert result.precision >= 0.8, result
    assert result.recall >= 0.7, result
