"""Training runs as cached artifacts.

A :class:`RunConfig` says everything about a run (model source, task, data size, optimiser,
stopping rule, seed, precision, LoRA rank).  :func:`get_run` returns the finished run from
``data/runs/<hash>/`` if it is there and intact, and trains it otherwise.  A run folder holds the
weights (safetensors; a LoRA run: only its adapter, in ``adapter/``), the tokenizer, ``run_config.json``, ``metrics.json``, ``log.jsonl`` and
per-trial test and validation predictions; it is written atomically (see :mod:`helpers.artifacts`).

**When a run stops.**  Every run, of both arms and at every N, follows one rule: every
``eval_every`` optimiser steps it computes its validation loss (the training loss, cross-entropy
over the full vocabulary at the answer position, on the validation trials, without gradients); it
stops when ``patience`` evaluations in a row have not lowered the best validation loss so far by
more than ``min_delta``, or at ``max_steps`` (the cap) if that comes first.  The learning rate warms
up linearly over ``warmup_steps`` and then stays constant (a schedule that decays over the cap would
make the stopping point depend on the cap).  At the end the weights of the best evaluation (kept in
memory) are restored, and they are what is scored on the validation and test sets and saved.
``metrics.json`` says how many steps the run took, its best step, why it stopped (``stop_reason``,
``converged``: stopped early rather than at the cap) and ``final_train_loss``: the mean training
loss over the evaluation window that ends at the best step (the steps after the evaluation before
it), i.e. the training loss of the weights that were kept.  The validation loss of every
evaluation is in ``metrics.json`` (``val_loss_curve``) and in ``log.jsonl`` (rows with
``val_loss``; :meth:`Run.val_log`).  The validation set thus both stops the run and, in the grid
search, chooses the learning rate; every reported number is on the test set, which neither sees.

Training is resumable: every ``checkpoint_seconds`` of training (default 300 s; a checkpoint of a
135M-parameter model and its optimiser is about 1.6 GB and takes seconds to write, so it is not
written every few steps) the state (weights, optimiser, schedule, RNG, log, and the early-stopping
state: best validation loss, its step and weights, evaluations since it improved) is written
atomically to ``data/runs/<hash>.partial/``.
An interrupted run resumes from there; the data order of each epoch is a pure function of
``(seed, epoch)``, so a resumed run takes the same steps, and stops at the same step, as an
uninterrupted one.

The loss is cross-entropy over the full vocabulary **at the answer position only**; logits of the
other positions are never computed.  bf16 autocast speeds up the CPU step about 1.5x; the master
weights and the optimiser stay in fp32.  Training runs with eager attention: on the CPU its backward
pass is about 10-15% faster than SDPA's at these 52-token prompts (interleaved A/B in one process;
the forward pass is equally fast either way), and it computes the same function.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from helpers.core import artifacts
from helpers.models.arch import eager_attention
from helpers.models.scoring import encode_prompts, pad_batch
from helpers.training.engine import ValidationSet, batch_at, make_optimizer, train_step
from helpers.training.evaluation import with_choices
from helpers.core.device import default_device
from helpers.core.errors import MissingRun
from helpers.core.paths import runs_dir
from helpers.core.progress import bar as progress_bar, quiet_libraries
from helpers.models.sources import RUN_PREFIX, is_scratch, load_source, load_trained, validate_source
from helpers.tasks.decision import TaskConfig
from helpers.tasks.arithmetic import ArithmeticConfig
from helpers.tasks.entity import EntityConfig
from helpers.training.task_io import task_from_dict, task_io, task_to_dict

FORMAT_VERSION = 2          # 2: early stopping (max_steps, eval_every, patience) replaced epochs
EARLY_STOP = "early stop: validation loss did not improve for {patience} evaluations"
STEP_CAP = "step cap reached"


@dataclass(frozen=True)
class RunConfig:
    source: str
    n_train: int
    task: TaskConfig | EntityConfig | ArithmeticConfig = field(default_factory=TaskConfig)
    lr: float = 1e-4
    max_steps: int = 1000       # the cap: a run stops here if its validation loss still improves
    eval_every: int = 16        # optimiser steps between two evaluations of the validation loss
    patience: int = 4           # stop after this many evaluations in a row without improvement
    min_delta: float = 0.0      # an improvement lowers the best validation loss by more than this
    warmup_steps: int = 10      # linear warm-up, then a constant learning rate
    batch_size: int = 8
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    bf16: bool = True
    n_val: int = 200
    n_test: int = 400
    lora_rank: int = 0          # 0: every weight trains; r > 0: only rank-r LoRA adapters (helpers.models.lora)
    # a second task watched at every evaluation (never trained on, never used to stop): the forced-choice
    # accuracy on the first `n_track` validation trials of `track_task`, e.g. entity tracking along an
    # arithmetic variant's training (chapter 10's dose-response)
    track_task: TaskConfig | EntityConfig | ArithmeticConfig | None = None
    n_track: int = 0

    def __post_init__(self):
        validate_source(self.source)
        checks = {
            "n_train": (self.n_train, 1, 10**7), "max_steps": (self.max_steps, 1, 10**7),
            "eval_every": (self.eval_every, 1, 10**6), "patience": (self.patience, 1, 10**4),
            "warmup_steps": (self.warmup_steps, 0, 10**6),
            "batch_size": (self.batch_size, 1, 4096), "seed": (self.seed, 0, 2**31 - 1),
            "n_val": (self.n_val, 1, 10**6), "n_test": (self.n_test, 1, 10**6),
            "lora_rank": (self.lora_rank, 0, 1024), "n_track": (self.n_track, 0, 10**6),
        }
        for name, (v, lo, hi) in checks.items():
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} is out of range: accepted values are integers {lo}..{hi}")
        if self.eval_every > self.max_steps:
            raise ValueError(f"eval_every={self.eval_every} is out of range: accepted values are integers "
                             f"1..max_steps={self.max_steps} (at least one evaluation before the cap)")
        if not isinstance(self.task, (TaskConfig, EntityConfig, ArithmeticConfig)):
            raise ValueError(f"task={self.task!r} is not accepted: expected a helpers.tasks.decision.TaskConfig, "
                             "a helpers.tasks.entity.EntityConfig or a helpers.tasks.arithmetic.ArithmeticConfig")
        if self.track_task is not None and not isinstance(self.track_task, (TaskConfig, EntityConfig, ArithmeticConfig)):
            raise ValueError(f"track_task={self.track_task!r} is not accepted: expected a task configuration or None")
        if (self.track_task is None) != (self.n_track == 0):
            raise ValueError(f"track_task={self.track_task!r} with n_track={self.n_track}: a tracked task needs "
                             "n_track >= 1 trials, and n_track >= 1 needs a track_task")
        if self.lora_rank and is_scratch(self.source):
            raise ValueError(f"lora_rank={self.lora_rank} with source {self.source!r}: LoRA adapts pretrained weights; "
                             "a scratch model trains every weight (lora_rank=0)")
        if not isinstance(self.bf16, bool):
            raise ValueError(f"bf16={self.bf16!r} is not accepted: expected True or False")
        floats = {"lr": (self.lr, "0 < lr <= 1", lambda v: 0 < v <= 1),
                  "min_delta": (self.min_delta, "min_delta >= 0", lambda v: v >= 0),
                  "weight_decay": (self.weight_decay, "weight_decay >= 0", lambda v: v >= 0),
                  "max_grad_norm": (self.max_grad_norm, "max_grad_norm > 0", lambda v: v > 0)}
        for name, (v, accepted, ok) in floats.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not ok(v):
                raise ValueError(f"{name}={v!r} is out of range: accepted values are {accepted}")

    @property
    def arm(self) -> str:
        return "scratch" if is_scratch(self.source) else "fine-tuned"

    def to_dict(self) -> dict:
        """The config as JSON (its cache key's input); ``lora_rank`` only when it is not 0 and the
        tracked task only when there is one, so runs made before either existed keep their keys."""
        d = dataclasses.asdict(self)
        if not self.lora_rank:
            del d["lora_rank"]
        if self.track_task is None:
            del d["track_task"], d["n_track"]
        else:
            d["track_task"] = task_to_dict(self.track_task)
        d["task"] = task_to_dict(self.task)
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = {k: v for k, v in d.items() if k != "format_version"}
        d["task"] = task_from_dict(d["task"])
        if d.get("track_task") is not None:
            d["track_task"] = task_from_dict(d["track_task"])
        return cls(**d)

    def key(self) -> str:
        return artifacts.config_key(self.to_dict())

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)


@dataclass
class Run:
    """A finished run on disk."""
    config: RunConfig
    path: Path

    @property
    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text())

    def log(self):
        """One row per optimiser step: step, epoch, loss, grad_norm, lr."""
        return self._log_rows(lambda r: "loss" in r)

    def val_log(self):
        """One row per evaluation of the validation loss: step, val_loss, val_accuracy (and
        track_loss, track_accuracy when the run tracks a second task: :attr:`RunConfig.track_task`)."""
        return self._log_rows(lambda r: "val_loss" in r)

    def _log_rows(self, keep):
        import pandas as pd
        rows = [json.loads(line) for line in (self.path / "log.jsonl").read_text().splitlines() if line]
        return pd.DataFrame([r for r in rows if keep(r)])

    def predictions(self, split: str = "test"):
        """Per-trial predictions.  Decision task: ``correct`` is recomputed from the logit difference
        (a tie is not correct), so runs written before ties were counted that way agree with their
        metrics.  Entity tracking: the frame of
        :func:`helpers.training.entity_evaluation.predictions_frame` as written."""
        import pandas as pd
        frame = pd.read_csv(self.path / f"predictions_{split}.csv")
        return with_choices(frame) if isinstance(self.config.task, TaskConfig) else frame

    def load_model(self, dtype=torch.float32):
        """``(model, tokenizer)`` of the trained weights (a LoRA run: its base with the adapter merged)."""
        return load_trained(self.path, dtype)

    @property
    def source(self) -> str:
        """This run as a model source (``run:<key>``), e.g. the base that further runs start from."""
        return RUN_PREFIX + self.path.name


def tracked_trials(cfg: RunConfig) -> list:
    """The trials a run that tracks a second task scores at every evaluation: the first
    ``n_track`` validation trials of ``track_task`` (its own split, drawn with no train or test)."""
    if cfg.track_task is None:
        raise ValueError(f"run {cfg.key()} tracks no second task (track_task is None)")
    return task_io(cfg.track_task).make_splits(cfg.track_task, 0, cfg.n_track, 0)["val"]


def run_path(cfg: RunConfig) -> Path:
    return runs_dir() / cfg.key()


def get_run(cfg: RunConfig, progress: bool = True, train: bool = True) -> Run:
    """The finished run for `cfg`: loaded if cached and intact, trained otherwise.

    A cached artifact that fails verification raises :class:`artifacts.CorruptArtifact`.
    With ``train=False`` a missing run raises :class:`~helpers.core.errors.MissingRun` (a
    FileNotFoundError) instead of training.
    """
    final = run_path(cfg)
    if final.exists():
        artifacts.verify_dir(final)
        return Run(cfg, final)
    if not train:
        raise MissingRun(f"run {cfg.key()} ({cfg.source}, n_train={cfg.n_train}, lr={cfg.lr:g}, "
                         f"seed={cfg.seed}) is not cached")
    with artifacts.exclusive(run_lock(final), f"training run {cfg.key()}"):
        if final.exists():                     # trained meanwhile by the process this one waited for
            artifacts.verify_dir(final)
            return Run(cfg, final)
        for stale in artifacts.stale_staging_dirs(final.parent):
            if stale.name.startswith(f".{final.name}"):
                shutil.rmtree(stale, ignore_errors=True)
        train_run(cfg, progress=progress)
    return Run(cfg, final)


LOCKS = ".locks"      # under data/runs/: one lock file per run being trained (kept: removing them would race)


def run_lock(final: Path) -> Path:
    """The lock file of the run whose folder is `final`: one process trains it, others wait."""
    return final.parent / LOCKS / f"{final.name}.lock"


# ---- the loop -------------------------------------------------------------------------------


@dataclass
class _Stopping:
    """The early-stopping state: the best validation loss so far, its step and weights (a copy
    kept in memory), and how many evaluations in a row have not improved on it."""
    best_loss: float = math.inf
    best_step: int = 0
    best_weights: dict | None = None
    since_best: int = 0

    def update(self, model, step: int, val_loss: float, cfg: RunConfig) -> bool:
        """Record an evaluation; True when the run should stop (patience exhausted)."""
        improved = (self.best_weights is None or val_loss < self.best_loss - cfg.min_delta
                    or (not math.isfinite(self.best_loss) and math.isfinite(val_loss)))
        if improved:
            self.best_loss, self.best_step, self.since_best = val_loss, step, 0
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.since_best += 1
        return self.since_best >= cfg.patience


def _save_checkpoint(folder: Path, model, opt, sched, step: int, log: list, cfg: RunConfig,
                     stopping: _Stopping) -> None:
    """Atomic: build the new checkpoint beside the old one, then swap it in.  The best weights
    are written only when they are not the current ones."""
    from safetensors.torch import save_file, save_model
    staging = artifacts.new_staging_dir(folder)
    save_model(model, str(staging / "model.safetensors"))
    best_is_current = stopping.best_step == step
    if stopping.best_weights is not None and not best_is_current:
        save_file({k: v.contiguous() for k, v in stopping.best_weights.items()}, str(staging / "best.safetensors"))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
                "torch_rng": torch.get_rng_state(),
                "stopping": {"best_loss": stopping.best_loss, "best_step": stopping.best_step,
                             "since_best": stopping.since_best, "has_best": stopping.best_weights is not None,
                             "best_is_current": best_is_current}}, staging / "state.pt")
    (staging / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (staging / "run_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    artifacts.commit_dir(staging, folder)


def _load_checkpoint(folder: Path, model, opt, sched, cfg: RunConfig):
    """(step, log, early-stopping state) from a verified checkpoint of the same config, or None
    to start afresh."""
    from safetensors.torch import load_file, load_model
    try:
        artifacts.verify_dir(folder)
        if json.loads((folder / "run_config.json").read_text()) != json.loads(json.dumps(cfg.to_dict())):
            raise artifacts.CorruptArtifact("checkpoint belongs to another config")
    except artifacts.CorruptArtifact as e:
        warnings.warn(f"ignoring damaged checkpoint {folder}: {e}; restarting this run from step 0")
        shutil.rmtree(folder, ignore_errors=True)
        return None
    device = str(next(model.parameters()).device)
    load_model(model, str(folder / "model.safetensors"), device=device)
    state = torch.load(folder / "state.pt", weights_only=False)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines() if line]
    st = state["stopping"]
    stopping = _Stopping(best_loss=st["best_loss"], best_step=st["best_step"], since_best=st["since_best"])
    if st["best_is_current"]:
        stopping.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    elif st["has_best"]:
        stopping.best_weights = load_file(str(folder / "best.safetensors"), device=device)
    return state["step"], log, stopping


class _Interrupt(Exception):
    """Raised by tests to simulate a crash after a given step."""


def train_run(cfg: RunConfig, progress: bool = True, checkpoint_seconds: float = 300.0,
              stop_after_step: int | None = None) -> Path:
    """Train `cfg` until its validation loss stops improving (or to its step cap), restore the
    best evaluation's weights, and write the artifact.  `stop_after_step` simulates an
    interruption (tests)."""
    final = run_path(cfg)
    quiet_libraries()
    partial = final.with_name(final.name + ".partial")
    torch.manual_seed(cfg.seed)
    model, tok = load_source(cfg.source, seed=cfg.seed)
    adapter = None
    if cfg.lora_rank:
        from helpers.models.lora import add_lora
        adapter, model = add_lora(model, cfg.lora_rank, seed=cfg.seed)     # model: adapted in place, the rest frozen
    device = default_device()
    model.to(device)
    io = task_io(cfg.task)
    splits = io.make_splits(cfg.task, cfg.n_train, cfg.n_val, cfg.n_test)
    train = splits["train"]
    seqs = encode_prompts(tok, [t.prompt for t in train])
    targets = torch.as_tensor(io.answer_ids(tok, train, cfg.source))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    val = splits["val"]
    validation = ValidationSet(encode_prompts(tok, [t.prompt for t in val]),
                               torch.as_tensor(io.answer_ids(tok, val, cfg.source)),
                               *io.candidates(tok, val, cfg.source), pad, device)
    tracked = None
    if cfg.track_task is not None:
        t_io = task_io(cfg.track_task)
        t_val = tracked_trials(cfg)
        tracked = ValidationSet(encode_prompts(tok, [t.prompt for t in t_val]),
                                torch.as_tensor(t_io.answer_ids(tok, t_val, cfg.source)),
                                *t_io.candidates(tok, t_val, cfg.source), pad, device)

    opt, sched = make_optimizer(model, cfg, device)
    start, log, stopping = 0, [], _Stopping()
    if partial.exists():
        got = _load_checkpoint(partial, model, opt, sched, cfg)
        if got is not None:
            start, log, stopping = got
    model.train()
    t0 = last_checkpoint = time.time()
    n_tokens, checkpoint_time, eval_time = 0, 0.0, 0.0
    stop_reason, done = None, start
    bar = progress_bar(range(start, cfg.max_steps), show=progress, desc=f"train {cfg.arm} N={cfg.n_train}",
                       initial=start, total=cfg.max_steps)
    with eager_attention(model):
        for step in bar:
            epoch, idx = batch_at(cfg, step)
            ids, last = pad_batch([seqs[i] for i in idx], pad)
            lr = sched.get_last_lr()[0]            # the learning rate of this step
            loss, gnorm = train_step(model, opt, sched, ids.to(device), last.to(device), targets[idx].to(device),
                                     cfg.bf16, cfg.max_grad_norm)
            n_tokens += int((last + 1).sum())      # real tokens, padding excluded
            log.append({"step": step + 1, "epoch": epoch, "loss": loss, "grad_norm": gnorm,
                        "lr": lr})
            done = step + 1
            if done % cfg.eval_every == 0 or done == cfg.max_steps:
                t_ev = time.time()
                val_loss, val_acc = validation.evaluate(model, cfg.bf16)
                row = {"step": done, "val_loss": val_loss, "val_accuracy": val_acc}
                if tracked is not None:
                    row["track_loss"], row["track_accuracy"] = tracked.evaluate(model, cfg.bf16)
                eval_time += time.time() - t_ev
                log.append(row)
                bar.set_postfix(loss=f"{loss:.3f}", val_loss=f"{val_loss:.3f}", best=stopping.best_step)
                if stopping.update(model, done, val_loss, cfg):
                    stop_reason = EARLY_STOP.format(patience=cfg.patience)
                    break
            if stop_after_step is not None and done >= stop_after_step:
                _save_checkpoint(partial, model, opt, sched, done, log, cfg, stopping)
                raise _Interrupt(f"stopped after step {done}")
            if done < cfg.max_steps and time.time() - last_checkpoint >= checkpoint_seconds:
                t_ck = time.time()
                _save_checkpoint(partial, model, opt, sched, done, log, cfg, stopping)
                checkpoint_time += time.time() - t_ck
                last_checkpoint = time.time()
    bar.close()
    train_seconds = time.time() - t0
    stop_reason = stop_reason or STEP_CAP
    model.load_state_dict(stopping.best_weights)
    stopping.best_weights = None
    model.eval()

    steps = [r for r in log if "loss" in r]
    evals = [r for r in log if "val_loss" in r]
    window = [r["loss"] for r in steps if stopping.best_step - cfg.eval_every < r["step"] <= stopping.best_step]
    step_seconds = train_seconds - eval_time - checkpoint_time
    staging = artifacts.new_staging_dir(final)
    metrics = {"config": cfg.to_dict(), "arm": cfg.arm, "train_seconds": train_seconds,
               "eval_seconds": eval_time, "checkpoint_seconds": checkpoint_time, "resumed_from_step": start,
               "train_tokens_per_second": n_tokens / step_seconds if n_tokens and step_seconds > 0 else None,
               "steps": done, "max_steps": cfg.max_steps, "best_step": stopping.best_step,
               "best_val_loss": stopping.best_loss, "stop_reason": stop_reason,
               "converged": stop_reason != STEP_CAP,
               "final_train_loss": float(np.mean(window)),
               "last_train_loss": float(np.mean([r["loss"] for r in steps[-cfg.eval_every:]])),
               "val_loss_curve": [{k: r[k] for k in ("step", "val_loss", "val_accuracy", "track_loss", "track_accuracy")
                                   if k in r} for r in evals]}
    for split in ("val", "test"):
        metrics[split], frame = io.score(model, tok, splits[split], cfg.bf16, progress, f"evaluate {split}")
        frame.to_csv(staging / f"predictions_{split}.csv", index=False)
    if adapter is None:
        model.to("cpu").save_pretrained(str(staging / "model"), safe_serialization=True)
        tok.save_pretrained(str(staging / "model"))
    else:                                   # only the adapter: a few MB instead of the whole model
        from helpers.models.lora import save_adapter
        model.to("cpu")
        save_adapter(adapter, staging / "adapter")
    (staging / "run_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (staging / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    artifacts.commit_dir(staging, final)
    shutil.rmtree(partial, ignore_errors=True)
    return final
