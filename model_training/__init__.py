"""One training job: waits for its control message, reads the announced data from Kafka once,
trains in the deployment's mode (classic, incremental, early-exit chain, semi-supervised),
reports metrics after every epoch and uploads the trained model.

Run as `python -m model_training` with `KAFKAML_` settings (see settings.py).
"""
