"""The MQTT bridge: MQTT topic filters -> Kafka topics (RAW/JSON/AVRO mapping), at-least-once."""
