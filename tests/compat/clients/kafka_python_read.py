"""Read a topic the way Kafka-ML's consumers do (kafka-python 2.0.2, default settings), and
print what came back as one JSON object: the records, or the error that stopped the reading.

Runs in the compatibility environment (tests/compat/environment.py), not in kafkaml's.
Usage: python kafka_python_read.py BOOTSTRAP TOPIC EXPECTED [TIMEOUT_S]
"""

import json
import sys
import time

from kafka import KafkaConsumer


def main(bootstrap, topic, expected, timeout_s):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    records, deadline = [], time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for message in consumer:
                records.append(
                    {
                        "partition": message.partition,
                        "offset": message.offset,
                        "key": message.key.hex() if message.key is not None else None,
                        "value": message.value.hex() if message.value is not None else None,
                        "headers": [[name, value.hex()] for name, value in message.headers or []],
                    }
                )
    except Exception as error:  # the answer is the error itself
        print(json.dumps({"records": records, "error": f"{type(error).__name__}: {error}"}))
        return
    finally:
        consumer.close()
    print(json.dumps({"records": records, "error": None}))


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        float(sys.argv[4]) if len(sys.argv) > 4 else 60.0,
    )
