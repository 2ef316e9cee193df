"""Where the training runs a chapter needs are trained: in this process, one after another (the
default), or as Ray tasks, one per missing run, on a local Ray cluster or an existing one.

A run is the unit of work: its config is its identity (:meth:`RunConfig.key`), its artifact is
written atomically into the shared data folder (``data/runs/<key>``) by whoever trains it, and
:func:`~helpers.training.runs.get_run` holds the run's lock while it trains, so two chapters, two
drivers or two Ray tasks that ask for one run train it once (the others wait, then read it).

Ray does the distributed work with its own features, none written here: a task per run with its
resources (``num_cpus``, ``num_gpus``), Ray's retries when a worker dies (``max_retries``; the
retried task resumes from the run's last checkpoint, and a killed worker leaves no artifact that
counts as finished), and ``ray.wait`` for progress.  ``ray.init()`` starts a local cluster when
nothing is given; ``RAY_ADDRESS`` (``host:port`` or ``ray://...``) joins an existing one, e.g. a
cluster started on Slurm or Kubernetes as Ray documents.  The workers must see the driver's data
folder (``BOOK_DATA_DIR``, passed to them; a shared filesystem on a multi-machine cluster).
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

from helpers.core.errors import ParameterError
from helpers.core.paths import data_dir
from helpers.training.runs import Run, RunConfig, get_run, run_path

EXECUTORS = ("local", "ray")
ENV = "BOOK_EXECUTOR"                 # the executor of a chapter's kernel when its parameter is not given
RETRIES = 2                           # Ray reruns a task whose worker died this many times


def executor_name(name: str | None = None) -> str:
    """`name`, or ``$BOOK_EXECUTOR``, or ``local``; checked against :data:`EXECUTORS`."""
    name = name or os.environ.get(ENV) or "local"
    if name not in EXECUTORS:
        raise ParameterError(f"executor {name!r} is not accepted: accepted values are {list(EXECUTORS)}")
    return name


def missing(cfgs: Iterable[RunConfig]) -> list[RunConfig]:
    """The configs of `cfgs` whose run is not trained yet, each once, in order."""
    seen, out = set(), []
    for c in cfgs:
        k = c.key()
        if k not in seen and not run_path(c).exists():
            seen.add(k)
            out.append(c)
    return out


def train_runs(cfgs: Sequence[RunConfig], executor: str | None = None, progress: bool = True,
               cpus_per_run: float = 1.0, gpus_per_run: float = 0.0) -> list[Run]:
    """The finished runs of `cfgs`, in order: those already trained are read; the missing ones are
    trained by `executor` (:func:`executor_name`): ``local`` trains them here one after another,
    exactly as :func:`get_run` does; ``ray`` submits one task per missing run with `cpus_per_run`
    and `gpus_per_run` and waits for all of them (a failed task raises after Ray's retries)."""
    cfgs = list(cfgs)
    name = executor_name(executor)
    todo = missing(cfgs)
    if name == "ray" and todo:
        _train_on_ray(todo, progress, cpus_per_run, gpus_per_run)
    return [get_run(c, progress=progress, train=True) for c in cfgs]


# ---- Ray ------------------------------------------------------------------------------------------

def _train_task(cfg: dict, data: str, threads: int) -> str:
    """One run, in a Ray worker: the shared data folder of the driver, `threads` intra-op threads
    (the task's CPUs), the run trained (or read, when another task or driver trained it meanwhile)
    under its lock; returns its key."""
    os.environ["BOOK_DATA_DIR"] = data
    import torch
    torch.set_num_threads(threads)
    run = get_run(RunConfig.from_dict(cfg), progress=False, train=True)
    return run.path.name


def ray_module():
    """``ray``, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ParameterError("executor 'ray' needs Ray: pip install 'ray>=2.9' (or use executor 'local')") from None
    return ray


def connect(num_cpus: int | None = None):
    """Ray, initialised: the cluster at ``$RAY_ADDRESS`` when it is set, else a local one (with
    `num_cpus` CPUs, default all).  A session already initialised is used as it is."""
    ray = ray_module()
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        kwargs = {"address": address} if address else {"num_cpus": num_cpus}
        import logging
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, **kwargs)
    return ray


def _train_on_ray(todo: list[RunConfig], progress: bool, cpus: float, gpus: float) -> None:
    ray = connect()
    task = ray.remote(_train_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=RETRIES,
                                           retry_exceptions=False)
    pending = {task.remote(c.to_dict(), str(data_dir()), max(1, int(cpus))): c for c in todo}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(pending), desc=f"training runs on Ray ({len(pending)})", unit="run")
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cfg = pending.pop(ref)
                ray.get(ref)                    # raises the task's error (after its retries)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(cfg.key())
    finally:
        if bar is not None:
            bar.close()
        for ref in pending:                     # interrupted or failed: stop what is still running
            ray.cancel(ref, force=True)
