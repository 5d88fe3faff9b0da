"""Run the benchmarks: `python -m bench [name ...]` (all when none is named).

Each benchmark is a module of this package with `run(bootstrap: str) -> None` that prints its
figures. They share one broker: KAFKAML_BENCH_BOOTSTRAP, or a scratch broker on port 29092.
`inference` runs last: its latency figure is a steady-state one, and a broker whose JVM is
minutes old answers transactions several times slower (see `bench/inference.py`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from pathlib import Path

from kafkaml.local import PROJECT_ROOT, scratch_broker

_LAST = {"inference"}


def main() -> int:
    names = sorted(
        (
            m.name
            for m in pkgutil.iter_modules([str(Path(__file__).parent)])
            if not m.name.startswith("_")
        ),
        key=lambda name: (name in _LAST, name),
    )
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("benchmarks", nargs="*", help=f"default: all of {names}")
    chosen = parser.parse_args().benchmarks or names
    given = os.environ.get("KAFKAML_BENCH_BOOTSTRAP")
    if given:
        _run_all(chosen, given)
    else:
        with scratch_broker(29092, PROJECT_ROOT / ".cache" / "bench-kafka") as bootstrap:
            _run_all(chosen, bootstrap)
    return 0


def _run_all(names: list[str], bootstrap: str) -> None:
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(f"bench.{name}").run(bootstrap)


if __name__ == "__main__":
    sys.exit(main())
