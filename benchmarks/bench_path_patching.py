"""Path-patching benchmark: the batched exact path patching against a naive hook loop.

For each architecture (smollm2-135m with its pretrained weights; the GPT-2 architecture with
random weights, which is fine for timing), in one process, in fp32, on the same decision-task
prompts and counterfactuals (the same trials with the context word flipped, so the correct answer
may change), two path-patching steps as a circuit search runs them:

1. receivers = the logits, senders at the last position;
2. one receiver group: receivers = the 3 heads with the most negative scores in step 1, patched
   through their ``q``, senders at the last position.

* **naive**: :func:`helpers.interventions.path_patching.path_patch_naive`, the way ARENA's exercises
  write it: per sender, a full forward with every head's ``z`` frozen to its clean value (the
  sender's swapped), then (for receiver heads) a full forward patching the receivers' q, all
  positions, full vocabulary.
* **fast**: :func:`helpers.interventions.path_patching.path_patch` (run 2 on the sender position
  only, run 3 from the cached clean stream at the first receiver layer, senders of a layer stacked
  in the batch, last-position logits only).

The senders are the heads of ``--sender-layers`` evenly spaced layers (below the receivers' last
layer in step 2), so that the naive loop takes minutes, not an hour; the fast version's cost per
sender does not depend on which layers those are.  It checks that both give the same numbers (max
abs diff of the probabilities and of the scores <= 1e-4) and prints the speed ratio.

    python benchmarks/bench_path_patching.py [--sources smollm2-135m scratch:gpt2] [--n-prompts 8]
                                             [--sender-layers 4] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

TARGETS = {"smollm2-135m": 2.0, "scratch:gpt2": 2.0}


def prompts(tok, n: int, device):
    from helpers.models.scoring import encode_prompts, pad_batch
    from helpers.tasks.decision import TaskConfig, check_answer_tokens, make_prompt, make_splits
    trials = make_splits(TaskConfig(), 0, 0, n)["test"]
    flipped = [make_prompt("color" if t.context == "motion" else "motion", t.motion_samples, t.color_samples)
               for t in trials]
    a, b = encode_prompts(tok, [t.prompt for t in trials]), encode_prompts(tok, flipped)
    if [len(x) for x in a] != [len(x) for x in b]:
        raise RuntimeError("clean and counterfactual prompts differ in token length")
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids, last = pad_batch(a, pad)
    cf, _ = pad_batch(b, pad)
    answer = check_answer_tokens(tok)
    correct = torch.tensor([answer[t.choice] for t in trials])
    return ids.to(device), cf.to(device), last.to(device), correct.to(device)


def spread(n_layers: int, k: int, below: int | None = None) -> list[int]:
    top = n_layers if below is None else below
    if k <= 0 or k >= top:
        return list(range(top))
    return sorted({int(round(x)) for x in np.linspace(0, top - 1, k)})


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def compare(fast, naive) -> float:
    return float(max(np.nanmax(np.abs(fast.patched - naive.patched)), np.nanmax(np.abs(fast.scores - naive.scores))))


def bench(source: str, n_prompts: int, sender_layers: int, n_receivers: int = 3) -> dict:
    from helpers.interventions import path_patching as pp
    from helpers.models.arch import Arch
    from helpers.models.sources import load_source
    model, tok = load_source(source, seed=0)
    model.eval()
    arch = Arch(model)
    ids, cf, last, correct = prompts(tok, n_prompts, next(model.parameters()).device)
    pp.path_patch(arch, ids[:2], cf[:2], correct[:2], last[:2], senders=[(arch.n_layers - 1, 0)], last=last[:2])

    layers = spread(arch.n_layers, sender_layers)
    senders = [(l, h) for l in layers for h in range(arch.n_heads)]
    common = dict(last=last)
    fast1, t_fast1 = timed(lambda: pp.path_patch(arch, ids, cf, correct, last, "logits", senders=senders, **common))
    naive1, t_naive1 = timed(lambda: pp.path_patch_naive(arch, ids, cf, correct, last, "logits", senders=senders,
                                                         **common))
    # receivers: the most negative heads over *all* senders (the fast version's full scan is cheap)
    everything = pp.path_patch(arch, ids, cf, correct, last, "logits", **common)
    receivers = pp.select_heads(everything.scores, keep=n_receivers)
    top = max(l for l, _ in receivers)
    if top == 0:                                  # no head below layer 0: take receivers from deeper layers
        scores = everything.scores.copy()
        scores[: max(1, arch.n_layers // 2)] = np.nan
        receivers = pp.select_heads(scores, keep=n_receivers)
        top = max(l for l, _ in receivers)
    senders2 = [(l, h) for l in spread(arch.n_layers, sender_layers, below=top) for h in range(arch.n_heads)]
    fast2, t_fast2 = timed(lambda: pp.path_patch(arch, ids, cf, correct, last, receivers, "q", senders=senders2,
                                                 **common))
    naive2, t_naive2 = timed(lambda: pp.path_patch_naive(arch, ids, cf, correct, last, receivers, "q",
                                                         senders=senders2, **common))
    diff = max(compare(fast1, naive1), compare(fast2, naive2))
    t_fast, t_naive = t_fast1 + t_fast2, t_naive1 + t_naive2
    return {"source": source, "layers": arch.n_layers, "heads": arch.n_heads, "kv_heads": arch.n_kv_heads,
            "prompts": n_prompts, "tokens_per_prompt": int(ids.shape[1]),
            "senders_logits": len(senders), "senders_group": len(senders2),
            "receivers": [list(r) for r in receivers],
            "logits": {"naive_s": t_naive1, "fast_s": t_fast1, "speedup": t_naive1 / t_fast1},
            "group": {"naive_s": t_naive2, "fast_s": t_fast2, "speedup": t_naive2 / t_fast2},
            "naive_s": t_naive, "fast_s": t_fast, "speedup": t_naive / t_fast, "max_abs_diff": diff,
            "target": TARGETS.get(source), "identical": diff <= 1e-4}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", nargs="+", default=list(TARGETS))
    ap.add_argument("--n-prompts", type=int, default=8)
    ap.add_argument("--sender-layers", type=int, default=4,
                    help="senders: every head of this many evenly spaced layers (0: every layer)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32", file=sys.stderr)
    results = []
    for s in args.sources:
        with torch.no_grad():
            r = bench(s, args.n_prompts, args.sender_layers)
        results.append(r)
        target = f" (target {r['target']}x)" if r["target"] else ""
        print(f"{r['source']:>14}: {r['layers']}x{r['heads']} heads, {r['prompts']} prompts x "
              f"{r['tokens_per_prompt']} tokens; logits ({r['senders_logits']} senders): naive "
              f"{r['logits']['naive_s']:.1f} s, fast {r['logits']['fast_s']:.2f} s; group "
              f"({r['senders_group']} senders -> q of {r['receivers']}): naive {r['group']['naive_s']:.1f} s, fast "
              f"{r['group']['fast_s']:.1f} s; total naive {r['naive_s']:.1f} s, fast {r['fast_s']:.1f} s, "
              f"{r['speedup']:.2f}x{target}; max |diff| {r['max_abs_diff']:.1e} "
              f"({'identical' if r['identical'] else 'NOT IDENTICAL'})", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
