"""The book runner: profile and overrides -> checked parameters -> pre-flight -> executed chapters
(papermill) -> site (:mod:`.site`).

``make book PROFILE=quick`` calls :func:`build_book`: every chapter's parameters are resolved and
checked first, then the pre-flight checks run (model sources available here, trained runs present
for the analysis chapters), so that an unknown profile, chapter or parameter, a bad value, a model
that cannot be loaded or a missing run stops **before any kernel starts**, with a message that
names it.  Each chapter is executed by papermill from its in-memory notebook
(:func:`helpers.book.chapters.read_chapter`) into ``_build/<profile>/chapters/``; a run with
overrides goes to its own folder beside the profile's (:func:`build_dir`), never over it.  The
chapters record their verdicts in the build's ``verdicts.json``; after them the runner writes the
scorecard page (``scorecard.qmd``, :mod:`.scorecard`).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from helpers.book.chapters import chapter_needs, chapter_parameters, chapter_path, list_chapters, read_chapter
from helpers.book.scorecard import BUILD_ENV, STAGING_ENV, commit_staged, write_scorecard_page
from helpers.book.timings import record_timing
from helpers.config.parameters import STUDY_PARAMETERS, check_value
from helpers.config.profiles import coerce, load_profile, profile_values
from helpers.core.errors import BuildBusy, MissingRun, ParameterError, SourceUnavailable
from helpers.core.paths import REPO

STUDY_KEY = "study_overrides"      # the parameter through which a chapter receives study overrides
TRAINING_CHAPTER = "02_training"   # the chapter that trains the study's runs
ENTITY_CHAPTER = "09_entity"       # the chapter that trains the entity-tracking runs


# ---- parameters -----------------------------------------------------------------------------------

def parse_cli_value(text: str) -> Any:
    """`-p name value` values: JSON first (numbers, lists, true/false), else a plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def resolve_parameters(chapter: str, profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The papermill parameters of a chapter: ``profile``, the study's overrides (``study_overrides``)
    for a chapter with a study, and the chapter's own parameters (its defaults <- the profile's
    values <- the profile's per-chapter values <- `overrides`), every value checked."""
    overrides = dict(overrides or {})
    name = chapter_path(chapter).stem
    declared = chapter_parameters(name)
    data = load_profile(profile)
    values = profile_values(profile)
    params = {k: v for k, v in declared.items() if k not in ("profile", STUDY_KEY)}
    params.update({k: v for k, v in values.items() if k in params})
    for ch, chapter_values in (data.get("chapters") or {}).items():
        if chapter_path(ch).stem != name:
            continue
        for key, v in (chapter_values or {}).items():
            if key not in params:
                raise ParameterError(f"profile {profile}, chapter {name}: unknown parameter {key!r}; "
                                     f"accepted parameters are {sorted(params)}")
            params[key] = coerce(key, v)
    study_overrides = {}
    accepted = sorted(params) + (list(STUDY_PARAMETERS) if STUDY_KEY in declared else [])
    for key, v in overrides.items():
        if key in params:
            params[key] = coerce(key, v)
        elif key in STUDY_PARAMETERS and STUDY_KEY in declared:
            study_overrides[key] = coerce(key, v)
        else:
            raise ParameterError(f"chapter {name} has no parameter {key!r}: accepted parameters are {accepted}")
    from helpers.config.parameters import absolute_sources
    params = {k: absolute_sources(k, v) for k, v in params.items()}
    study_overrides = {k: absolute_sources(k, v) for k, v in study_overrides.items()}
    for key, v in params.items():
        check_value(key, v)
    out = {"profile": profile, **params}
    if STUDY_KEY in declared:
        from helpers.study import Study
        Study.from_profile(profile, **study_overrides)          # checks the study's values and relations
        out[STUDY_KEY] = study_overrides
    return out


# ---- where a build goes ------------------------------------------------------------------------------

def build_dir(profile: str, overrides: dict[str, Any] | None = None) -> Path:
    """``$BOOK_BUILD_DIR/<profile>`` (default ``_build/<profile>``); with overrides,
    ``_build/<profile>+<name=value,...>`` (or a hash of them when that name would be long)."""
    from helpers.config.parameters import RUNTIME_PARAMETERS
    root = Path(os.environ.get("BOOK_BUILD_DIR", REPO / "_build"))
    overrides = {k: v for k, v in (overrides or {}).items() if k not in RUNTIME_PARAMETERS}
    if not overrides:
        return root / profile
    text = ",".join(f"{k}={json.dumps(v, separators=(',', ''))}" for k, v in sorted(overrides.items()))
    slug = re.sub(r"[^A-Za-z0-9_.=,+-]", "", text.replace(":", "-"))
    if len(slug) > 60:
        slug = hashlib.sha256(text.encode()).hexdigest()[:12]
    return root / f"{profile}+{slug}"


# ---- pre-flight ----------------------------------------------------------------------------------------

def _study(params: dict[str, Any]):
    from helpers.study import Study
    return Study.from_profile(params["profile"], **params.get(STUDY_KEY, {}))


def preflight(chapter: str, params: dict[str, Any], trained_earlier: bool | Sequence[str] = False) -> None:
    """Checks that need no kernel: every model source or tokenizer the chapter needs can be loaded
    here, and the runs exist for a chapter that reads them: the study's decision-task runs
    (``runs``, trained by chapter 2) and the entity-tracking base (``entity-runs``, trained by
    chapter 9), unless the chapter that trains them runs before it in the same build
    (`trained_earlier`: the chapters that do, or True for all).  Raises the project's own errors."""
    def earlier(ch: str) -> bool:
        return trained_earlier is True or (not isinstance(trained_earlier, bool) and ch in trained_earlier)
    from helpers.models.sources import source_info, tokenizer_available
    needs = chapter_needs(chapter)
    name = chapter_path(chapter).stem
    if "tokenizers" in needs:
        for src in params.get("tokenizer_sources", []):
            ok, why = tokenizer_available(src)
            if not ok:
                raise SourceUnavailable(f"chapter {name} needs the tokenizer of {src!r}, which is not "
                                        f"available here: {why}")
    if {"models", "runs", "entity-models", "entity-runs"} & set(needs):
        study = _study(params)
        sources = [study.pretrained_source, study.scratch_source]
        sources += study.entity_sources() if "entity-models" in needs else []
        for src in dict.fromkeys(sources):
            info = source_info(src)
            if not info.available:
                raise SourceUnavailable(f"chapter {name} needs the model source {src!r}, which is not "
                                        f"available here: {info.why_not}")
        if "runs" in needs and not earlier(TRAINING_CHAPTER):
            missing = study.missing_runs()
            if missing:
                raise MissingRun(f"chapter {name} analyses runs that chapter 2 trains, and these are not "
                                 f"trained yet: {'; '.join(missing)}. Train them first: {study.command('02')}")
        if "entity-runs" in needs and study.et_base_source is None and not earlier(ENTITY_CHAPTER):
            missing = study.missing_entity_runs()
            if missing:
                raise MissingRun(f"chapter {name} analyses the entity-tracking runs that chapter 9 trains, and "
                                 f"these are not trained yet: {'; '.join(missing)}. Train them first: "
                                 f"{study.command('09')}")


# ---- execution -----------------------------------------------------------------------------------------

KERNEL_DIR_PREFIX = "book-kernel-"      # + pid + "-": a kernel's private folder in the temporary directory


def _kernel_manager_class(log: Path, private: Path, kernels: list | None = None):
    """Jupyter's kernel manager on IPC transport (local sockets: no network port, and no 'running
    over TCP without encryption' warning) with its connection file and sockets in the folder
    `private` (Jupyter's defaults, ``kernel-ipc-1..5`` in the working folder, are shared by every
    kernel started there), and the kernel process's own log messages written to `log` instead of
    the user's terminal (what the chapter prints and raises stays in the notebook)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class BookKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        @default("connection_file")
        def _default_connection_file(self):
            return str(private / "kernel.json")

        @default("ip")
        def _default_ip(self):
            return str(private / "ipc")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["stderr"] = log.open("ab")
            out = await super()._async_launch_kernel(kernel_cmd, **kw)
            if kernels is not None:
                kernels.append(self.provisioner.pid)     # so that Ctrl-C can stop it (_execute)
            return out
        _launch_kernel = _async_launch_kernel     # AsyncKernelManager calls this name
    return BookKernelManager


LOCK_FILE = ".build.lock"
RUNNING, FAILED = ".running", "failed"      # under chapters/: a notebook being executed; one that did not finish


@contextlib.contextmanager
def build_lock(folder: Path):
    """Hold the lock of the build `folder` (an exclusive ``flock`` on ``<folder>/.build.lock``, which
    names its holder) while chapters are executed into it.  A second process that asks for it is
    refused at once with :class:`BuildBusy` naming the holder (pid, command, since when), instead of
    two kernels writing into one build.  The lock goes with the process: a killed holder leaves a
    file that the next process locks again.  Leftovers of a killed run (``.running/``) are removed
    once the lock is held."""
    import fcntl
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    f = open(path, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise BuildBusy(f"{folder} is being built by {holder}: wait for it to finish, or stop it, and run "
                            f"this command again") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} (`{' '.join(sys.argv) or 'python'}`, since "
                f"{_dt.datetime.now().astimezone().isoformat(timespec='seconds')})")
        f.flush()
        shutil.rmtree(folder / "chapters" / RUNNING, ignore_errors=True)
        yield folder
    finally:
        f.close()                               # closing the file releases the lock


def stale_kernel_folders() -> list[Path]:
    """The private kernel folders (:func:`_kernel_manager_class`) of processes that no longer exist
    (a run killed with SIGKILL cannot remove its own)."""
    import tempfile

    from helpers.core.artifacts import pid_alive
    out = []
    for d in Path(tempfile.gettempdir()).glob(f"{KERNEL_DIR_PREFIX}*-*"):
        pid = d.name[len(KERNEL_DIR_PREFIX):].split("-")[0]
        if pid.isdigit() and d.is_dir() and d.owner() == Path.home().owner() and not pid_alive(int(pid)):
            out.append(d)
    return sorted(out)


def remove_stale_kernel_folders() -> list[Path]:
    """Remove :func:`stale_kernel_folders`; returns them."""
    gone = stale_kernel_folders()
    for d in gone:
        shutil.rmtree(d, ignore_errors=True)
    return gone


def _execute(run, kernels: list) -> None:
    """Call `run()` (papermill) in a worker thread and wait for it.  Outside the main thread
    nbclient installs no SIGINT handler of its own (in the main thread its handler only schedules a
    kernel shutdown, and whether the chapter then stops depends on when the signal comes), so
    Ctrl-C raises KeyboardInterrupt here, at any moment: the kernels started for `run` (their pids in `kernels`) are
    killed, the worker ends, and the KeyboardInterrupt goes on.  An error in `run` is raised here."""
    import signal
    import threading
    failure: list[BaseException] = []

    def worker():
        try:
            run()
        except BaseException as e:            # handed to the main thread
            failure.append(e)
    thread = threading.Thread(target=worker, name="book-chapter", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        for pid in kernels:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        thread.join(60)
        raise
    if failure:
        raise failure[0]


def execute_chapter(chapter: str, params: dict[str, Any], out_dir: Path) -> Path:
    """Execute `chapter` into ``out_dir/<stem>.ipynb``.  The notebook is written to
    ``out_dir/.running/`` while the kernel runs and moved into place only when the chapter
    finished, and its verdicts, staged beside it, merged into the build's ``verdicts.json`` then: a failed or interrupted run (an error, Ctrl-C) never replaces the chapter executed
    before; its notebook is kept as ``out_dir/failed/<stem>.ipynb`` to read, and the error goes on.
    Call it holding :func:`build_lock` of the build."""
    import papermill
    src = chapter_path(chapter)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{src.stem}.ipynb"
    running = out_dir / RUNNING / out.name
    running.parent.mkdir(exist_ok=True)
    t0 = time.time()
    print(f"[book] executing {src.stem} with profile {params.get('profile')}", flush=True)
    os.environ["BOOK_PROGRESS"] = "0"       # inherited by the kernel: no bars inside pages
    # the kernel records the chapter's verdicts in this build's verdicts.json (scorecard.show_verdicts)
    previous = os.environ.get(BUILD_ENV)
    os.environ[BUILD_ENV] = str(out_dir.parent.resolve())
    staged = running.with_suffix(".verdicts.json")      # merged into verdicts.json only if the chapter finishes
    staged.unlink(missing_ok=True)
    os.environ[STAGING_ENV] = str(staged.resolve())
    import tempfile
    remove_stale_kernel_folders()
    private = Path(tempfile.mkdtemp(prefix=f"{KERNEL_DIR_PREFIX}{os.getpid()}-"))
    kernels: list = []
    try:
        nb = read_chapter(src.stem)
        _execute(lambda: papermill.execute_notebook(
            nb, str(running), parameters=params, kernel_name="python3", cwd=str(out_dir),
            progress_bar={"desc": src.stem, "unit": "cell"}, log_output=False, report_mode=False,
            kernel_manager_class=_kernel_manager_class(out_dir.parent / "kernel.log", private, kernels)), kernels)
        os.replace(running, out)
        commit_staged(staged, out_dir.parent)
        (out_dir / FAILED / out.name).unlink(missing_ok=True)
    except BaseException:
        if running.exists():
            (out_dir / FAILED).mkdir(exist_ok=True)
            os.replace(running, out_dir / FAILED / out.name)
        kept = "the chapter executed before is kept" if out.exists() else "no earlier execution of it exists"
        print(f"[book] {src.stem} did not finish: {kept}; the interrupted notebook is "
              f"{out_dir / FAILED / out.name}", file=sys.stderr, flush=True)
        raise
    finally:
        staged.unlink(missing_ok=True)
        os.environ.pop(STAGING_ENV, None)
        shutil.rmtree(private, ignore_errors=True)
        if previous is None:
            os.environ.pop(BUILD_ENV, None)
        else:
            os.environ[BUILD_ENV] = previous
    record_timing(out_dir.parent, src.stem, time.time() - t0)
    print(f"[book] {src.stem} done in {time.time() - t0:.0f} s", flush=True)
    return out


def run_chapter(chapter: str, profile: str, overrides: dict[str, Any] | None = None) -> Path:
    """Execute one chapter (checks and pre-flight first) into :func:`build_dir`."""
    params = resolve_parameters(chapter, profile, overrides)
    preflight(chapter, params)
    with build_lock(build_dir(profile, overrides)) as folder:
        out = execute_chapter(chapter, params, folder / "chapters")
        write_scorecard_page(folder)
    return out


def build_book(profile: str, render: bool = True, overrides: dict[str, Any] | None = None,
               executor: str | None = None) -> Path:
    """Execute every chapter with the profile (and `overrides`, parameters every chapter declares,
    e.g. ``{"show_solutions": False}`` for a course build; `executor`, for the chapters that train),
    then render the site.  Returns the site folder."""
    from helpers.book.site import render_site
    chapters = list_chapters()
    def given(c):
        extra = {"executor": executor} if executor is not None and "executor" in chapter_parameters(c) else {}
        return {**(overrides or {}), **extra}
    resolved = {c: resolve_parameters(c, profile, given(c)) for c in chapters}   # all checks before compute
    for i, c in enumerate(chapters):
        preflight(c, resolved[c], trained_earlier=chapters[:i])
    with build_lock(build_dir(profile, overrides)) as out:
        for c in chapters:
            execute_chapter(c, resolved[c], out / "chapters")
        write_scorecard_page(out)                # the scorecard page, from the verdicts just recorded
        return render_site(out) if render else out


# ---- dry run -------------------------------------------------------------------------------------------

def dry_run(chapter: str | None, profile: str, overrides: dict[str, Any] | None = None) -> str:
    """What a run would do, computing nothing: the resolved parameters (checked, and the model sources
    pre-flighted as a real run does), the study's runs (cached or to be trained) and a rough time
    for the training from measured rates."""
    from helpers.training.estimate import UPPER_BOUND_NOTE, estimate_run_seconds, format_seconds
    chapters = [chapter_path(chapter).stem] if chapter else list_chapters()
    resolved = {c: resolve_parameters(c, profile, overrides if chapter else None) for c in chapters}
    for c, params in resolved.items():          # model availability as a real run checks it
        preflight(c, params, trained_earlier=True)
    lines = [f"profile {profile}" + (f", overrides {overrides}" if overrides else "")
             + f"; output folder {build_dir(profile, overrides if chapter else None)}"]
    study_params = None
    for c, params in resolved.items():
        own = {k: v for k, v in params.items() if k not in ("profile", STUDY_KEY)}
        lines.append(f"\n{c}: " + (", ".join(f"{k}={v!r}" for k, v in own.items()) or "no parameters of its own"))
        if STUDY_KEY in params:
            study_params = params
    if study_params is not None:
        study = _study(study_params)
        lines.append("\nstudy: " + ", ".join(f"{k}={v!r}" for k, v in study.params.items()))
        plan = study.plan()
        todo = [r for r in plan if not r["cached"]]
        total = 0.0
        lines.append(f"\nruns of the study: {len(plan) - len(todo)} cached, {len(todo)} to train")
        for r in plan:
            cfg = r["config"]
            if cfg is None:
                desc = (f"  {r['arm']:<10} curve N={r['n_train']}: learning rate chosen by the grid, "
                        "not trained yet")
                secs = estimate_run_seconds(study.arm_base(r["arm"]).replace(n_train=r["n_train"]))
            else:
                desc = (f"  {r['arm']:<10} {r['stage']:<5} N={cfg.n_train} lr={cfg.lr:g} seed={cfg.seed} "
                        f"(at most {cfg.max_steps} steps) {'cached' if r['cached'] else 'to train'}")
                secs = 0.0 if r["cached"] else estimate_run_seconds(cfg)
            total += secs or 0.0
            lines.append(desc + (f", at most about {format_seconds(secs)}" if secs else ""))
        lines.append(f"training time, roughly: at most {format_seconds(total)} ({UPPER_BOUND_NOTE})"
                     if todo else "nothing to train")
    return "\n".join(lines)
