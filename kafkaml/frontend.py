"""The web UI's build (frontend/ -> frontend/dist) and its API types, for `make run` and tests.

`build()` runs `npm ci` only when package-lock.json changed since the last install and
`vite build` only when a source changed since the last build: each step leaves a stamp with the
hash of what it was made from. `api_types()` renders the backend's OpenAPI document
(`manage.py spectacular`) into TypeScript with openapi-typescript, the text that
`frontend/src/api/schema.d.ts` must hold (`make api-types` writes it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from kafkaml.settings import PROJECT_ROOT

FRONTEND = PROJECT_ROOT / "frontend"
API_TYPES = FRONTEND / "src" / "api" / "schema.d.ts"
# What a build is made from; node_modules is covered by the lock file.
BUILD_INPUTS = (
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
    "postcss.config.cjs",
)
INSTALL_STAMP = "node_modules/.kafkaml-lock-sha256"
BUILD_STAMP = "dist/.kafkaml-source-sha256"


class FrontendBuildError(RuntimeError):
    """npm or a build step failed; the message holds the end of its output."""


def tree_hash(root: Path, names: Iterable[str]) -> str:
    """sha256 over the relative paths and bytes of every file under `names` (missing: skipped)."""
    digest = hashlib.sha256()
    for name in names:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "test-results" not in file.parts:
                digest.update(str(file.relative_to(root)).encode() + b"\0")
                digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def _stamped(root: Path, stamp: str, value: str) -> bool:
    path = root / stamp
    return path.is_file() and path.read_text().strip() == value


def _npm(root: Path, *args: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise FrontendBuildError("npm is not installed: the web UI needs Node.js 20+ and npm")
    result = subprocess.run(
        [npm, *args], cwd=root, text=True, capture_output=True, check=False,
        env={**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_fund": "false"},
    )  # fmt: skip
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise FrontendBuildError(f"npm {' '.join(args)} failed:\n{tail}")


def install(root: Path = FRONTEND, out: Callable[[str], None] = print) -> bool:
    """`npm ci` unless node_modules was installed from this package-lock.json; True if it ran."""
    lock = tree_hash(root, ["package-lock.json"])
    if _stamped(root, INSTALL_STAMP, lock):
        return False
    out("web UI: npm ci")
    _npm(root, "ci", "--no-audit", "--no-fund", "--loglevel=error")
    (root / INSTALL_STAMP).write_text(lock)
    return True


def build(root: Path = FRONTEND, out: Callable[[str], None] = print) -> bool:
    """Install, then `vite build` unless dist/ was built from these sources; True if it built."""
    install(root, out)
    sources = tree_hash(root, BUILD_INPUTS)
    if _stamped(root, BUILD_STAMP, sources) and (root / "dist" / "index.html").is_file():
        return False
    out("web UI: vite build")
    _npm(root, "run", "build", "--silent")
    (root / BUILD_STAMP).write_text(sources)
    return True


def openapi_schema(path: Path) -> None:
    """Write the backend's OpenAPI document (YAML) to `path` (a scratch data dir beside it)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "backend.kafkaml_backend.settings",
        "KAFKAML_DATA_DIR": str(path.parent / "data"),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "backend" / "manage.py"), "spectacular",
         "--file", str(path)],
        cwd=PROJECT_ROOT, env=env, text=True, capture_output=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise FrontendBuildError(f"manage.py spectacular failed:\n{result.stderr[-3000:]}")


def api_types(root: Path = FRONTEND) -> str:
    """The TypeScript that openapi-typescript makes of the backend's current OpenAPI document."""
    install(root, print)
    with tempfile.TemporaryDirectory(prefix="kafkaml-openapi-") as folder:
        schema = Path(folder) / "openapi.yaml"
        openapi_schema(schema)
        result = subprocess.run(
            [str(root / "node_modules" / ".bin" / "openapi-typescript"), str(schema)],
            cwd=root, text=True, capture_output=True, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise FrontendBuildError(f"openapi-typescript failed:\n{result.stderr[-3000:]}")
    return result.stdout


def main(argv: list[str]) -> int:
    """`python -m kafkaml.frontend build | api-types`."""
    command = argv[0] if argv else "build"
    if command == "build":
        build()
    elif command == "api-types":
        API_TYPES.write_text(api_types())
        print(f"wrote {API_TYPES.relative_to(PROJECT_ROOT)}")
    else:
        print("usage: python -m kafkaml.frontend build | api-types", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
