"""The Python environment Kafka-ML's users run their clients in, built from PyPI and cached.

Kafka-ML pins kafka-python 2.0.2 (installed without its optional lz4, snappy and zstd codec
packages), confluent-kafka 1.8.2 and avro-python3, and so does this environment.
confluent-kafka 1.8.2 publishes no wheel for CPython 3.11 (its last wheels are for 3.6-3.10),
so it is built from its source release against the system's librdkafka (Debian's
`librdkafka-dev`, 2.0.2, which `.ci/run` installs): the Python client is Kafka-ML's own
release, only the C library under it is newer than the 1.8.2 its wheels bundled.

The environment lives under `.cache/compat-<hash of the pins and the interpreter>`, so a change
of pins builds a new one, and it is built into a temporary folder first and renamed, so an
interrupted build is never taken for a finished one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

from kafkaml.local import PROJECT_ROOT

PINS = ("kafka-python==2.0.2", "confluent-kafka==1.8.2", "avro-python3==1.10.2")
"""Kafka-ML's client libraries, at its pins."""
BUILT_FROM_SOURCE = ("confluent-kafka",)
"""Pins without a wheel for this interpreter: built against the system's librdkafka."""
LIBRDKAFKA_HEADER = Path("/usr/include/librdkafka/rdkafka.h")


def compat_python(cache_dir: Path = PROJECT_ROOT / ".cache") -> Path:
    """The interpreter of the cached environment, built first when it is missing.

    Raises subprocess.CalledProcessError when pip cannot install the pins (no network), and
    FileNotFoundError naming the Debian package when librdkafka's headers are missing.
    """
    key = hashlib.sha256(f"{PINS} {sys.version}".encode()).hexdigest()[:12]
    target = cache_dir / f"compat-{key}"
    python = target / "bin" / "python"
    if python.exists():
        return python
    if not LIBRDKAFKA_HEADER.exists():
        raise FileNotFoundError(
            f"{LIBRDKAFKA_HEADER} is missing: confluent-kafka 1.8.2 is built from source against "
            "the system's librdkafka; install it with `apt-get install librdkafka-dev`"
        )
    building = cache_dir / f"compat-{key}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(building)
    subprocess.run(
        [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "--no-binary", ",".join(BUILT_FROM_SOURCE), *PINS],
        check=True,
    )  # fmt: skip
    try:
        building.rename(target)
    except OSError:  # another process finished first: use its environment
        shutil.rmtree(building, ignore_errors=True)
    return python
