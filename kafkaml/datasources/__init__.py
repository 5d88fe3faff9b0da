"""The producers' SDK: Kafka-ML's sinks, wire-compatible, with an online variant per format.

with RawSink("127.0.0.1:9092", "mnist", deployment_id=1, validation_rate=0.1) as sink:
    sink.send_many(x_train, y_train)
# leaving the block delivers everything and publishes the control message
"""

from kafkaml.datasources.errors import DeliveryError, SinkError
from kafkaml.datasources.sink import KafkaMLSink
from kafkaml.datasources.sinks import (
    AvroSink,
    JsonSink,
    OnlineAvroSink,
    OnlineJsonSink,
    OnlineRawSink,
    RawSink,
)

__all__ = [
    "AvroSink",
    "DeliveryError",
    "JsonSink",
    "KafkaMLSink",
    "OnlineAvroSink",
    "OnlineJsonSink",
    "OnlineRawSink",
    "RawSink",
    "SinkError",
]
