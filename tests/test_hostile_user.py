"""Nothing lost to a careless or hostile user (issue 24, second part): direct papermill gets the
command line's checks and profile semantics inside the kernel, profiles are names (never paths),
every kernel has private connection files, and two real processes asking for one build never
leave it half-written."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from helpers.book import runner
from helpers.book.chapters import read_chapter
from helpers.book.kernel import injected_parameters
from helpers.config.profiles import load_profile
from helpers.core.errors import ParameterError
from helpers.core.paths import REPO


# ---- the parameters papermill injects ------------------------------------------------------------

def test_injected_parameters_round_trip_papermills_own_translation():
    from papermill.translators import translate_parameters
    given = {"profile": "smoke", "n_ablation": 8, "ablation_kinds": ["mean", "zero"], "analysis_bf16": False,
             "study_overrides": {"seeds": [0, 1], "et_base_source": None}, "noise": 0.25, "odd": "it's \"x\""}
    cell = translate_parameters("python3", "python", given, "Parameters")
    history = ["profile = 'quick'", cell, "x = 1"]                # the parameters cell, papermill's, a later one
    assert injected_parameters(history) == given
    assert injected_parameters(["profile = 'quick'"]) == {}         # Jupyter: nothing injected
    with pytest.raises(ParameterError, match="only assign values"):
        injected_parameters(["# Parameters\nimport os\n"])
    with pytest.raises(ParameterError, match="not a literal value"):
        injected_parameters(["# Parameters\nn = os.getpid()\n"])


def _papermill(tmp_path, parameters):
    """The chapter executed by papermill itself (its own kernel manager, as the README's command)."""
    import papermill
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(read_chapter("01_task"), str(out), parameters=parameters, cwd=str(tmp_path),
                               progress_bar=False, kernel_name="python3")
    return nbformat.read(out, as_version=4)


@pytest.mark.parametrize("parameters, message", [
    ({"n_examples": 0}, r"n_examples=0 is not accepted: expected an int in \[1, 50\]"),
    ({"n_examples": "abc"}, r"n_examples='abc' is not accepted"),
    ({"nonsense": 3}, r"chapter 01_task has no parameter 'nonsense': accepted parameters are"),
    ({"profile": "../profiles/smoke"}, r"is not a profile name"),
    ({"tokenizer_sources": ["/etc"]}, r"tokenizer of '/etc'"),
])
def test_direct_papermill_is_refused_in_one_line(tmp_path, monkeypatch, parameters, message):
    from papermill.exceptions import PapermillExecutionError
    monkeypatch.setenv("BOOK_BUILD_DIR", str(tmp_path / "build"))
    with pytest.raises(PapermillExecutionError) as e:
        _papermill(tmp_path, parameters)
    assert e.value.ename in ("ParameterError", "SourceUnavailable")
    import re
    assert re.search(message, e.value.evalue)
    assert e.value.traceback == [f"{e.value.ename}: {e.value.evalue}"]         # one line, no traceback
    assert not (tmp_path / "build").exists()                                   # refused before any output


def test_direct_papermill_takes_the_given_profiles_values(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_BUILD_DIR", str(tmp_path / "build"))
    smoke = load_profile("smoke")["parameters"]
    quick = load_profile("quick")["parameters"]
    assert smoke["n_balance"] != quick["n_balance"]
    assert smoke["tokenizer_sources"] != quick["tokenizer_sources"]
    nb = _papermill(tmp_path, {"profile": "smoke", "n_balance": 321, "noise": 0.3})
    card = "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells for o in c.get("outputs", []))
    assert "profile `smoke`" in card
    assert f"tokenizer_sources = `{smoke['tokenizer_sources']}`" in card      # not the chapter file's value
    assert "n_balance = `321`" in card                                          # what was given wins
    assert "Overrides of the profile:** noise = `0.3`" in card                  # a study parameter given directly


# ---- paths -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../profiles/smoke", "/etc/passwd", "smoke/../quick", "", ".hidden", 3, None])
def test_a_profile_is_a_name_never_a_path(name):
    with pytest.raises(ParameterError, match="is not a profile name"):
        load_profile(name)


def test_a_profile_path_on_the_command_line_writes_nothing(tmp_path):
    env = {**os.environ, "BOOK_BUILD_DIR": str(tmp_path / "build")}
    res = subprocess.run([sys.executable, "-m", "helpers", "run", "01", "--profile", "../profiles/smoke"],
                         capture_output=True, text=True, env=env, cwd=REPO)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert not (tmp_path / "build").exists() and not (REPO / "profiles" / "smoke" / "chapters").exists()


# ---- kernels ---------------------------------------------------------------------------------------

def test_every_kernel_has_private_connection_files(tmp_path):
    private = tmp_path / "k"
    private.mkdir()
    km = runner._kernel_manager_class(tmp_path / "kernel.log", private)()
    assert km.transport == "ipc"
    assert Path(km.connection_file).parent == private and Path(km.ip).parent == private


def test_kernel_folders_of_dead_processes_are_removed():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"{runner.KERNEL_DIR_PREFIX}{dead.pid}-"))
    mine = Path(tempfile.mkdtemp(prefix=f"{runner.KERNEL_DIR_PREFIX}{os.getpid()}-"))
    try:
        gone = runner.remove_stale_kernel_folders()
        assert stale in gone and not stale.exists()
        assert mine.exists()                                # a live process's folder is left alone
    finally:
        for d in (stale, mine):
            if d.exists():
                d.rmdir()


