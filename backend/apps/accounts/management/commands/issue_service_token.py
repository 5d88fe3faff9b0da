"""`manage.py issue_service_token [--output FILE]`: a token for the control logger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from backend.apps.accounts.services import service_token_issue


class Command(BaseCommand):
    help = (
        "Print a service token (the control logger's KAFKAML_SERVICE_TOKEN), or write it to "
        "--output (readable by the owner only) for KAFKAML_SERVICE_TOKEN_FILE."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--output", type=Path, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        token = service_token_issue()
        output: Path | None = options["output"]
        if output is None:
            self.stdout.write(token)
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        output.touch(mode=0o600)
        output.chmod(0o600)  # an existing file keeps its mode on touch
        output.write_text(token)
        self.stdout.write(f"service token written to {output}")
