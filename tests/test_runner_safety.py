"""Nothing lost to a careless user (issue 24, first part): one process at a time per build (a
lock naming its holder), a chapter's executed notebook replaced only by a run that finished (an
error or Ctrl-C keeps the earlier one, and the interrupted notebook apart), timings written whole
and a damaged timings file not fatal."""
import json
import os
import subprocess
import sys

import nbformat
import pytest

from helpers.book import runner
from helpers.book.timings import read_timings, record_timing
from helpers.core.errors import BuildBusy


def test_a_second_process_is_refused_with_the_holder_named(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom helpers.book.runner import build_lock\n"
        f"with build_lock({str(tmp_path)!r}):\n    print('locked', flush=True)\n    time.sleep(30)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BuildBusy, match=rf"is being built by pid {holder.pid} .*since .*run this command again"):
            with runner.build_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with runner.build_lock(tmp_path) as folder:        # a killed holder leaves nothing that blocks
        assert folder == tmp_path


def test_the_lock_is_released_and_leftovers_of_a_killed_run_removed(tmp_path):
    stale = tmp_path / "chapters" / runner.RUNNING / "02_training.ipynb"
    stale.parent.mkdir(parents=True)
    stale.write_text("{half")
    with runner.build_lock(tmp_path):
        assert not stale.exists()
        with pytest.raises(BuildBusy):                  # the same process asking twice is refused too
            with runner.build_lock(tmp_path):
                pass
    with runner.build_lock(tmp_path):
        pass


def _fake_papermill(monkeypatch, fail):
    import papermill

    def execute(nb, out, **kw):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")], metadata={"new": True})
        nbformat.write(nb, out)                          # papermill writes as it goes
        if fail:
            raise fail
    monkeypatch.setattr(papermill, "execute_notebook", execute)


@pytest.mark.parametrize("fail", [KeyboardInterrupt(), RuntimeError("a cell raised")])
def test_an_interrupted_chapter_keeps_the_one_executed_before(tmp_path, monkeypatch, fail, capsys):
    out_dir = tmp_path / "chapters"
    out_dir.mkdir()
    good = out_dir / "01_task.ipynb"
    nbformat.write(nbformat.v4.new_notebook(metadata={"good": True}), good)
    _fake_papermill(monkeypatch, fail)
    with pytest.raises(type(fail)):
        runner.execute_chapter("01", {"profile": "smoke"}, out_dir)
    assert nbformat.read(good, as_version=4).metadata.get("good") is True
    failed = out_dir / runner.FAILED / "01_task.ipynb"
    assert nbformat.read(failed, as_version=4).metadata.get("new") is True
    assert not (out_dir / runner.RUNNING / "01_task.ipynb").exists()
    assert "the chapter executed before is kept" in capsys.readouterr().err
    assert sorted(p.name for p in out_dir.glob("*.ipynb")) == ["01_task.ipynb"]       # what site renders
    # the next run that finishes replaces it and clears the failed copy
    _fake_papermill(monkeypatch, None)
    assert runner.execute_chapter("01", {"profile": "smoke"}, out_dir) == good
    assert nbformat.read(good, as_version=4).metadata.get("new") is True and not failed.exists()
    assert "01_task" in read_timings(tmp_path)


def _fake_chapter_with_verdicts(monkeypatch, fail, value):
    """papermill whose kernel records a verdict (as show_verdicts does, through the runner's
    environment) and then finishes or fails."""
    import papermill

    from helpers.book import scorecard
    from helpers.claims.verdict import verdict

    def execute(nb, out, **kw):
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), out)
        v = verdict("lin-decoding", "m", value, value - 0.1, value + 0.1, "e")
        if os.environ.get(scorecard.STAGING_ENV):
            scorecard.stage_verdicts(os.environ[scorecard.STAGING_ENV], "06_decoding", [v], "smoke")
        else:
            scorecard.record_verdicts(os.environ[scorecard.BUILD_ENV], "06_decoding", [v], "smoke")
        if fail:
            raise fail
    monkeypatch.setattr(papermill, "execute_notebook", execute)


@pytest.mark.parametrize("fail", [KeyboardInterrupt(), RuntimeError("a cell after the verdicts raised")])
def test_verdicts_of_a_chapter_that_did_not_finish_are_not_recorded(tmp_path, monkeypatch, fail):
    from helpers.book import scorecard
    out_dir = tmp_path / "chapters"
    _fake_chapter_with_verdicts(monkeypatch, None, 0.5)
    runner.execute_chapter("06", {"profile": "smoke"}, out_dir)
    first = scorecard.load_verdicts(tmp_path)
    assert [e["value"] for e in first["entries"]] == [0.5]
    _fake_chapter_with_verdicts(monkeypatch, fail, 0.9)            # the rerun's verdict cell ran, then it stopped
    with pytest.raises(type(fail)):
        runner.execute_chapter("06", {"profile": "smoke"}, out_dir)
    assert scorecard.load_verdicts(tmp_path) == first                # the finished run's verdicts, untouched
    assert not list((out_dir / runner.RUNNING).glob("*verdicts*"))
    assert scorecard.STAGING_ENV not in os.environ
    _fake_chapter_with_verdicts(monkeypatch, None, 0.7)             # a rerun that finishes replaces them
    runner.execute_chapter("06", {"profile": "smoke"}, out_dir)
    assert [e["value"] for e in scorecard.load_verdicts(tmp_path)["entries"]] == [0.7]


def test_timings_are_written_whole_and_a_damaged_file_is_not_fatal(tmp_path):
    (tmp_path / "timings.json").write_text('{"01_task": 12.')          # truncated
    assert read_timings(tmp_path) == {}
    record_timing(tmp_path, "02_training", 61.23)
    assert json.loads((tmp_path / "timings.json").read_text()) == {"02_training": 61.2}
    (tmp_path / "timings.json").write_text("[]")
    assert read_timings(tmp_path) == {}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_chapter_that_did_not_finish_is_named_on_the_scorecard(builds):
    from helpers.book import scorecard
    from helpers.claims.verdict import verdict
    build = builds / "smoke"
    scorecard.record_verdicts(build, "02_training", [verdict("lin-decoding", "m", 0.1, 0.0, 0.2, "e")], "smoke")
    assert scorecard.failed_chapters(build) == []
    (build / "chapters" / runner.FAILED).mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), build / "chapters" / runner.FAILED / "03_ablation.ipynb")
    assert scorecard.failed_chapters(build) == ["03_ablation"]
    legend = scorecard.build_legend(scorecard.build_info(build))
    assert "did not finish at its last execution" in legend and "03_ablation" in legend


def test_ctrl_c_is_one_line_not_a_traceback(monkeypatch, capsys):
    from helpers.book import cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_profiles", interrupted)
    assert cli.main(["profiles"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted" and "Traceback" not in err
