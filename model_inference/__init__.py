"""One inference replica: input topic in, predictions out, exactly-once, in micro-batches.

`python -m model_inference` runs a replica configured by `KAFKAML_*` environment variables
(see `model_inference.settings`); `model_inference.service.InferenceService` is the loop.
"""
