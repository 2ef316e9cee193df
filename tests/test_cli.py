"""The command line never surprises: the project's own errors print one message and exit 2 without
a traceback (also when a chapter's kernel raised them), unexpected errors keep theirs, a dry run
says what would happen and computes nothing, and runs with overrides go beside the profile's build."""
import os
import re
import subprocess
import sys

import pytest

from helpers.book import cli, runner
from helpers.core.errors import BookError, CorruptArtifact, MissingRun, ParameterError, SourceUnavailable


def helpers_cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "helpers", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)


def assert_one_message(res, *fragments):
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert lines and lines[-1].startswith("error: "), res.stderr
    for f in fragments:
        assert f in res.stderr, (f, res.stderr)


@pytest.mark.parametrize("args,fragments", [
    (["run", "02", "--profile", "nope"], ["unknown profile 'nope'", "quick"]),
    (["run", "99"], ["unknown chapter '99'", "01_task"]),
    (["run", "02", "--profile", "smoke", "-p", "max_steps", "-3"], ["max_steps=-3", "an int in [1, 10000000]"]),
    (["run", "02", "--profile", "smoke", "-p", "grid_n_train", "7"], ["grid_n_train=7", "train_sizes"]),
    (["run", "03", "--profile", "smoke", "-p", "umap_neighbors", "5"], ["no parameter 'umap_neighbors'"]),
    (["book", "--profile", "nope"], ["unknown profile 'nope'"]),
])
def test_bad_input_exits_2_with_one_message(args, fragments):
    assert_one_message(helpers_cli(*args), *fragments)


def test_unavailable_source_stops_before_a_kernel_starts(tmp_path):
    """The paper profile needs GPT-2's weights, which are not cached and the hub is off."""
    res = helpers_cli("run", "02", "--profile", "paper", env={"BOOK_BUILD_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert_one_message(res, "'gpt2'", "not available here", "Hugging Face cache", "from_pretrained")
    assert not (tmp_path / "paper").exists()          # nothing was executed


def test_missing_runs_name_the_command_that_trains_them(tmp_path):
    res = helpers_cli("run", "03", "--profile", "smoke", "-p", "seeds", "[3]",
                      env={"BOOK_DATA_DIR": str(tmp_path / "data"), "BOOK_BUILD_DIR": str(tmp_path / "build")})
    assert_one_message(res, "not trained yet", "python -m helpers run 02 --profile smoke -p seeds '[3]'")
    assert not (tmp_path / "build").exists()


def test_every_project_error_is_a_book_error():
    for cls in (ParameterError, SourceUnavailable, CorruptArtifact, MissingRun):
        assert issubclass(cls, BookError)


def test_unexpected_errors_keep_their_traceback(monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("a bug")
    monkeypatch.setattr(runner, "run_chapter", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["run", "02", "--profile", "smoke"])


def test_a_book_error_raised_inside_a_kernel_is_one_message(capsys):
    class FakeExecutionError(Exception):
        ename, evalue = "MissingRun", "run abc is not cached. Chapter 2 trains them: python -m helpers run 02"
    assert cli._chapter_failed(FakeExecutionError()) == 2
    assert capsys.readouterr().err.strip() == f"error: {FakeExecutionError.evalue}"
    other = FakeExecutionError()
    other.ename = "ZeroDivisionError"
    with pytest.raises(FakeExecutionError):
        cli._chapter_failed(other)


def test_dry_run_reports_parameters_runs_and_time_and_computes_nothing(tmp_path):
    env = {"BOOK_DATA_DIR": str(tmp_path / "data"), "BOOK_BUILD_DIR": str(tmp_path / "build")}
    res = helpers_cli("run", "02", "--profile", "quick", "-p", "seeds", "[0, 1]", "--dry-run", env=env)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "quick+seeds=0,1" in out                       # where the chapter would be written
    assert "seeds=[0, 1]" in out and "pretrained_source='smollm2-135m'" in out
    assert "0 cached" in out and "to train" in out
    assert "training time, roughly:" in out and re.search(r"\d (min|h)\b", out)
    assert "learning rate chosen by the grid" in out       # the curve's lr is not known before the grid
    assert not (tmp_path / "build").exists()
    runs = tmp_path / "data" / "runs"
    assert not runs.exists() or not any(runs.iterdir())     # nothing trained


def test_dry_run_of_the_book_lists_every_chapter():
    res = helpers_cli("book", "--profile", "smoke", "--dry-run")
    assert res.returncode == 0, res.stderr
    for ch in ("01_task", "02_training", "03_ablation", "06_decoding", "07_circuit", "08_cmap", "09_entity", "10_variants"):
        assert f"\n{ch}: " in res.stdout


def test_time_estimate_is_an_upper_bound_at_the_step_cap():
    from helpers.study import Study
    from helpers.training.estimate import UPPER_BOUND_NOTE, estimate_run_seconds
    study = Study.from_profile("quick")
    cfg = study.arm_base("fine-tuned").replace(n_train=512, bf16=True)
    s = estimate_run_seconds(cfg)
    # every step up to the cap, 8 trials x 52 tokens at ~290 tokens/s, plus the evaluations and scoring
    steps_only = cfg.max_steps * cfg.batch_size * 52 / 290
    assert steps_only < s < 1.5 * steps_only
    assert estimate_run_seconds(cfg.replace(max_steps=2 * cfg.max_steps)) > 1.9 * s
    assert estimate_run_seconds(cfg.replace(n_train=32)) == s          # the cap, not N, bounds a run
    assert estimate_run_seconds(cfg.replace(bf16=False)) > 1.5 * s     # fp32: ~155 tokens/s
    assert "upper bound" in UPPER_BOUND_NOTE and "step cap" in UPPER_BOUND_NOTE


def test_calibrate_writes_its_table_and_refuses_a_missing_folder(tmp_path):
    """`python -m helpers calibrate`: every scenario once (1 draw), the table written whole; a
    folder that does not exist is one line, no traceback."""
    out = tmp_path / "calibration.md"
    res = helpers_cli("calibrate", "--draws", "1", "--out", str(out), env={"BOOK_PROGRESS": "0"})
    assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("# Calibration of the verdict rules") and "| `lin-attention-relevance` |" in text
    assert "scenarios, 1 draws each" in res.stdout
    assert_one_message(helpers_cli("calibrate", "--draws", "1", "--out", str(tmp_path / "no" / "x.md")),
                       "does not exist")
    res = helpers_cli("calibrate", "--draws", "0")
    assert res.returncode == 2 and "accepted values are integers >= 1" in res.stderr
