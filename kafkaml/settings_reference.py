"""The settings table of docs/settings.md, generated from the settings classes' field
descriptions.

Every component lists its pydantic-settings class in SETTINGS_CLASSES; `kafkaml settings-table
--write` rewrites the table between the page's markers, and a test fails when they differ.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic_settings import BaseSettings

# "module:Class" of every settings class in the project, in the table's order.
SETTINGS_CLASSES = [
    "kafkaml.kafka:KafkaSettings",
    "kafkaml.client.settings:ClientSettings",
    "kafkaml.local:LocalSettings",
    "kafkaml.sandbox:SandboxSettings",
    "kafkaml.k8s.settings:KubernetesRunnerSettings",
    "mlcode_executor.settings:ExecutorSettings",
    "backend.kafkaml_backend.config:BackendSettings",
    "kafka_control_logger.settings:LoggerSettings",
    "mqtt_bridge.settings:BridgeSettings",
    "model_inference.settings:InferenceSettings",
    "model_inference.settings:JobApiSettings",
    "model_training.settings:TrainingSettings",
    "model_training.federated.settings:FederatedWorkerSettings",
]
# The page that holds the table, between the markers.
TABLE_PAGE = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"


@dataclass
class Setting:
    """One environment variable, with every component that reads it."""

    env: str
    default: str
    description: str
    readers: list[str] = field(default_factory=list)


def settings() -> dict[str, Setting]:
    """Every setting of the project by variable name, in the table's order."""
    found: dict[str, Setting] = {}
    for target in SETTINGS_CLASSES:
        module, name = target.split(":")
        cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, info in cls.model_fields.items():
            env = (prefix + field_name).upper()
            default = "" if info.is_required() else _shown_default(info.default)
            setting = found.setdefault(env, Setting(env, default, info.description or ""))
            setting.readers.append(module.split(".")[0])
    return found


def conflicting_defaults() -> dict[str, set[str]]:
    """Variables that two components read with different defaults (a bug to fix)."""
    seen: dict[str, set[str]] = {}
    for target in SETTINGS_CLASSES:
        module, name = target.split(":")
        cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, info in cls.model_fields.items():
            default = "" if info.is_required() else _shown_default(info.default)
            seen.setdefault((prefix + field_name).upper(), set()).add(default)
    return {env: values for env, values in seen.items() if len(values) > 1}


def render_table() -> str:
    """The markdown table of every setting: env name, default, readers, description."""
    rows = ["| variable | default | read by | what it sets |", "|---|---|---|---|"]
    for setting in settings().values():
        readers = ", ".join(dict.fromkeys(setting.readers))
        rows.append(f"| `{setting.env}` | {setting.default} | {readers} | {setting.description} |")
    return "\n".join(rows)


def _shown_default(value: object) -> str:
    if value is None:
        return "(unset)"
    text = str(value)
    root = str(Path(__file__).resolve().parents[1])
    return f"`{text.replace(root, '<project>')}`"


def page_with_table(page: str) -> str:
    """`page` with the text between the markers replaced by the current table."""
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render_table()}\n{END}{tail}"
