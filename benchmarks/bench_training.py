"""Training-engine benchmark on smollm2-135m (one process, same data, same batches).

Trains two copies of the model on the same N training trials, one step of each in turn (so that
the machine's drift in speed hits both alike):

* the **reference**: a default Hugging Face fine-tuning loop (fp32, the language-modelling loss over
  the full vocabulary at every position of prompt + answer, padding masked);
* the **engine** of this book (``helpers.training.engine.train_step``, the step that ``train_run`` takes):
  cross-entropy at the answer position only (no logits elsewhere), bf16 autocast, fp32 master
  weights, fused AdamW, eager attention;

and reports training throughput (real tokens per second, padding excluded; the reference is also
credited with the answer token it trains on), the speed-up, the
held-out accuracy of both (same test trials, Wilson 95% CIs), and the fraction of this machine's
bf16 matrix-multiply rate (measured in the same run) that the engine's step reaches.

    python benchmarks/bench_training.py [--n-train 256] [--epochs 2] [--n-test 200] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
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


class ReferenceLoop:
    """A plain Hugging Face fine-tuning loop: fp32, default attention, LM loss on every position."""

    def __init__(self, model, tok, trials, warmup_steps: int, lr: float):
        from helpers.training.engine import _lr_lambda
        self.model, self.pad = model, tok.pad_token_id
        self.seqs = [tok.encode(t.prompt + t.answer) for t in trials]
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        # the engine's schedule (linear warm-up, then constant), so the two loops differ only in the step
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(warmup_steps))
        model.train()

    def step(self, idx) -> tuple[float, int]:
        batch = [self.seqs[i] for i in idx]
        L = max(len(s) for s in batch)
        ids = torch.full((len(batch), L), self.pad)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        for i, s in enumerate(batch):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = self.model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.item(), sum(len(s) for s in batch)


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
    from helpers.models.arch import eager_attention
    from helpers.models.scoring import encode_prompts, pad_batch, score_trials
    from helpers.models.sources import load_source
    from helpers.tasks.decision import TaskConfig, check_answer_tokens, make_splits
    from helpers.training.engine import batch_at, make_optimizer, train_step
    from helpers.training.evaluation import summarize
    from helpers.training.runs import RunConfig

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    peak = matmul_rate()
    print(f"bf16 matmul rate: {peak / 1e9:.1f} GFLOP/s", file=sys.stderr)

    task = TaskConfig()
    splits = make_splits(task, args.n_train, 10, args.n_test)
    test = splits["test"]

    # Both loops train the same model on the same batches in the same order, one step of each in
    # turn, so that a slow-down of the machine (it drifts by ~15% here) hits both alike.
    # a fixed number of epochs (no early stopping: this measures the step, not the stopping rule)
    total = args.epochs * -(-args.n_train // args.batch_size)
    cfg = RunConfig(source=args.source, n_train=args.n_train, task=task, lr=args.lr, max_steps=total,
                    eval_every=total, warmup_steps=max(1, total // 10), batch_size=args.batch_size, n_val=10,
                    n_test=args.n_test, bf16=True)
    device = torch.device("cpu")
    engine, tok = load_source(args.source)
    reference, _ = load_source(args.source)
    train = splits["train"]
    answer_ids = check_answer_tokens(tok)
    seqs = encode_prompts(tok, [t.prompt for t in train])
    targets = torch.tensor([answer_ids[t.choice] for t in train])
    opt, sched = make_optimizer(engine, cfg, device)
    ref_loop = ReferenceLoop(reference, tok, train, cfg.warmup_steps, args.lr)
    engine.train()
    t_engine = t_ref = 0.0
    tok_engine = tok_ref = 0
    with eager_attention(engine):
        for step in range(total):
            _, idx = batch_at(cfg, step)
            ids, last = pad_batch([seqs[i] for i in idx], tok.pad_token_id or 0)
            t0 = time.perf_counter()
            loss_e, _ = train_step(engine, opt, sched, ids, last, targets[idx], True, cfg.max_grad_norm)
            t_engine += time.perf_counter() - t0
            tok_engine += int((last + 1).sum())
            t0 = time.perf_counter()
            loss_r, n = ref_loop.step(idx)
            t_ref += time.perf_counter() - t0
            tok_ref += n
            print(f"\r  step {step + 1}/{total}: engine loss {loss_e:.3f}, reference loss {loss_r:.3f}; "
                  f"{tok_engine / t_engine:.0f} vs {tok_ref / t_ref:.0f} tokens/s", end="", file=sys.stderr)
    print(file=sys.stderr)
    engine_tps, ref_tps = tok_engine / t_engine, tok_ref / t_ref
    engine.eval()
    reference.eval()
    eng = summarize(test, score_trials(engine, tok, test, bf16=True)["logit_diff"])
    ref = summarize(test, score_trials(reference, tok, test, bf16=False)["logit_diff"])
    engine_acc = eng["accuracy"]
    model = reference          # for the parameter count below (same architecture)

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
        "engine_test_accuracy": engine_acc, "engine_test_ci": eng["accuracy_ci"],
        "bf16_matmul_gflops": peak / 1e9, "engine_gflops": engine_flops / 1e9,
        "engine_fraction_of_bf16_matmul": engine_flops / peak,
    }
    print(json.dumps(out, indent=1))
    print(f"\nengine {engine_tps:.0f} tok/s vs reference {ref_tps:.0f} tok/s: {out['speedup']:.2f}x; "
          f"held-out accuracy engine {engine_acc:.3f} {tuple(round(x, 3) for x in eng['accuracy_ci'])}, "
          f"reference {ref['accuracy']:.3f} {tuple(round(x, 3) for x in ref['accuracy_ci'])}; "
          f"engine reaches {out['engine_fraction_of_bf16_matmul']:.0%} of the bf16 matmul rate")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
