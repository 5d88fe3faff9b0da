"""How an example reaches the platform: the stack `kafkaml login` signed in to, or options."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafkaml.cli import credentials_path
from kafkaml.client import Client, KafkamlError
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin
from kafkaml.protocol.control import DEFAULT_CONTROL_TOPIC


@dataclass(frozen=True)
class Platform:
    """A signed-in client, the brokers the sinks write to, and the control topic the backend
    reads (`KAFKA_ML_CONTROL_TOPIC` unless the stack was started with another)."""

    client: Client
    bootstrap_servers: str
    control_topic: str = DEFAULT_CONTROL_TOPIC

    def topic(self, name: str, partitions: int = 1) -> str:
        """A fresh topic for this run, created now (so a consumer can subscribe before the first
        record): runs never read each other's records."""
        topic = f"{name}-{uuid.uuid4().hex[:8]}"
        kafka = KafkaSettings(bootstrap_servers=self.bootstrap_servers)
        ensure_topics(make_admin(kafka), [topic], partitions=partitions)
        return topic

    def sink_options(self) -> dict[str, Any]:
        """What every sink of an example is given: brokers, control topic, quiet."""
        return {"control_topic": self.control_topic, "progress": False}


def from_command_line(doc: str | None, argv: list[str] | None = None) -> tuple[Platform, bool]:
    """The platform named by the options or by `kafkaml login`'s credentials, and whether
    `--small` (the reduced size `make test` runs) was asked for. `doc`, the example's
    docstring, gives `--help` its first paragraph."""
    summary = " ".join((doc or "").split("\n\n")[0].split())
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument("--url", help="backend (default: the one `kafkaml login` signed in to)")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password")
    parser.add_argument("--bootstrap-servers", help="Kafka brokers (default: from login)")
    parser.add_argument("--control-topic", default=DEFAULT_CONTROL_TOPIC)
    parser.add_argument("--small", action="store_true", help="the reduced size make test runs")
    args = parser.parse_args(argv)
    stored = json.loads(credentials_path().read_text()) if credentials_path().exists() else {}
    url = args.url or stored.get("url", "http://127.0.0.1:8000")
    bootstrap = args.bootstrap_servers or stored.get("bootstrap_servers") or "127.0.0.1:9092"
    if args.password:
        client = Client(url, username=args.username, password=args.password,
                        bootstrap_servers=bootstrap)  # fmt: skip
    elif stored.get("token"):
        client = Client(url, token=stored["token"], bootstrap_servers=bootstrap)
    else:
        parser.error("sign in first (`kafkaml login`) or give --password")
    return Platform(client, bootstrap, args.control_topic), args.small


def run_example(main: Callable[[], int]) -> None:
    """Exit with `main`'s code; the API's refusals as a message, not a traceback."""
    try:
        sys.exit(main())
    except KafkamlError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
