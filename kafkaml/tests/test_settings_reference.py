from kafkaml.local import PROJECT_ROOT
from kafkaml.settings_reference import readme_with_table, render_table


def test_readme_settings_table_matches_the_settings_classes() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert readme == readme_with_table(readme), "run: kafkaml settings-table --write"


def test_every_setting_has_a_description() -> None:
    rows = render_table().splitlines()[2:]
    assert rows
    assert all(not row.endswith("|  |") for row in rows), rows
