"""Each example in examples/ at reduced size against the real stack (broker, backend, local
runner, training and inference jobs), asserting the bar its docstring states."""

from __future__ import annotations

import pytest

from examples import digits, early_exit, online, semi_supervised, susy
from examples.connected_car import pipeline as connected_car
from examples.platform import Platform
from kafkaml.client import Client
from kafkaml.testing import Stack
from mqtt_bridge.testing import mosquitto_binary

pytestmark = pytest.mark.stack


@pytest.fixture
def platform(kafkaml_stack: Stack) -> Platform:
    client = Client(
        kafkaml_stack.url,
        username=kafkaml_stack.username,
        password=kafkaml_stack.password,
        bootstrap_servers=kafkaml_stack.bootstrap_servers,
    )
    return Platform(client, kafkaml_stack.bootstrap_servers, kafkaml_stack.control_topic)


def test_digits_trains_keras_and_pytorch_and_serves_the_better_one_above_its_bar(
    platform: Platform,
) -> None:
    outcome = digits.run(platform, epochs=4)
    digits.check(outcome, bar=0.80)


def test_online_training_snapshots_and_the_running_inference_swaps_to_the_newest(
    platform: Platform,
) -> None:
    outcome = online.run(platform, window=150, more_windows=3)
    online.check(outcome, bar=0.75)


def test_susy_in_avro_trains_and_serves_above_its_bar(platform: Platform) -> None:
    outcome = susy.run(platform, count=4000, epochs=4)
    susy.check(outcome, bar=0.75)


def test_early_exit_edge_answers_or_forwards_each_digit_and_the_cloud_answers_the_rest(
    platform: Platform,
) -> None:
    outcome = early_exit.run(platform, epochs=6)
    early_exit.check(outcome, bar=0.75)


def test_semi_supervised_learns_from_few_labels_and_an_unlabeled_stream(
    platform: Platform,
) -> None:
    outcome = semi_supervised.run(platform, epochs=10, rounds=2)
    semi_supervised.check(outcome, bar=0.70)


@pytest.mark.skipif(
    mosquitto_binary() is None, reason="needs mosquitto (apt-get install mosquitto)"
)
def test_connected_car_autoencoders_trained_on_the_bridged_stream_flag_failing_cars(
    platform: Platform,
) -> None:
    scores = connected_car.run(platform, connected_car.SMALL)

    assert [s.framework for s in scores] == ["tensorflow", "pytorch"]
    for outcome in scores:
        assert outcome.scored == 40 * 30
        assert 0.2 < outcome.anomaly_share < 0.8, outcome  # both kinds are there to be told apart
        assert outcome.precision >= connected_car.SMALL_BAR, outcome
        assert outcome.recall >= connected_car.SMALL_BAR, outcome
