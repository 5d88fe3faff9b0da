"""`manage.py issue_service_token`: print a token for the control logger."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from backend.apps.accounts.services import service_token_issue


class Command(BaseCommand):
    help = "Print a service token (KAFKAML_SERVICE_TOKEN of the control logger)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(service_token_issue())
