"""Read a topic with confluent-kafka (Kafka-ML's pin, 1.8.2) and
isolation.level=read_committed; print the records as one JSON object.

Runs in the compatibility environment. Usage: python confluent_read_committed.py BOOTSTRAP
TOPIC EXPECTED [TIMEOUT_S]
"""

import json
import sys
import time
import uuid

import confluent_kafka
from confluent_kafka import Consumer


def main(bootstrap, topic, expected, timeout_s):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"compat-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records, deadline = [], time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        records.append({"key": (message.key() or b"").hex(), "value": message.value().hex()})
    consumer.close()
    print(
        json.dumps(
            {
                "records": records,
                "version": confluent_kafka.version()[0],
                "librdkafka": confluent_kafka.libversion()[0],
            }
        )
    )


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        float(sys.argv[4]) if len(sys.argv) > 4 else 60.0,
    )
