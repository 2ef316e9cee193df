"""The library, the chapters (jupytext percent scripts), the tests, tools and benchmarks pass the
same linter (ruff, configured in pyproject.toml)."""
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_passes_on_library_chapters_tests_and_tools():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    res = subprocess.run([ruff, "check", "src", "chapters", "tests", "tools", "benchmarks"],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]
