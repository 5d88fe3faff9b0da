import re

from kafkaml.local import PROJECT_ROOT
from kafkaml.settings_reference import (
    SETTINGS_CLASSES,
    TABLE_PAGE,
    conflicting_defaults,
    page_with_table,
    render_table,
)


def test_the_settings_pages_table_matches_the_settings_classes() -> None:
    page = TABLE_PAGE.read_text()
    assert page == page_with_table(page), "run: kafkaml settings-table --write"


def test_every_setting_has_a_description() -> None:
    rows = render_table().splitlines()[2:]
    assert rows
    assert all(not row.endswith("|  |") for row in rows), rows


def test_every_settings_class_in_the_project_is_in_the_table() -> None:
    found = set()
    for path in PROJECT_ROOT.rglob("*.py"):
        relative = path.relative_to(PROJECT_ROOT)
        if relative.parts[0].startswith(".") or "node_modules" in relative.parts:
            continue
        for name in re.findall(r"^class (\w+)\(BaseSettings\)", path.read_text(), re.M):
            module = ".".join(relative.with_suffix("").parts)
            found.add(f"{module}:{name}")
    assert found <= set(SETTINGS_CLASSES), found - set(SETTINGS_CLASSES)


def test_components_reading_the_same_variable_agree_on_its_default() -> None:
    assert conflicting_defaults() == {}
