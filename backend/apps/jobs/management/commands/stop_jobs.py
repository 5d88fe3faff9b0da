"""`manage.py stop_jobs`: end every local job process (`kafkaml local down` runs it)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from backend.kafkaml_backend.runners.local import stop_all_jobs


class Command(BaseCommand):
    help = "Stop every training and inference process the local runner started."

    def handle(self, *args: Any, **options: Any) -> None:
        stopped = stop_all_jobs()
        self.stdout.write(f"job processes stopped: {len(stopped)}")
