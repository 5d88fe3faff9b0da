"""Federated training: the coordinator (a federated deployment's training job) and the worker
that runs at a data owner's site, exchanging only signed weights, sample counts and metrics."""
