"""Head-ablation sweep benchmark: the exact fast sweep against a naive hook loop.

For each architecture (smollm2-135m with its pretrained weights; the GPT-2 architecture with
random weights, which is fine for timing) and the same prompts, in one process and in fp32:

* **naive**: one full forward per ablated head, with all-position, full-vocabulary logits, as a
  plain hook loop does (``helpers.interventions.ablation.sweep_heads_naive``);
* **fast**: ``helpers.interventions.ablation.sweep_heads`` (clean stream reused up to the ablated layer, the heads
  of a layer batched, the last layer run at the answer position only, only the answer logit
  difference computed).

It checks that both give the same numbers (max abs diff <= 1e-4) and prints the speed ratio.

    python benchmarks/bench_ablation.py [--n-prompts 8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

TARGETS = {"smollm2-135m": 2.0, "scratch:gpt2": 2.5}


def bench(source: str, n_prompts: int, kind: str) -> dict:
    from helpers.interventions import ablation
    from helpers.models.arch import Arch
    from helpers.models.sources import load_source
    from helpers.tasks.decision import TaskConfig, make_splits
    model, tok = load_source(source, seed=0)
    arch = Arch(model)
    splits = make_splits(TaskConfig(), 0, n_prompts, n_prompts)
    p = ablation.prepare(model, tok, splits["test"])
    means = ablation.head_means(arch, ablation.prepare(model, tok, splits["val"])) if kind == "mean" else None
    ablation.sweep_heads(arch, p, kind, means, layers=[arch.n_layers - 1], progress=False)   # warm-up
    t0 = time.perf_counter()
    fast = ablation.sweep_heads(arch, p, kind, means, progress=False)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = ablation.sweep_heads_naive(arch, p, kind, means, progress=True)
    t_naive = time.perf_counter() - t0
    diff = float(np.abs(fast - naive).max())
    return {"source": source, "layers": arch.n_layers, "heads": arch.n_heads, "prompts": n_prompts,
            "tokens_per_prompt": int(p.ids.shape[1]), "kind": kind, "naive_s": t_naive, "fast_s": t_fast,
            "speedup": t_naive / t_fast, "max_abs_diff": diff, "target": TARGETS.get(source),
            "identical": diff <= 1e-4}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", nargs="+", default=list(TARGETS))
    ap.add_argument("--n-prompts", type=int, default=8)
    ap.add_argument("--kind", choices=["zero", "mean"], default="zero")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32", file=sys.stderr)
    results = [bench(s, args.n_prompts, args.kind) for s in args.sources]
    for r in results:
        target = f" (target {r['target']}x)" if r["target"] else ""
        print(f"{r['source']:>14}: {r['layers']}x{r['heads']} heads, {r['prompts']} prompts x "
              f"{r['tokens_per_prompt']} tokens: naive {r['naive_s']:.1f} s, fast {r['fast_s']:.1f} s, "
              f"{r['speedup']:.2f}x{target}; max |diff| {r['max_abs_diff']:.1e} "
              f"({'identical' if r['identical'] else 'NOT IDENTICAL'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
