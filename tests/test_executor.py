"""Training runs on an executor: in this process (the default) or as Ray tasks on a local Ray
cluster of 2 workers; the same artifacts either way; a worker killed mid-run is retried by Ray and
leaves nothing that counts as finished."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from helpers.core import artifacts
from helpers.core.errors import ParameterError
from helpers.tasks.decision import TaskConfig
from helpers.training import executor
from helpers.training.runs import RunConfig, run_lock, run_path


def tiny_config(**changes) -> RunConfig:
    cfg = RunConfig("tiny-gpt2", n_train=16, max_steps=6, eval_every=3, patience=100, warmup_steps=2,
                    batch_size=8, lr=1e-3, bf16=False, n_val=8, n_test=12, task=TaskConfig(n_samples=2))
    return cfg.replace(**changes)


def test_executor_names_are_checked(monkeypatch):
    assert executor.executor_name(None) == "local"
    monkeypatch.setenv(executor.ENV, "ray")
    assert executor.executor_name(None) == "ray" and executor.executor_name("local") == "local"
    with pytest.raises(ParameterError, match=r"executor 'slurm' is not accepted: accepted values are \['local', 'ray'\]"):
        executor.executor_name("slurm")


def test_the_executor_is_not_part_of_a_build_name_nor_of_its_recorded_overrides():
    """It changes no number: ``run 02 --executor ray`` writes into the profile's own build."""
    from helpers.book.runner import build_dir, resolve_parameters
    assert build_dir("smoke", {"executor": "ray"}) == build_dir("smoke")
    assert build_dir("smoke", {"executor": "ray", "seeds": [0, 1]}) == build_dir("smoke", {"seeds": [0, 1]})
    assert resolve_parameters("02", "smoke", {"executor": "ray"})["executor"] == "ray"
    with pytest.raises(ParameterError, match="executor='slurm' is not accepted"):
        resolve_parameters("02", "smoke", {"executor": "slurm"})


def test_local_executor_trains_the_missing_runs_once_in_order(fresh_data_dir):
    a, b = tiny_config(seed=1), tiny_config(seed=2)
    assert executor.missing([a, b, a]) == [a, b]
    runs = executor.train_runs([a, b, a], "local", progress=False)
    assert [r.config for r in runs] == [a, b, a] and runs[0].path == runs[2].path
    assert executor.missing([a, b]) == []
    mtime = run_path(a).stat().st_mtime
    executor.train_runs([a], "local", progress=False)          # cached: read, not trained again
    assert run_path(a).stat().st_mtime == mtime


ray = pytest.importorskip("ray", reason="the Ray executor's tests need Ray (pip install ray)")


@pytest.fixture(scope="module")
def local_ray(session_data_dir):
    """A local Ray cluster of 2 workers (2 CPUs, one per run), for this module only."""
    if ray.is_initialized():
        ray.shutdown()
    os.environ.pop("RAY_ADDRESS", None)
    executor.connect(num_cpus=2)
    yield ray
    ray.shutdown()


def _same_files(a, b) -> list[str]:
    """The files of two finished runs whose bytes differ (the manifests list the checksums)."""
    import json
    ma = json.loads((a / artifacts.MANIFEST).read_text())
    mb = json.loads((b / artifacts.MANIFEST).read_text())
    assert set(ma) == set(mb)
    return sorted(k for k in ma if ma[k] != mb[k])


