"""Sandboxed validation of user model code: a fresh child process per request, with a wall-time
limit and a memory limit, reachable as a direct call (local mode) or an HTTP service (Kubernetes).

Importing this package (or `mlcode_executor.client`) imports neither TensorFlow nor PyTorch;
only the sandbox child does.
"""
