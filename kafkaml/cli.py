"""The `kafkaml` command line."""

from __future__ import annotations

import argparse
import sys

from kafkaml import local, settings_reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafkaml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    stack = commands.add_parser("local", help="run the local stack (broker and services)")
    stack.add_argument("action", choices=["up", "down", "status"])
    table = commands.add_parser("settings-table", help="print the README's settings table")
    table.add_argument("--write", action="store_true", help="rewrite it in README.md")
    commands.add_parser(
        "federated-worker",
        help="train a federated deployment's rounds on local data (settings: KAFKAML_WORKER_*)",
    )
    args = parser.parse_args(argv)
    if args.command == "local":
        return _local(args.action)
    if args.command == "federated-worker":
        return _federated_worker()
    return _settings_table(write=args.write)


def _settings_table(*, write: bool) -> int:
    if not write:
        print(settings_reference.render_table())
        return 0
    readme = local.PROJECT_ROOT / "README.md"
    readme.write_text(settings_reference.readme_with_table(readme.read_text()))
    return 0


def _federated_worker() -> int:
    # Imported here: it needs the training extras (a framework), which producers do not install.
    from model_training.federated.__main__ import main as worker_main

    return worker_main()


def _local(action: str) -> int:
    settings = local.LocalSettings()
    try:
        if action == "up":
            local.up(settings)
        elif action == "down":
            local.down(settings)
        else:
            return 0 if local.status(settings) else 3
    except local.LocalStackError as error:
        print(f"kafkaml local {action}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
