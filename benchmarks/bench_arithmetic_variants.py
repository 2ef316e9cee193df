"""Does the entity-tracking base learn arithmetic, and at what cost? (chapter 10's choice of form)

Fine-tunes the profile's entity-tracking base (chapter 9's run, which must be trained) on one
arithmetic form with the variant recipes of chapter 10 (every weight, or LoRA adapters), at the
sizes given here instead of the profile's, and reports per run: the held-out arithmetic accuracy
with its Wilson interval, whether it clears the learned-own-task gate (interval above chance +
the gate's threshold in ``claims.yaml``), steps, the best step, why it stopped, seconds, and the
validation accuracy curve.  Runs are ordinary cached runs (a second call reads them).

    python benchmarks/bench_arithmetic_variants.py [--profile quick] [--terms 3] [--max-operand 9]
        [--n-train 512] [--max-steps 384] [--runs "arithmetic:1e-4" "arithmetic (LoRA):1e-3"]
        [--json benchmarks/results/arithmetic_variants.json]

The numbers are of this machine and its load; chapter 10 quotes the last ones.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--terms", type=int, default=3)
    ap.add_argument("--max-operand", type=int, default=9)
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--max-steps", type=int, default=384)
    ap.add_argument("--runs", nargs="+", default=["arithmetic:1e-4", "arithmetic (LoRA):1e-3"],
                    help="VARIANT:LR pairs (variants of chapter 10 that train on arithmetic)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from helpers.claims.circuits import LEARNED
    from helpers.claims.verdict import gate_threshold
    from helpers.study import Study
    from helpers.tasks.arithmetic import ArithmeticConfig
    from helpers.training.runs import get_run

    st = Study.from_profile(args.profile)
    margin = gate_threshold(LEARNED)
    task = ArithmeticConfig(n_terms=args.terms, max_operand=args.max_operand, seed=st.task_seed)
    out = []
    for spec in args.runs:
        variant, _, lr = spec.rpartition(":")
        cfg = st.variant_config(variant).replace(task=task, n_train=args.n_train, max_steps=args.max_steps,
                                                 lr=float(lr))
        t0 = time.perf_counter()
        run = get_run(cfg, progress=False, train=True)
        m = run.metrics
        lo, hi = m["test"]["accuracy_ci"]
        row = dict(variant=variant, lr=float(lr), terms=args.terms, max_operand=args.max_operand,
                   n_train=args.n_train, max_steps=args.max_steps, seconds=round(time.perf_counter() - t0, 1),
                   train_seconds=round(m["train_seconds"], 1), steps=m["steps"], best_step=m["best_step"],
                   stop=m["stop_reason"], test_accuracy=m["test"]["accuracy"], test_ci=[lo, hi],
                   chance=task.chance, passes_learned_gate=bool(lo > task.chance + margin), key=cfg.key(),
                   val_curve=[(int(r["step"]), round(float(r["val_accuracy"]), 3))
                              for r in run.val_log().to_dict("records")])
        print(f"{variant} lr {float(lr):g}: {row['test_accuracy']:.1%} held out ({lo:.1%} to {hi:.1%}; gate "
              f"{'passed' if row['passes_learned_gate'] else 'not passed'}), {row['steps']} steps "
              f"(best {row['best_step']}, {row['stop']}), {row['train_seconds']:.0f} s of training", flush=True)
        out.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
