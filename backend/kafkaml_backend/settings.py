"""Django settings of the kafkaml backend, built from `BackendSettings` (the `KAFKAML_` names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url

from backend.kafkaml_backend.config import BackendSettings
from kafkaml.kafka import KafkaSettings

KAFKAML = BackendSettings()
KAFKA = KafkaSettings()

SECRET_KEY = KAFKAML.resolved_secret_key()
DEBUG = KAFKAML.debug
ALLOWED_HOSTS = [host.strip() for host in KAFKAML.allowed_hosts.split(",") if host.strip()]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "backend.apps.accounts",
    "backend.apps.mlmodels",
    "backend.apps.training",
    "backend.apps.datasources",
    "backend.apps.inferences",
    "backend.apps.jobs",
    "backend.apps.processes",
    "backend.apps.visualization",
    "backend.apps.federated",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "backend.kafkaml_backend.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "backend.kafkaml_backend.urls"
WSGI_APPLICATION = "backend.kafkaml_backend.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES: dict[str, Any] = {
    "default": dj_database_url.parse(KAFKAML.resolved_database_url(), conn_max_age=60)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (API workers, runner threads, live test servers) wait instead of
    # failing at once. IMMEDIATE: a transaction takes the write lock when it begins; a deferred
    # one that reads first and writes later meets "database is locked" at once, without waiting,
    # when another writer got in between (seen in inference_stop under load).
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(KAFKAML.data_dir / "files")},
    },
    # Trained and imported model files; swap this backend for an object store.
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(KAFKAML.data_dir / "artifacts")},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
STATIC_URL = "static/"
STATIC_ROOT = str(KAFKAML.data_dir / "static")
# Serve app static files (Swagger UI) straight from the installed packages, no collectstatic.
WHITENOISE_USE_FINDERS = True
# whitenoise serves the collected UI from here; it warns at every start when it is missing.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
# Artifacts and uploads are the backend's alone (the data dir itself is 0700).
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
# The built web UI (frontend/dist) at the site root; index.html for its routes (spa.py).
if KAFKAML.frontend_dir.is_dir():
    WHITENOISE_ROOT = str(KAFKAML.frontend_dir)
# Vite names its assets by content hash: they never change under one name.
WHITENOISE_IMMUTABLE_FILE_TEST = r"^/assets/"
DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024
# Multipart bodies carry files Django streams to disk; bounded as a whole (BodySizeLimitMiddleware).
KAFKAML_MAX_UPLOAD_BYTES = KAFKAML.max_upload_bytes
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
CSRF_FAILURE_VIEW = "backend.kafkaml_backend.errors.csrf_failure"
CSRF_TRUSTED_ORIGINS = [
    origin.strip() for origin in KAFKAML.csrf_trusted_origins.split(",") if origin.strip()
]
# Shared by every gunicorn worker (a per-process cache would let each count its own failed
# logins): files in the data dir.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(KAFKAML.data_dir / "cache"),
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header turns a missing credential into 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "backend.kafkaml_backend.auth.UserTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "backend.kafkaml_backend.schema.ErrorAutoSchema",
    "EXCEPTION_HANDLER": "backend.kafkaml_backend.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": None,
    "DEFAULT_PARSER_CLASSES": [
        "backend.kafkaml_backend.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "kafkaml API",
    "DESCRIPTION": "Models, configurations, training deployments and results, datasources and "
    "streaming inferences of kafkaml. Errors always have the shape "
    '`{"message": str, "extra": {...}}`.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come with the package, not from a CDN: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "VisualizationTypeEnum": "backend.apps.visualization.models.VisualizationType",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
