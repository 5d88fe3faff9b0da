"""WSGI entry point: `gunicorn backend.kafkaml_backend.wsgi:application` from the project root."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.kafkaml_backend.settings")
application = get_wsgi_application()

# The local runner's jobs outlive a backend restart: find out at start-up which of them ended
# meanwhile, and keep checking (children started by this process are also watched directly).
if settings.KAFKAML.runner == "local":
    from backend.kafkaml_backend.runners.local import start_reconciler

    start_reconciler()
elif settings.KAFKAML.runner == "kubernetes":
    import threading

    from backend.kafkaml_backend.runners import kubernetes

    # Marks results and inferences failed when their Jobs fail, pods are OOMKilled or rollouts
    # stall; it lives as long as this gunicorn worker.
    kubernetes.start_reconciler(kubernetes.cluster_api_client(), threading.Event())
