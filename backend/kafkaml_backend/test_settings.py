"""Settings for the backend's tests: a scratch data dir; SQLite, or the PostgreSQL database
that KAFKAML_TEST_DATABASE_URL names (CI runs the suite on both)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import dj_database_url

from backend.kafkaml_backend.settings import *  # noqa: F403
from backend.kafkaml_backend.settings import KAFKAML, STORAGES

_DATA_DIR = Path(tempfile.mkdtemp(prefix="kafkaml-backend-test-"))
atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)

# The executor's dry run of training settings costs seconds per model: the tests that are about
# it switch it on (tests/test_training.py).
KAFKAML = KAFKAML.model_copy(update={"data_dir": _DATA_DIR, "validate_training_settings": False})
SECRET_KEY = "kafkaml-tests-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests

_test_database = os.environ.get("KAFKAML_TEST_DATABASE_URL")
if _test_database:
    DATABASES = {"default": dj_database_url.parse(_test_database)}
    # A name of its own per run, so two runs on one server do not collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_kafkaml_{os.getpid()}"}
else:
    DATABASES = {"default": dj_database_url.parse(f"sqlite:///{_DATA_DIR / 'db.sqlite3'}")}
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    # A file, not Django's default in-memory test database: that one is a shared-cache database,
    # where a writer meets "database table is locked" at once instead of waiting out the timeout
    # (a runner thread and a request writing together failed test_local_runner that way).
    DATABASES["default"]["TEST"] = {"NAME": str(_DATA_DIR / "test.sqlite3")}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(_DATA_DIR / "cache"),
    }
}

STATIC_ROOT = str(_DATA_DIR / "static")
Path(STATIC_ROOT).mkdir()

STORAGES = {
    **STORAGES,
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(_DATA_DIR / "files")},
    },
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(_DATA_DIR / "artifacts")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
