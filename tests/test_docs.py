"""The documentation site builds in MkDocs' strict mode: a broken link, a missing anchor or a
page that fails to render fails the suite (the settings table's freshness is checked by
kafkaml/tests/test_settings_reference.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kafkaml.local import PROJECT_ROOT


def test_the_docs_site_builds_strictly_with_no_broken_link(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "settings" / "index.html").exists()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n")
    config = (PROJECT_ROOT / "mkdocs.yml").read_text().replace(".cache/site", "site")
    (tmp_path / "mkdocs.yml").write_text(config)
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert built.returncode != 0
    assert "missing.md" in built.stderr
