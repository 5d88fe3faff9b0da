"""Runnable end-to-end scenarios of kafkaml."""