def test_ray_trains_each_missing_run_as_a_task_with_the_same_artifacts(local_ray, data_dir_factory, monkeypatch):
    """Three runs on 2 workers: each trained once, as the local executor trains it: the same
    metrics, and the same bytes for everything but the timing record (the tiny model trains
    deterministically on one thread)."""
    import json

    import torch
    cfgs = [tiny_config(seed=s) for s in (1, 2, 3)]
    on_ray = data_dir_factory("ray")
    runs = executor.train_runs(cfgs, "ray", progress=False)
    assert all(r.path.parent == on_ray / "runs" for r in runs)
    assert executor.missing(cfgs) == []
    for r in runs:
        artifacts.verify_dir(r.path)
    here = data_dir_factory("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                   # as the Ray task (one CPU) trains
    try:
        local = executor.train_runs(cfgs, "local", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert all(r.path.parent == here / "runs" for r in local)
    for r, l in zip(runs, local):
        assert r.path.name == l.path.name
        mr, ml = (json.loads((x.path / "metrics.json").read_text()) for x in (r, l))
        assert mr["test"]["accuracy"] == ml["test"]["accuracy"] and mr["steps"] == ml["steps"]
        assert mr["best_val_loss"] == pytest.approx(ml["best_val_loss"], rel=1e-6, abs=1e-9)
        assert set(_same_files(r.path, l.path)) <= {"metrics.json", "log.jsonl"}, _same_files(r.path, l.path)


def test_a_worker_killed_mid_run_is_retried_and_leaves_no_finished_artifact(local_ray, fresh_data_dir):
    """SIGKILL the Ray worker that holds a run's lock while it trains: Ray reruns the task, the run
    finishes once, whole (its manifest verifies), and no staging folder is left behind."""
    cfg = tiny_config(max_steps=400, eval_every=50, n_train=32, seed=9)
    lock = run_lock(run_path(cfg))
    killed = {}

    def kill_the_trainer():
        deadline = time.time() + 120
        while time.time() < deadline and "pid" not in killed:
            try:
                text = lock.read_text()
            except FileNotFoundError:
                text = ""
            if text.startswith("pid ") and not run_path(cfg).exists():
                pid = int(text.split()[1])
                if pid != os.getpid():
                    time.sleep(0.5)                         # mid-run
                    if not run_path(cfg).exists():
                        os.kill(pid, signal.SIGKILL)
                        killed["pid"] = pid
            time.sleep(0.05)

    t = threading.Thread(target=kill_the_trainer, daemon=True)
    t.start()
    [run] = executor.train_runs([cfg], "ray", progress=False)
    t.join(timeout=5)
    assert "pid" in killed, "the run finished before the test could kill its worker"
    artifacts.verify_dir(run.path)
    assert run.metrics["steps"] > 0
    leftovers = [p.name for p in run.path.parent.iterdir() if p.name.startswith(".") and p.name != ".locks"]
    assert leftovers == [], leftovers


def test_the_smoke_study_trains_every_run_on_ray(local_ray, fresh_data_dir):
    """Chapter 2's, chapter 9's and chapter 10's runs of the smoke profile, each missing run a Ray
    task: afterwards every run the study can read is there, whole, and nothing is missing."""
    from helpers.study import Study
    study = Study.from_profile("smoke")
    study.train_decision_runs("ray", progress=False)
    assert all(r["cached"] for r in study.plan())
    study.train_entity_runs("ray", progress=False)
    assert study.missing_entity_runs() == []
    study.train_variant_runs("ray", progress=False)
    assert executor.missing([study.variant_config(v) for v in study.et_variants]) == []
    present = {p.name for p in (fresh_data_dir / "runs").iterdir() if not p.name.startswith(".")}
    assert present <= study.run_keys()                  # nothing trained that the study does not read
    for name in present:
        artifacts.verify_dir(fresh_data_dir / "runs" / name)


def test_a_chapter_runs_its_training_on_ray_from_the_command_line(fresh_data_dir, tmp_path):
    """``python -m helpers run 02 --profile smoke --executor ray``: the chapter trains its runs as
    Ray tasks (a local cluster the kernel starts) into the same build folder as without the flag
    (the executor changes no number, so it is not part of the build's name)."""
    import subprocess
    import sys

    from helpers.core.paths import REPO
    env = {**os.environ, "BOOK_DATA_DIR": str(fresh_data_dir), "BOOK_BUILD_DIR": str(tmp_path / "_build"),
           "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    p = subprocess.run([sys.executable, "-m", "helpers", "run", "02", "--profile", "smoke", "--executor", "ray"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "_build" / "smoke" / "chapters" / "02_training.ipynb").exists()
    assert not list((tmp_path / "_build").glob("smoke+*"))
    from helpers.study import Study
    assert all(r["cached"] for r in Study.from_profile("smoke").plan())
    bad = subprocess.run([sys.executable, "-m", "helpers", "run", "03", "--profile", "smoke", "--executor", "ray"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "has no parameter 'executor'" in bad.stderr and "Traceback" not in bad.stderr
