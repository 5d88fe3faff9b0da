"""Process settings for long-running stream processors (`python -m model_inference`).

Python's cyclic garbage collector runs after every 700 net allocations of container objects,
and a stream processor allocates tens of thousands per batch (one `Message` per record, plus
lists and tuples). Each batch's objects live a little while, so they reach the oldest generation,
whose full collections then walk every object of the process: with PyTorch loaded that was
about 180,000 objects, 100-170 ms per collection, and 0.5-0.9 s of every 2.3 s of inference at
200,000 records/s (measured with `gc.callbacks` in the inference benchmark, 2026-12-01).
"""

from __future__ import annotations

import gc

# Well above one batch's net allocations (10,000 records), so a batch's objects are freed by
# their reference counts before a collection sees them; cyclic garbage is still collected.
_YOUNG_THRESHOLD = 100_000


def tune_collector_for_streaming() -> None:
    """Keep the cyclic collector off the per-record path; call it once start-up is done.

    Collects what start-up left behind, then freezes every surviving object (framework modules,
    the loaded model) out of the collector's reach, and raises the young generation's threshold.
    Process-wide: only for processes whose one job is the stream.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG_THRESHOLD, middle, old)


def refreeze() -> None:
    """After a large long-lived object graph was replaced (a swapped model), in a tuned process.

    Unfreezes, so that a full collection can free the old graph's reference cycles (a Keras
    model has many), then freezes what is left. One full collection: about 0.1-0.2 s with a
    framework loaded. Does nothing where `tune_collector_for_streaming` was not called.
    """
    if gc.get_freeze_count() == 0:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
