"""Where the quick book's time goes, and what the 45-minute budget of issue 22 would cost.

Reads an executed build (its ``_build/<profile>/timings.json`` and the decision-task runs of the
profile's learning curve in its data folder) and reports, without training anything:

* **chapters**: seconds per chapter as measured, and what is left of the budget after the
  chapters that train nothing (the analyses alone);
* **training**: per run, steps, seconds per step, the best step and how many of its steps were
  the early-stopping patience (evaluations after the best one);
* the **quiet rate**: the quickest run's seconds per step (runs that shared the cores or were
  resumed are slower); training minutes are at that rate, validation and test scoring not counted;
* **patience replay**: the recorded validation losses replayed through the engine's own stopping
  rule (:class:`helpers.training.runs._Stopping`) with a smaller patience: the steps and minutes it
  would save, and **which runs would have kept another checkpoint** (a different best step, so a
  different model and different verdicts).  A patience that saves time without changing any run's
  checkpoint on these seeds is free; one that changes them changes the science.

    python benchmarks/bench_quick_budget.py --build /path/to/executed/clone [--profile quick]
        [--timings FILE --data DIR]      (instead of --build)
        [--budget-min 45] [--json benchmarks/results/quick_budget.json]

The numbers are of the build it reads; docs/measured.md quotes the last ones.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

TRAINING_CHAPTERS = ("02_training", "09_entity", "10_variants")     # chapters that train runs


class _NoWeights:
    """Stands in for the model in a replay: the stopping rule copies its weights; nothing to copy."""
    def state_dict(self):
        return {}


def replay(val_losses: list[tuple[int, float]], cfg, patience: int) -> tuple[int, int]:
    """(step the run would stop at, best step) had its patience been `patience`, from the
    validation losses it recorded (one row per evaluation).  Stops at the last recorded
    evaluation when the patience is not exhausted before it (the run stopped there anyway)."""
    from helpers.training.runs import _Stopping
    rule, cfg = _Stopping(), cfg.replace(patience=int(patience))
    for step, loss in val_losses:
        if rule.update(_NoWeights(), step, loss, cfg):
            return step, rule.best_step
    return val_losses[-1][0], rule.best_step


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", help="an executed clone: its _build/<profile>/timings.json and data/")
    ap.add_argument("--timings", help="the build's timings.json (default: from --build)")
    ap.add_argument("--data", help="the build's data folder (default: from --build)")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--budget-min", type=float, default=45.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.build is None and (args.timings is None or args.data is None):
        sys.exit("error: give --build, or both --timings and --data")
    build = Path(args.build).resolve() if args.build else None
    timings_file = Path(args.timings) if args.timings else build / "_build" / args.profile / "timings.json"
    data = Path(args.data) if args.data else build / "data"
    if not timings_file.is_file():
        sys.exit(f"error: {timings_file} not found: --build must be a clone whose {args.profile} book was executed")
    os.environ["BOOK_DATA_DIR"] = str(data)
    from helpers.study import Study
    from helpers.study import ARMS

    timings = json.loads(timings_file.read_text())
    st = Study.from_profile(args.profile)
    runs = []
    for arm in ARMS:
        for run in st.learning_curve_runs(arm, train=False):
            m = run.metrics
            vals = [(int(r["step"]), float(r["val_loss"])) for r in run.val_log().to_dict("records")]
            runs.append(dict(arm=arm, seed=run.config.seed, n_train=run.config.n_train, key=run.config.key(),
                             steps=int(m["steps"]), best_step=int(m["best_step"]),
                             seconds_per_step=float(m["train_seconds"]) / max(int(m["steps"]), 1),
                             eval_seconds=float(m["eval_seconds"]), vals=vals, cfg=run.config))
    # runs that shared the cores (or were resumed) have inflated rates: the quickest run is the
    # quiet rate, and the minutes below are at that rate
    quiet = min(r["seconds_per_step"] for r in runs)
    patience = int(st.patience)
    every = int(st.eval_every)
    replays = []
    for p in range(1, patience + 1):
        saved_steps, saved_s, changed = 0, 0.0, []
        for r in runs:
            stop, best = replay(r["vals"], r["cfg"], p)
            saved_steps += r["steps"] - stop
            saved_s += (r["steps"] - stop) * quiet
            if best != r["best_step"]:
                changed.append(f"{r['arm']} seed {r['seed']}: best step {r['best_step']} -> {best}")
        replays.append(dict(patience=p, patience_steps=p * every, steps_saved=saved_steps,
                            minutes_saved=round(saved_s / 60, 1), runs_with_another_checkpoint=changed))
    analysis_s = sum(s for c, s in timings.items() if c not in TRAINING_CHAPTERS)
    train_s = sum(r["steps"] * quiet for r in runs)
    out = dict(timings=str(timings_file), data=str(data), profile=args.profile, budget_min=args.budget_min,
               chapters_s={c: round(s, 1) for c, s in timings.items()},
               chapters_without_training_min=round(analysis_s / 60, 1),
               quiet_seconds_per_step=round(quiet, 2),
               decision_runs_steps_min_at_quiet_rate=round(train_s / 60, 1),
               runs=[{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k not in ("vals", "cfg")}
                     for r in runs],
               patience_tail_min=round(sum(min(r["steps"] - r["best_step"], patience * every) * quiet
                                           for r in runs) / 60, 1),
               patience_replay=replays)
    print(f"{args.profile}: chapters that train nothing {out['chapters_without_training_min']} min "
          f"(budget {args.budget_min:g}); the decision runs' steps {out['decision_runs_steps_min_at_quiet_rate']} min "
          f"at the quiet rate ({quiet:.2f} s/step, scoring not counted), "
          f"of which the patience tail {out['patience_tail_min']} min")
    for r in out["runs"]:
        print(f"  {r['arm']:>10} seed {r['seed']}: {r['steps']} steps (best {r['best_step']}), "
              f"{r['seconds_per_step']:.2f} s/step, scoring {r['eval_seconds']:.0f} s")
    for rp in replays:
        print(f"  patience {rp['patience']} ({rp['patience_steps']} steps): saves {rp['minutes_saved']} min; "
              f"another checkpoint in {len(rp['runs_with_another_checkpoint'])} of {len(runs)} runs "
              + "; ".join(rp["runs_with_another_checkpoint"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
