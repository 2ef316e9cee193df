"""Executor benchmark: the same training runs in this process one after another (the ``local``
executor, every core on one run) and as Ray tasks on a local cluster of `--workers` workers (one
core each), and Ray's overhead per run.

* **runs**: `--runs` decision-task runs of `--source` (different seeds, `--steps` optimiser steps
  each, no early stop), each in its own fresh data folder per executor, so nothing is cached;
* **ratio**: local wall time over Ray wall time (above 1: Ray is faster);
* **overhead per run**: Ray's wall time for runs of one step, each task holding every worker's
  CPU (so they run one at a time, as locally), minus the local executor's for the same runs, per
  run (scheduling, worker start, imports and the model loaded again in every task).

    python benchmarks/bench_executor.py [--source smollm2-135m] [--runs 4] [--steps 8] [--workers 2] [--json out.json]

The numbers are of this machine and its load; docs/measured.md has the last ones.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _configs(source: str, runs: int, steps: int):
    from helpers.tasks.decision import TaskConfig
    from helpers.training.runs import RunConfig
    return [RunConfig(source, n_train=64, max_steps=steps, eval_every=max(steps, 1), patience=100, warmup_steps=1,
                      batch_size=8, lr=1e-4, bf16=False, n_val=16, n_test=32, task=TaskConfig(), seed=s)
            for s in range(runs)]


def _timed(cfgs, name: str, data: Path, cpus: float = 1.0) -> float:
    from helpers.training import executor
    os.environ["BOOK_DATA_DIR"] = str(data)
    t0 = time.perf_counter()
    executor.train_runs(cfgs, name, progress=False, cpus_per_run=cpus)
    return time.perf_counter() - t0


def _seed_data(data: Path, template: Path) -> None:
    """A fresh data folder with the template's model and tokenizer caches (no runs)."""
    import shutil
    data.mkdir(parents=True)
    for p in template.iterdir():
        if p.name != "runs":
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, data / p.name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="smollm2-135m")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from helpers.core.paths import data_dir
    from helpers.training import executor
    template = data_dir()
    before = os.environ.get("BOOK_DATA_DIR")
    ray = executor.connect(num_cpus=args.workers)
    try:
        out = _measure(args, template)
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop("BOOK_DATA_DIR", None)
        else:
            os.environ["BOOK_DATA_DIR"] = before
    print(f"ratio (local / Ray, {args.workers} workers): {out['ratio_local_over_ray']:.2f}; "
          f"Ray overhead per run: {out['ray_overhead_per_run_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def _measure(args, template: Path) -> dict:
    out = {"source": args.source, "runs": args.runs, "steps": args.steps, "workers": args.workers}
    with tempfile.TemporaryDirectory(prefix="bench-executor-") as tmp:
        tmp = Path(tmp)
        times = {}
        for label, cfgs in (("train", _configs(args.source, args.runs, args.steps)),
                            ("one_step", _configs(args.source, args.runs, 1))):
            for name in ("local", "ray"):
                data = tmp / f"{label}-{name}"
                _seed_data(data, template)
                # one-step runs: each Ray task takes every worker's CPU, so the runs go one at a time
                # as they do here, and the difference is Ray's own cost per run
                cpus = args.workers if label == "one_step" else 1.0
                times[f"{label}_{name}_s"] = _timed(cfgs, name, data, cpus)
                print(f"{label:8s} {name:5s} {times[f'{label}_{name}_s']:7.1f} s", flush=True)
        out.update(times)
    out["ratio_local_over_ray"] = out["train_local_s"] / out["train_ray_s"]
    out["ray_overhead_per_run_s"] = (out["one_step_ray_s"] - out["one_step_local_s"]) / args.runs
    return out


if __name__ == "__main__":
    sys.exit(main())
