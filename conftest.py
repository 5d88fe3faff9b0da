from __future__ import annotations

import pytest

pytest_plugins = ["kafkaml.testing"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fault drills last, in their order: their timing checks then meet no other test pass that
    `make test` runs beside this one (the database pass) and no start-up of the session."""
    items.sort(key=lambda item: item.get_closest_marker("drill") is not None)
