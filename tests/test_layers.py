"""The import graph runs one way: no module imports a higher layer, no cycles (scripts/import_graph.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "import_graph.py"


def check(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), "--check"], check=False, capture_output=True, text=True, timeout=60
    )


def test_every_import_runs_downwards() -> None:
    run = check(SCRIPT)
    assert run.returncode == 0, run.stderr
    assert "every one runs downwards" in run.stdout


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: config importing the CLI is reported."""
    copy = tmp_path / "scripts"
    copy.mkdir()
    package = tmp_path / "camctl"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text("from camctl.cli import main\n")
    (package / "cli.py").write_text("from camctl.config import load\n")
    (copy / "import_graph.py").write_text(SCRIPT.read_text())
    run = check(copy / "import_graph.py")
    assert run.returncode == 1
    assert "camctl.config (config) imports camctl.cli (interface), a higher layer" in run.stderr
    assert "import cycle" in run.stderr


def test_the_check_catches_a_circle_between_packages_of_one_layer(tmp_path: Path) -> None:
    """No module imports itself back, yet the two packages need each other: a package circle."""
    copy = tmp_path / "scripts"
    copy.mkdir()
    (copy / "import_graph.py").write_text(SCRIPT.read_text())
    files = {
        "__init__.py": "",
        "media/__init__.py": "",
        "media/session.py": "from camctl.analysis.ring import Ring\n",
        "media/frames.py": "",
        "analysis/__init__.py": "",
        "analysis/ring.py": "",
        "analysis/reader.py": "from camctl.media.frames import Frame\n",
    }
    for name, text in files.items():
        (tmp_path / "camctl" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "camctl" / name).write_text(text)
    run = check(copy / "import_graph.py")
    assert run.returncode == 1
    assert "package cycle: camctl.analysis -> camctl.media -> camctl.analysis" in run.stderr
    assert "import cycle" not in run.stderr and "higher layer" not in run.stderr
