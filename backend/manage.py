#!/usr/bin/env python
"""Django's command-line utility for the kafkaml backend; run from anywhere."""

import os
import sys
from pathlib import Path


def main() -> None:
    # The backend is the package `backend` of the project root; make that root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.kafkaml_backend.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
