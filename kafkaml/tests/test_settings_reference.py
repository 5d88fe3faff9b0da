import re

from kafkaml.local import PROJECT_ROOT
from kafkaml.settings_reference import SETTINGS_CLASSES, readme_with_table, render_table


def test_readme_settings_table_matches_the_settings_classes() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert readme == readme_with_table(readme), "run: kafkaml settings-table --write"


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
