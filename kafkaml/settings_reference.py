"""The README's settings table, generated from the settings classes' field descriptions.

Every component lists its pydantic-settings class in SETTINGS_CLASSES; `kafkaml settings-table
--write` rewrites the table between the README markers, and a test fails when they differ.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from pydantic_settings import BaseSettings

# "module:Class" of every settings class in the project, in README order.
SETTINGS_CLASSES = [
    "kafkaml.kafka:KafkaSettings",
    "kafkaml.local:LocalSettings",
    "kafkaml.k8s.settings:KubernetesRunnerSettings",
    "mlcode_executor.settings:ExecutorSettings",
    "model_training.settings:TrainingSettings",
]
START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"


def render_table() -> str:
    """The markdown table of every setting: env name, default, description."""
    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    for target in SETTINGS_CLASSES:
        module, name = target.split(":")
        cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, field in cls.model_fields.items():
            env = (prefix + field_name).upper()
            default = "" if field.is_required() else _shown_default(field.default)
            rows.append(f"| `{env}` | {default} | {field.description or ''} |")
    return "\n".join(rows)


def _shown_default(value: object) -> str:
    if value is None:
        return "(unset)"
    text = str(value)
    root = str(Path(__file__).resolve().parents[1])
    return f"`{text.replace(root, '<project>')}`"


def readme_with_table(readme: str) -> str:
    """`readme` with the text between the markers replaced by the current table."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render_table()}\n{END}{tail}"
