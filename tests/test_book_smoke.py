"""The whole book on the smoke profile, exactly as `make book PROFILE=smoke` runs it."""
import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from helpers.book.chapters import list_chapters


@pytest.mark.slow
def test_smoke_book_executes_every_chapter_and_writes_a_site(smoke_book):
    _, build, res = smoke_book
    assert res.returncode == 0, res.stderr[-3000:]
    out = build / "smoke"
    chapters = list_chapters()
    for ch in chapters:
        nb = nbformat.read(out / "chapters" / f"{ch}.ipynb", as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], ch
        # the run card names the profile, and figures were drawn
        texts = " ".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
        assert "Produced by profile `smoke`" in texts, ch
        assert any("image/png" in o.get("data", {}) for o in outputs), ch
        # no progress-bar noise in the pages
        streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        assert "it/s" not in streams, ch
    nb2 = nbformat.read(out / "chapters" / "02_training.ipynb", as_version=4)
    md = " ".join(str(o.get("data", {}).get("text/markdown", "")) for c in nb2.cells
                  if c.cell_type == "code" for o in c.outputs)
    assert "Verdict: **" in md
    # the kernel's own log messages (e.g. jupyter's TCP warning) never reach the user's terminal
    assert "IPKernelApp" not in res.stderr and "without encryption" not in res.stderr
    if shutil.which("quarto"):
        assert (out / "_book" / "index.html").exists()
    else:
        site = out / "preview"
        index = (site / "index.html").read_text()
        for ch in chapters:
            assert f"{ch}.html" in index
            assert (site / f"{ch}.html").stat().st_size > 10_000
        assert "needs Quarto" in res.stdout


@pytest.mark.slow
def test_a_corrupt_run_stops_a_chapter_with_one_message(smoke_book, tmp_path):
    """A run whose files no longer match their checksums stops chapter 3 with one message naming
    the file and what to do (CorruptArtifact, caught before or inside the kernel), exit 2."""
    data, build, res = smoke_book
    assert res.returncode == 0
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    for run in (copy / "runs").iterdir():              # every run chapter 3 could read
        if (run / "metrics.json").exists():
            (run / "metrics.json").write_text("{}")
    env = dict(os.environ, BOOK_DATA_DIR=str(copy), BOOK_BUILD_DIR=str(tmp_path / "build"))
    r = subprocess.run([sys.executable, "-m", "helpers", "run", "03", "--profile", "smoke"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "does not match its checksum" in r.stderr and "delete" in r.stderr, r.stderr[-1000:]
