"""`python -m examples.connected_car [--framework pytorch|tensorflow] [--cars N] ...`

Needs a Kafka broker (KAFKAML_KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092, e.g. the one of
`make run`) and the `mosquitto` executable (a broker is started on a free port unless --mqtt-port
names one). Prints the training windows, the threshold, precision and recall.
"""

from __future__ import annotations

import argparse
import sys

from examples.connected_car.pipeline import RunConfig, run
from kafkaml.kafka import KafkaSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.connected_car")
    parser.add_argument("--framework", choices=["pytorch", "tensorflow"], default="pytorch")
    parser.add_argument("--cars", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--test-steps", type=int, default=300)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mqtt-port", type=int, default=None)
    args = parser.parse_args(argv)
    config = RunConfig(
        bootstrap=KafkaSettings().bootstrap_servers,
        framework=args.framework,
        cars=args.cars,
        train_steps=args.train_steps,
        test_steps=args.test_steps,
        window=args.window,
        seed=args.seed,
        mqtt_port=args.mqtt_port,
    )
    result = run(config)
    return 0 if min(result.precision, result.recall) >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
