"""Connected-car anomaly detection: a seeded fleet publishes over MQTT, the bridge carries it into
Kafka, an autoencoder trained incrementally on the normal stream flags failing cars."""