def test_two_processes_into_one_build_one_finishes_one_is_refused(tmp_path):
    env = {**os.environ, "BOOK_BUILD_DIR": str(tmp_path / "build")}
    cmd = [sys.executable, "-m", "helpers", "run", "01", "--profile", "smoke"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
             for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    refused = next(r for r in results if r[0] == 2)
    assert "is being built by pid" in refused[2] and "Traceback" not in refused[2]
    chapters = tmp_path / "build" / "smoke" / "chapters"
    nb = nbformat.read(chapters / "01_task.ipynb", as_version=4)
    assert sum(len(c.get("outputs", [])) for c in nb.cells if c.cell_type == "code") > 5
    assert not list(chapters.glob("kernel-ipc*")) and not (chapters / "failed").exists()


# ---- runs: one process trains a run, leftovers of killed writers go ---------------------------------

_TRAIN_ONE = """
import sys, time
sys.path.insert(0, {tests!r})
import helpers.training.runs as r
from test_training import small_config
orig = r.train_run
def slow(cfg, **kw):
    print("TRAINING", flush=True)
    time.sleep(3)                      # long enough for the other process to ask meanwhile
    return orig(cfg, **kw)
r.train_run = slow
run = r.get_run(small_config(), progress=False)
print("DONE", run.path.name, flush=True)
"""


def test_two_processes_asking_for_one_run_train_it_once(fresh_data_dir):
    env = {**os.environ, "BOOK_DATA_DIR": str(fresh_data_dir)}
    code = _TRAIN_ONE.format(tests=str(REPO / "tests"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=REPO) for _ in range(2)]
    outs = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in outs), outs
    assert sum(o.count("TRAINING") for o, _, _ in outs) == 1                 # trained once
    assert len({o.split("DONE")[1].strip() for o, _, _ in outs}) == 1         # both got the same run
    assert sum("waiting for pid" in e and "training run" in e for _, e, _ in outs) == 1


def test_staging_folders_of_killed_writers_are_stale_and_live_ones_are_not(tmp_path):
    from helpers.core import artifacts
    final = tmp_path / "abc"
    mine = artifacts.new_staging_dir(final)                        # this process: being written
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = tmp_path / f".abc.staging-{dead.pid}-x1y2"
    killed.mkdir()
    old_style = tmp_path / ".abc.staging-k3j4_5"                     # named before names carried the pid
    old_style.mkdir()
    assert artifacts.stale_staging_dirs(tmp_path) == sorted([killed, old_style])
    assert mine.exists() and mine not in artifacts.stale_staging_dirs(tmp_path)


