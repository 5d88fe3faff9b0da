"""The `kafkaml` command line."""

from __future__ import annotations

import argparse
import sys

from kafkaml import local


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafkaml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    stack = commands.add_parser("local", help="run the local stack (broker and services)")
    stack.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    if args.command == "local":
        return _local(args.action)
    return 2


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
