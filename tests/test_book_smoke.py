"""The whole book on the smoke profile, exactly as `make book PROFILE=smoke` runs it."""
import os
import subprocess
import sys

import nbformat
import pytest

from helpers import book


@pytest.mark.slow
def test_smoke_book_executes_every_chapter_and_writes_a_site(tmp_path):
    env = dict(os.environ, BOOK_DATA_DIR=str(tmp_path / "data"), BOOK_BUILD_DIR=str(tmp_path / "build"))
    env.pop("BOOK_PROGRESS", None)
    res = subprocess.run([sys.executable, "-m", "helpers", "book", "--profile", "smoke"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "build" / "smoke"
    chapters = book.list_chapters()
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
    assert "**Verdict:" in md
    if book.shutil.which("quarto"):
        assert (out / "_book" / "index.html").exists()
    else:
        site = out / "preview"
        index = (site / "index.html").read_text()
        for ch in chapters:
            assert f"{ch}.html" in index
            assert (site / f"{ch}.html").stat().st_size > 10_000
        assert "needs Quarto" in res.stdout
