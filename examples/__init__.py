"""Runnable end-to-end scenarios: each drives the whole flow through `kafkaml.client` and the
sinks, and checks its outcome. Run one with `python -m examples.NAME` against a running stack
(`make run`, then `kafkaml login`); `make test` runs each at reduced size."""