def test_clean_removes_only_what_nothing_uses(fresh_data_dir, capsys):
    from helpers.book.cli import main
    from helpers.study import Study
    from helpers.training.runs import run_lock
    runs = fresh_data_dir / "runs"
    used = sorted(Study.from_profile("smoke").run_keys())[0]
    for name in (used, "0123456789abcdef", "fedcba9876543210.partial", "1111222233334444"):
        (runs / name).mkdir(parents=True)
        (runs / name / "model.safetensors").write_bytes(b"x" * 1000)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    staging = runs / f".{used}.staging-{dead.pid}-abc"
    staging.mkdir()
    run_lock(runs / "x").parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (            # a run being trained right now
        "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\ntime.sleep(60)\n"), str(run_lock(runs / "1111222233334444"))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["clean", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"would remove {staging}" in out and "0123456789abcdef" not in out and "add --runs" in out
        assert staging.exists()
        assert main(["clean", "--runs", "--keep", "smoke", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "0123456789abcdef" in out and "fedcba9876543210.partial" in out and "an unfinished run" in out
        assert used not in out.replace(staging.name, "") and "1111222233334444" not in out
        assert all((runs / n).exists() for n in ("0123456789abcdef", "fedcba9876543210.partial"))
        assert main(["clean", "--runs", "--keep", "smoke"]) == 0
        assert sorted(p.name for p in runs.iterdir()) == sorted([".locks", used, "1111222233334444"])
    finally:
        holder.kill()
        holder.wait()
    assert main(["clean", "--runs", "--keep", "nosuch"]) == 2
    assert "unknown profile 'nosuch'" in capsys.readouterr().err


# ---- the CLI's own errors are one line ------------------------------------------------------------

@pytest.mark.parametrize("text, why", [("[]", "a list, not a mapping"), ('{"entries": [{"claim": "x"}]}', "lacks"),
                                       ('{"entries": {}}', "'entries' is not a list"), ("{trunc", "not valid JSON")])
def test_a_damaged_verdicts_file_is_one_line_for_verdicts_and_site(builds, capsys, text, why):
    from helpers.book.cli import main
    (builds / "smoke" / "chapters").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), builds / "smoke" / "chapters" / "01_task.ipynb")
    (builds / "smoke" / "verdicts.json").write_text(text)
    for cmd in (["verdicts", "--profile", "smoke"], ["site", "--profile", "smoke"]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "is damaged" in err and why in err and len(err.strip().splitlines()) == 1


def test_task_out_is_checked_and_a_closed_pipe_is_not_an_error(tmp_path, capsys):
    from helpers.book.cli import main
    assert main(["task", "--n", "3", "--out", str(tmp_path / "no" / "x.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["task", "--n", "3", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["task", "--n", "3", "--out", str(tmp_path / "x.jsonl")]) == 0
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 3
    res = subprocess.run(f"{sys.executable} -m helpers task --n 20000 | head -c 10", shell=True, capture_output=True,
                         text=True, cwd=REPO)
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr


def test_chapter_10_before_chapter_9_is_refused_before_its_kernel(fresh_data_dir):
    from helpers.core.errors import MissingRun
    params = runner.resolve_parameters("10", "smoke")
    with pytest.raises(MissingRun, match=r"entity-tracking runs that chapter 9 trains.*helpers run 09 --profile smoke"):
        runner.preflight("10", params)
    runner.preflight("10", params, trained_earlier=["09_entity"])         # in a book build, chapter 9 runs first
    runner.preflight("10", params, trained_earlier=True)                  # the dry run
    with pytest.raises(MissingRun):
        runner.preflight("10", params, trained_earlier=["02_training"])


# ---- signals at chosen points --------------------------------------------------------------------

def _sigint_default():
    """In the child: Ctrl-C's default disposition.  A process started in the background of a
    non-interactive shell (`cmd &`, as some CI runners start the tests) has SIGINT *ignored*, and its
    children inherit that: a test of Ctrl-C must not depend on how the test run was started."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_chapter(env, running: Path):
    """`run 01 --profile smoke` in its own process group, returned once its kernel executes cells
    (papermill has written the notebook it executes into `running`; on a busy machine the kernel
    can take many seconds to start, and a signal before that is another case)."""
    import time
    p = subprocess.Popen([sys.executable, "-m", "helpers", "run", "01", "--profile", "smoke"], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=_sigint_default)
    line = p.stdout.readline()
    assert "[book] executing 01_task" in line, line + p.stderr.read()
    t0 = time.time()
    while not running.exists() and time.time() - t0 < 120:
        time.sleep(0.2)
    assert running.exists(), "the chapter did not start executing within 120 s"
    time.sleep(2)
    return p


@pytest.mark.parametrize("sig", ["SIGINT", "SIGINT while the kernel starts", "SIGKILL"])
def test_a_signal_mid_chapter_loses_nothing(tmp_path, sig):
    import signal
    env = {**os.environ, "BOOK_BUILD_DIR": str(tmp_path / "build")}
    first = subprocess.run([sys.executable, "-m", "helpers", "run", "01", "--profile", "smoke"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    build = tmp_path / "build" / "smoke"
    chapter = build / "chapters" / "01_task.ipynb"
    before = chapter.read_bytes()
    verdicts = (build / "verdicts.json").read_bytes() if (build / "verdicts.json").exists() else None
    if sig == "SIGINT while the kernel starts":         # nbclient's own handler used to swallow this one
        p = subprocess.Popen([sys.executable, "-m", "helpers", "run", "01", "--profile", "smoke"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                             preexec_fn=_sigint_default)
        assert "[book] executing 01_task" in p.stdout.readline()
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 130 and err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    else:
        p = _start_chapter(env, build / "chapters" / runner.RUNNING / "01_task.ipynb")
    if sig == "SIGINT":                                  # Ctrl-C: the terminal signals the whole group
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 130 and err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
        assert (build / "chapters" / "failed" / "01_task.ipynb").exists()
    elif sig == "SIGKILL":                               # the runner killed outright: no cleanup of its own
        p.kill()
        p.wait()
        try:
            os.killpg(p.pid, signal.SIGKILL)            # and its kernel, as an OOM kill of the group would
        except ProcessLookupError:
            pass
    assert chapter.read_bytes() == before                # the finished chapter, byte for byte
    if verdicts is not None:
        assert (build / "verdicts.json").read_bytes() == verdicts
    again = subprocess.run([sys.executable, "-m", "helpers", "run", "01", "--profile", "smoke"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr           # nothing left blocks the next run
    assert not (build / "chapters" / runner.RUNNING / "01_task.ipynb").exists()
    assert not (build / "chapters" / "failed").exists() or not list((build / "chapters" / "failed").iterdir())
    assert not [d for d in runner.stale_kernel_folders() if f"-{p.pid}-" in d.name]


@pytest.mark.parametrize("argv, message", [
    (["run", "02", "--profile", "smoke", "-p", "pretrained_source", ""], "is empty"),
    (["run", "02", "--profile", "smoke", "-p", "scratch_source", "scratch:"], "is empty"),
    (["run", "02", "--profile", "smoke", "-p", "pretrained_source", "/etc"], "is not a model folder"),
    (["run", "01", "--profile", "smoke", "-p", "tokenizer_sources", '["/etc"]'], "is not a model folder"),
    (["book", "--profile", ""], "is not a profile name"),
    (["verdicts", "--profile", "/etc"], "is not a build folder"),
    (["verdicts", "--profile", "smoke", "--readme", "/nonexistent/README.md"], "no such file"),
    (["clean", "--keep", "../profiles/smoke"], "is not a profile name"),
])
def test_the_cli_refuses_in_one_line(builds, capsys, argv, message):
    from helpers.book.cli import main
    if argv[0] == "verdicts" and "--readme" in argv:
        from helpers.book import scorecard
        from helpers.claims.verdict import verdict
        scorecard.record_verdicts(builds / "smoke", "06_decoding", [verdict("lin-decoding", "m", 0.1, 0, 0.2, "e")],
                                  "smoke")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_ctrl_c_that_reaches_the_kernel_first_is_still_interrupted(capsys):
    """Ctrl-C signals the kernel and the runner together; when the kernel's KeyboardInterrupt is
    what papermill reports, the command still ends with 'interrupted' and status 130."""
    from papermill.exceptions import PapermillExecutionError

    from helpers.book.cli import _chapter_failed
    e = PapermillExecutionError(3, 2, "x = 1", "KeyboardInterrupt", "", ["KeyboardInterrupt"])
    assert _chapter_failed(e) == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    with pytest.raises(PapermillExecutionError):          # a bug in a chapter keeps its traceback
        _chapter_failed(PapermillExecutionError(3, 2, "x", "ZeroDivisionError", "division by zero", []))


def test_a_kernel_killed_from_outside_is_one_line_and_loses_nothing(tmp_path):
    """The kernel alone killed (out of memory, kill -9): the command says so in one line (status 1),
    the chapter executed before is kept."""
    import glob
    import signal
    import time
    env = {**os.environ, "BOOK_BUILD_DIR": str(tmp_path / "build")}
    first = subprocess.run([sys.executable, "-m", "helpers", "run", "01", "--profile", "smoke"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    chapter = tmp_path / "build" / "smoke" / "chapters" / "01_task.ipynb"
    before = chapter.read_bytes()
    p = subprocess.Popen([sys.executable, "-m", "helpers", "run", "01", "--profile", "smoke"], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.readline()
    t0 = time.time()
    while not glob.glob(f"{tempfile.gettempdir()}/{runner.KERNEL_DIR_PREFIX}{p.pid}-*/ipc-1") and time.time() - t0 < 120:
        time.sleep(0.1)
    time.sleep(2)
    kernels = subprocess.run(["pgrep", "-f", f"{runner.KERNEL_DIR_PREFIX}{p.pid}-"], capture_output=True,
                             text=True).stdout.split()
    assert kernels
    for k in kernels:
        os.kill(int(k), signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: the chapter's kernel died")
    assert chapter.read_bytes() == before
