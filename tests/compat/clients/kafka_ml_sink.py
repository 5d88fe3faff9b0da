"""A data producer as Kafka-ML's users run one: its sink protocol written from the wire format
with Kafka-ML's own libraries (kafka-python 2.0.2, avro-python3), not with kafkaml.

Runs in the compatibility environment. Reads a JSON job from stdin:
{"bootstrap", "control_topic", "topic", "deployment_id", "format": "RAW"|"AVRO",
 "online": bool, "x": [[...]], "y": [...], "unlabeled": [[...]] | null, "unsupervised_topic",
 "validation_rate", "test_rate"}
and prints the control message it sent, as JSON.
"""

import io
import json
import struct
import sys

import avro.io
import avro.schema
from kafka import KafkaProducer

DATA_SCHEME = json.dumps(
    {
        "type": "record",
        "name": "data",
        "fields": [{"name": "features", "type": {"type": "array", "items": "float"}}],
    }
)
LABEL_SCHEME = json.dumps(
    {"type": "record", "name": "label", "fields": [{"name": "class", "type": "int"}]}
)


def avro_bytes(schema, record):
    buffer = io.BytesIO()
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buffer))
    return buffer.getvalue()


def encode(job, x, y):
    if job["format"] == "RAW":
        # What numpy's tobytes() gives for float32 samples and uint8 labels (little-endian).
        return struct.pack(f"<{len(x)}f", *x), bytes([int(y)])
    data, label = avro.schema.parse(DATA_SCHEME), avro.schema.parse(LABEL_SCHEME)
    return avro_bytes(data, {"features": list(map(float, x))}), avro_bytes(label, {"class": int(y)})


def input_config(job, features):
    if job["format"] == "RAW":
        return {
            "data_type": "float32",
            "label_type": "uint8",
            "data_reshape": str(features),
            "label_reshape": "",
        }
    return {"data_scheme": DATA_SCHEME, "label_scheme": LABEL_SCHEME}


def send_all(producer, topic, records):
    """Send and return {partition: [first, end)} of what was written (Kafka-ML's close())."""
    ranges = {}
    for value, key in records:
        metadata = producer.send(topic, value=value, key=key, partition=0).get(30)
        first, _ = ranges.get(metadata.partition, (metadata.offset, metadata.offset))
        ranges[metadata.partition] = (min(first, metadata.offset), metadata.offset + 1)
    return ",".join(f"{topic}:{p}:{s}:{e}" for p, (s, e) in sorted(ranges.items()))


def main():
    job = json.load(sys.stdin)
    producer = KafkaProducer(bootstrap_servers=job["bootstrap"])
    x, y = job["x"], job["y"]
    message = {
        "topic": job["topic"],
        "input_format": job["format"],
        "input_config": input_config(job, len(x[0])),
        "description": "kafka-ml style sink",
        "validation_rate": job.get("validation_rate", 0.1),
        "test_rate": job.get("test_rate", 0.2),
        "total_msg": None,
        "unsupervised_topic": None,
        "dataset_restrictions": "{}",
        "incremental": bool(job.get("online")),
    }
    key = bytes([job["deployment_id"]])  # Kafka-ML writes the deployment id as one byte
    records = [encode(job, sample, label) for sample, label in zip(x, y, strict=True)]
    if job.get("online"):  # announced on the first send, with the bare topic name
        producer.send(job["control_topic"], key=key, value=json.dumps(message).encode())
        producer.flush()
        for value, label in records:
            producer.send(job["topic"], value=value, key=label)
    else:
        message["topic"] = send_all(producer, job["topic"], records)
        message["total_msg"] = len(records)
        if job.get("unlabeled"):
            unlabeled = [(encode(job, sample, 0)[0], b"\x00") for sample in job["unlabeled"]]
            message["unsupervised_topic"] = send_all(producer, job["unsupervised_topic"], unlabeled)
        producer.send(job["control_topic"], key=key, value=json.dumps(message).encode())
    producer.flush()
    producer.close()
    print(json.dumps(message))


if __name__ == "__main__":
    main()
