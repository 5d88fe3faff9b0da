"""WSGI entry point: `gunicorn backend.kafkaml_backend.wsgi:application` from the project root."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.kafkaml_backend.settings")
application = get_wsgi_application()
