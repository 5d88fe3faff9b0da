"""`python backend/manage.py reconcile_jobs`: record local job processes that ended unwatched."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from backend.kafkaml_backend.runners.local import reconcile


class Command(BaseCommand):
    help = (
        "Check the local runner's job processes against the operating system: those that ended "
        "while no backend watched them fail their still-active results and inferences."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        gone = reconcile()
        self.stdout.write(f"ended: {' '.join(map(str, gone)) or 'none'}")
