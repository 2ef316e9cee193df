"""Training-engine benchmark on smollm2-135m (one process, same data, same optimiser).

Compares, on the same N training trials:

* the **reference**: a default Hugging Face fine-tuning loop (fp32, the language-modelling loss over
  the full vocabulary at every position of prompt + answer, padding masked);
* the **engine** of this book (``helpers.training``): cross-entropy at the answer position only
  (no logits elsewhere), bf16 autocast, fp32 master weights;

and reports training throughput (real tokens per second, padding excluded), the speed-up, the
held-out accuracy of both (same test trials, Wilson 95% CIs), and the fraction of this machine's
bf16 matrix-multiply rate (measured in the same run) that the engine's step reaches.

    python benchmarks/bench_training.py [--n-train 256] [--epochs 2] [--n-test 200] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch


def matmul_rate(dtype=torch.bfloat16, n: int = 1024, seconds: float = 3.0) -> float:
    """Sustained FLOP/s of an n x n matrix multiply in `dtype` on this machine."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def reference_train(model, tok, trials, epochs, batch_size, lr, seed):
    """A plain Hugging Face fine-tuning loop: fp32, LM loss on every position."""
    from helpers.training import _epoch_order
    texts = [t.prompt + t.answer for t in trials]
    seqs = [tok.encode(x) for x in texts]
    pad = tok.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(seqs) / batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, int(0.1 * total)) if s < int(0.1 * total)
        else max(0.0, (total - s) / max(1, total - int(0.1 * total))))
    model.train()
    n_tokens, t0 = 0, time.perf_counter()
    for step in range(total):
        epoch, b = divmod(step, steps_per_epoch)
        idx = _epoch_order(seed, epoch, len(seqs))[b * batch_size:(b + 1) * batch_size]
        batch = [seqs[i] for i in idx]
        L = max(len(s) for s in batch)
        ids = torch.full((len(batch), L), pad)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        for i, s in enumerate(batch):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
        n_tokens += sum(len(s) for s in batch)
        print(f"\r  reference step {step + 1}/{total} loss {loss.item():.3f}", end="", file=sys.stderr)
    print(file=sys.stderr)
    model.eval()
    return n_tokens / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="smollm2-135m")
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    os.environ.setdefault("BOOK_DATA_DIR", tempfile.mkdtemp(prefix="bench-data-"))
    from helpers.evaluation import score_trials, summarize, wilson_ci
    from helpers.sources import load_source
    from helpers.task import TaskConfig, make_splits
    from helpers.training import RunConfig, train_run

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    peak = matmul_rate()
    print(f"bf16 matmul rate: {peak / 1e9:.1f} GFLOP/s", file=sys.stderr)

    task = TaskConfig()
    splits = make_splits(task, args.n_train, 10, args.n_test)
    test = splits["test"]

    # engine: the real training code path, in a throwaway data folder
    cfg = RunConfig(source=args.source, n_train=args.n_train, task=task, lr=args.lr, epochs=args.epochs,
                    batch_size=args.batch_size, n_val=10, n_test=args.n_test, bf16=True)
    path = train_run(cfg, progress=True)
    m = json.loads((path / "metrics.json").read_text())
    engine_tps = m["train_tokens_per_second"]
    engine_acc = m["test"]["accuracy"]

    # reference
    model, tok = load_source(args.source)
    ref_tps = reference_train(model, tok, splits["train"], args.epochs, args.batch_size, args.lr, cfg.seed)
    ref_scores = score_trials(model, tok, test, bf16=False)
    ref = summarize(test, ref_scores["logit_diff"])

    n_body = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n)
    prompt_len = np.mean([len(tok.encode(t.prompt)) for t in splits["train"]])
    d, vocab = model.config.hidden_size, model.config.vocab_size
    flops_per_trial = 6 * n_body * prompt_len + 6 * d * vocab   # body at every token, head at one
    engine_flops = engine_tps / prompt_len * flops_per_trial

    out = {
        "source": args.source, "n_train": args.n_train, "epochs": args.epochs, "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "reference_tokens_per_s": ref_tps, "engine_tokens_per_s": engine_tps,
        "speedup": engine_tps / ref_tps,
        "reference_test_accuracy": ref["accuracy"], "reference_test_ci": ref["accuracy_ci"],
        "engine_test_accuracy": engine_acc, "engine_test_ci": m["test"]["accuracy_ci"],
        "bf16_matmul_gflops": peak / 1e9, "engine_gflops": engine_flops / 1e9,
        "engine_fraction_of_bf16_matmul": engine_flops / peak,
    }
    print(json.dumps(out, indent=1))
    print(f"\nengine {engine_tps:.0f} tok/s vs reference {ref_tps:.0f} tok/s: {out['speedup']:.2f}x; "
          f"held-out accuracy engine {engine_acc:.3f} {tuple(round(x, 3) for x in m['test']['accuracy_ci'])}, "
          f"reference {ref['accuracy']:.3f} {tuple(round(x, 3) for x in ref['accuracy_ci'])}; "
          f"engine reaches {out['engine_fraction_of_bf16_matmul']:.0%} of the bf16 matmul rate")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
