"""`manage.py ensure_admin`: the local stack's admin user, created once."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand

from backend.apps.accounts.services import admin_ensure


class Command(BaseCommand):
    help = (
        "Create the admin user if missing: password from KAFKAML_ADMIN_PASSWORD, or random "
        "and printed once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default=os.environ.get("KAFKAML_ADMIN_USER", "admin"))

    def handle(self, *args: Any, **options: Any) -> None:
        given = os.environ.get("KAFKAML_ADMIN_PASSWORD") or None
        password = admin_ensure(username=options["username"], password=given)
        if password is None:
            self.stdout.write(f"admin user {options['username']!r} exists")
        elif given:
            self.stdout.write(
                f"admin user {options['username']!r} created (password from KAFKAML_ADMIN_PASSWORD)"
            )
        else:
            self.stdout.write(
                f"admin user {options['username']!r} created, password: {password}"
                "  (shown only this once)"
            )
