"""Backend test set-up: Django with the test settings, users and API clients, model fixtures.

The project's pytest configuration is shared with components that do not use Django, so the
settings module is chosen here (when nobody chose one) rather than in pytest's ini options.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.kafkaml_backend.test_settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from backend.apps.accounts.services import user_api_token  # noqa: E402
from backend.apps.mlmodels.executor import validate_model_code  # noqa: E402
from backend.testing import PYTORCH_MODEL, TF_CHAIN, TF_MODEL, ModelCode  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with no counted failed logins (the cache is a folder shared by all)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    """Factory of users: `make_user("alice")`, `make_user("root", staff=True)`."""

    def create(username: str, staff: bool = False) -> User:
        return get_user_model().objects.create_user(
            username=username, password="pw-" + username, is_staff=staff
        )

    return create


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user("alice")


@pytest.fixture
def other_user(make_user: Callable[..., User]) -> User:
    return make_user("bob")


def token_client(user: User) -> APIClient:
    """An API client that sends `user`'s API token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user_api_token(user=user)}")
    return client


@pytest.fixture
def api(user: User) -> APIClient:
    """An API client signed in as `user` (alice) with her API token."""
    return token_client(user)


@pytest.fixture
def other_api(other_user: User) -> APIClient:
    return token_client(other_user)


@pytest.fixture
def anonymous() -> Iterator[APIClient]:
    yield APIClient()


def json_of(response: Any) -> Any:
    """The JSON body of a test response (fails the test with the body when it is not JSON)."""
    return response.json()


@pytest.fixture(scope="session")
def summaries() -> dict[str, dict[str, Any]]:
    """The executor's summaries of the sample models, validated once per session (real
    executor, real TensorFlow and PyTorch) and reused by tests that need stored models."""
    samples: dict[str, ModelCode] = {
        "tf": TF_MODEL,
        "pytorch": PYTORCH_MODEL,
        **{f"chain{i}": code for i, code in enumerate(TF_CHAIN)},
    }

    def validate(code: ModelCode) -> dict[str, Any]:
        return validate_model_code(
            framework=code.framework,
            imports=code.imports,
            code=code.code,
            distributed=code.distributed,
        )

    # Each validation is a child process that spends seconds importing its framework: two at a
    # time keep both cores busy.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(samples, pool.map(validate, samples.values()), strict=True))
