"""The Study: one object, built from a profile plus overrides, that every chapter asks for what it
analyses: the task, the two training arms, their grid searches and learning curves, the runs that
the analysis chapters read, the trials, and the models loaded on the book's device.

>>> study = Study.from_profile("smoke", train_sizes=[16, 32])     # doctest: +SKIP
>>> runs = study.selected_runs()          # the runs chapter 2 selected; never trains
>>> model, tok = study.load("fine-tuned")

**Who trains.**  Chapter 2 (:meth:`Study.grid_search` and :meth:`Study.learning_curve` with
``train=True``) trains every run of the study, with progress bars.  The analysis chapters only
*read* runs: when one is missing, :meth:`Study.selected_runs` raises
:class:`~helpers.core.errors.MissingRun` with the command that builds it, and the book runner checks
this before it starts a chapter's kernel.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from helpers.config.parameters import SPECS, STUDY_PARAMETERS
from helpers.config.profiles import study_parameters
from helpers.core.device import default_device
from helpers.core.errors import MissingRun, ParameterError
from helpers.models.sources import load_source, source_key
from helpers.tasks import entity
from helpers.tasks.arithmetic import ArithmeticConfig
from helpers.tasks.decision import TaskConfig, Trial, make_splits
from helpers.tasks.entity import EntityConfig, EntityTrial
from helpers.training import experiments
from helpers.training.executor import train_runs
from helpers.training.runs import Run, RunConfig, get_run, run_path

ARMS = ("fine-tuned", "scratch")
VARIANTS = SPECS["et_variants"].choices       # chapter 10: the base fine-tuned further (the study parameter's choices)
ANALYSED_MODELS = ("pretrained", "fine-tuned", "scratch")
# Prakash et al.'s model each trained variant plays the part of (chapter 10's table); the control
# ("shuffled arithmetic (control)": the arithmetic format with random answers) has none
VARIANT_ANALOGUES = {"more entity tracking": "Vicuna-7B", "arithmetic": "FLoat-7B", "arithmetic (LoRA)": "Goat-7B"}
CONTROL = "shuffled arithmetic (control)"


@dataclass(frozen=True)
class EntityModel:
    """A model chapters 9-10 analyse on entity tracking: one of the study's runs, or a model source
    that the profile names (``et_base_source``, ``et_variant_sources``; Prakash et al.'s own models
    in the ``paper`` profile).  `analogue`: the model of Prakash et al.'s table it stands beside."""
    name: str
    source: str
    run: Run | None = None
    analogue: str | None = None

    @property
    def key(self) -> str:
        """The key of the model's cached analyses: its run's config key, or a key of the source
        (:func:`helpers.models.sources.source_key`)."""
        return self.run.config.key() if self.run is not None else "source-" + source_key(self.source)

    @property
    def trained_here(self) -> bool:
        return self.run is not None

    def load(self, device=None):
        """``(model, tokenizer)`` on `device` (default the book's), in eval mode."""
        model, tok = self.run.load_model() if self.run is not None else load_source(self.source)
        return model.to(device if device is not None else default_device()).eval(), tok


@dataclass(frozen=True)
class Study:
    """A profile's study parameters (see :data:`helpers.config.parameters.STUDY_PARAMETERS`), with
    the overrides that changed them, and what follows from them."""
    profile: str
    params: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_profile(cls, profile: str = "quick", **overrides) -> "Study":
        """The study of `profile` with `overrides` (any study parameter), checked before any compute."""
        return cls(profile, study_parameters(profile, overrides), dict(overrides))

    def __getattr__(self, name: str):
        # study parameters read as attributes: study.train_sizes, study.pretrained_source, ...
        if name in STUDY_PARAMETERS:
            return self.params[name]
        raise AttributeError(f"Study has no attribute {name!r}; its parameters are {list(STUDY_PARAMETERS)}")

    # ---- the task and its trials --------------------------------------------------------------

    @property
    def task(self) -> TaskConfig:
        return TaskConfig(n_samples=self.n_samples, noise=self.noise, seed=self.task_seed)

    def trials(self, split: str, n: int) -> list[Trial]:
        """The first `n` trials of a split, drawn as the study's runs draw theirs: beside (and never
        sharing a prompt with) at least the study's whole validation and test sets, so that
        ``trials("train", N)`` is the training set of a run of size N and a test set of `n` is a
        prefix of any larger one."""
        if split not in ("train", "val", "test"):
            raise ParameterError(f"split={split!r} is not accepted: accepted values are 'train', 'val', 'test'")
        sizes = {"train": 0, "val": self.n_val, "test": self.n_test}
        sizes[split] = max(sizes[split], n)
        return make_splits(self.task, sizes["train"], sizes["val"], sizes["test"])[split][:n]

    # ---- the two arms and their runs ------------------------------------------------------------

    @property
    def sources(self) -> dict[str, str]:
        return {"fine-tuned": self.pretrained_source, "scratch": self.scratch_source}

    @property
    def grid_lrs(self) -> dict[str, list[float]]:
        return {"fine-tuned": list(self.grid_lrs_finetune), "scratch": list(self.grid_lrs_scratch)}

    def arm_base(self, arm: str) -> RunConfig:
        """The grid-search config of an arm, before its learning rate is chosen."""
        if arm not in ARMS:
            raise ParameterError(f"arm={arm!r} is not accepted: accepted values are {list(ARMS)}")
        return RunConfig(source=self.sources[arm], n_train=self.grid_n_train, task=self.task,
                         max_steps=self.max_steps, eval_every=self.eval_every, patience=self.patience,
                         batch_size=self.batch_size,
                         n_val=self.n_val, n_test=self.n_test, bf16=self.bf16, seed=self.seeds[0])

    def grid_search(self, arm: str, train: bool = False) -> pd.DataFrame:
        """The arm's learning-rate grid on the validation set, best first."""
        return self._needs_runs(lambda: experiments.grid_search(self.arm_base(arm), self.grid_lrs[arm],
                                                                train=train), train)

    def best_config(self, arm: str, train: bool = False, grid: pd.DataFrame | None = None) -> RunConfig:
        """The arm's grid-search winner (from `grid` when it was already looked up)."""
        return experiments.best_config(self.arm_base(arm), self.grid_search(arm, train) if grid is None else grid)

    def learning_curve(self, arm: str, train: bool = False, best: RunConfig | None = None) -> pd.DataFrame:
        """The arm's test accuracy at every training-set size and seed, with its best learning rate
        (`best`, when it was already looked up)."""
        best = self.best_config(arm, train) if best is None else best
        return self._needs_runs(lambda: experiments.learning_curve(best, self.train_sizes, self.seeds,
                                                                   train=train), train)

    def learning_curve_runs(self, arm: str, train: bool = False, best: RunConfig | None = None) -> list[Run]:
        """The finished runs of the arm's learning curve (every size and seed), for verdicts that
        need their per-trial test predictions."""
        best = self.best_config(arm, train) if best is None else best
        cfgs = [best.replace(n_train=int(n), seed=int(s)) for n in self.train_sizes for s in self.seeds]
        return self._needs_runs(lambda: [get_run(c, train=train) for c in cfgs], train)

    def selected_config(self, arm: str, train: bool = False, best: RunConfig | None = None) -> RunConfig:
        """The run the analyses read: the grid's best setting, largest N, first seed."""
        best = self.best_config(arm, train) if best is None else best
        return best.replace(n_train=max(self.train_sizes), seed=self.seeds[0])

    def selected_run(self, arm: str, train: bool = False, best: RunConfig | None = None) -> Run:
        cfg = self.selected_config(arm, train, best)
        return self._needs_runs(lambda: get_run(cfg, train=train), train)

    def selected_runs(self, train: bool = False) -> dict[str, Run]:
        return {arm: self.selected_run(arm, train) for arm in ARMS}

    def train_decision_runs(self, executor: str | None = None, progress: bool = True) -> None:
        """Train every decision-task run of the study that is missing, with `executor`
        (:func:`helpers.training.executor.train_runs`: ``local``, one after another in this process,
        or ``ray``, one Ray task per run): both arms' grids first, then both arms' learning curves
        with each grid's winner (the curves depend on it).  Chapter 2 calls it before it reads them."""
        grids = [self.arm_base(arm).replace(lr=float(lr)) for arm in ARMS for lr in self.grid_lrs[arm]]
        train_runs(grids, executor, progress)
        curves = [self.best_config(arm).replace(n_train=int(n), seed=int(s))
                  for arm in ARMS for n in self.train_sizes for s in self.seeds]
        train_runs(curves, executor, progress)

    def train_entity_runs(self, executor: str | None = None, progress: bool = True) -> None:
        """Train every entity-tracking run of both arms (every size and seed) that is missing, with
        `executor` (as :meth:`train_decision_runs`).  Chapter 9 calls it before it reads them."""
        train_runs([self.entity_config(arm, int(n), int(s)) for arm in ARMS for n in self.et_train_sizes
                    for s in self.et_seeds], executor, progress)

    def train_variant_runs(self, executor: str | None = None, progress: bool = True) -> None:
        """Train chapter 10's variants of the base that are missing, every seed of ``et_seeds``
        (none when the profile names them as model sources), with `executor` (as
        :meth:`train_decision_runs`)."""
        if not self.et_variant_sources:
            train_runs([self.variant_config(v, int(s)) for v in self.et_variants for s in self.et_seeds],
                       executor, progress)

    def plan(self) -> list[dict]:
        """Every run of the study (both grids, both learning curves) and whether it is cached; the
        learning curve of an arm whose grid is incomplete is listed with its learning rate unknown
        (``config`` None).  Loads nothing, trains nothing."""
        rows = []
        for arm in ARMS:
            base = self.arm_base(arm)
            grid = [base.replace(lr=float(lr)) for lr in self.grid_lrs[arm]]
            rows += [{"arm": arm, "stage": "grid", "config": c, "cached": run_path(c).exists()} for c in grid]
            grid_done = all(r["cached"] for r in rows if r["arm"] == arm and r["stage"] == "grid")
            best = self.best_config(arm) if grid_done else None
            seen = {r["config"].key() for r in rows if r["config"] is not None}
            for n in self.train_sizes:
                for seed in self.seeds:
                    if n == self.grid_n_train and seed == self.seeds[0]:
                        continue         # the grid's best run is reused by the curve
                    c = None if best is None else best.replace(n_train=int(n), seed=int(seed))
                    if c is not None and c.key() in seen:
                        continue
                    rows.append({"arm": arm, "stage": "curve", "config": c, "n_train": int(n), "seed": int(seed),
                                 "cached": c is not None and run_path(c).exists()})
        return rows

    def missing_runs(self) -> list[str]:
        """The runs the analysis chapters need that are not trained (each arm's grid, then its
        selected run), described in words; empty when everything is there.  Trains nothing."""
        out = []
        for arm in ARMS:
            grid = [self.arm_base(arm).replace(lr=float(lr)) for lr in self.grid_lrs[arm]]
            missing = [c for c in grid if not run_path(c).exists()]
            if not missing:
                selected = self.selected_config(arm)
                missing = [] if run_path(selected).exists() else [selected]
            out += [f"{arm} N={c.n_train} lr={c.lr:g} seed={c.seed}" for c in missing]
        return out

    # ---- entity tracking (chapters 9-10) ---------------------------------------------------------

    @property
    def entity_task(self) -> EntityConfig:
        """The entity-tracking task the book teaches: ``et_boxes`` boxes, the study's task seed."""
        return EntityConfig(n_boxes=self.et_boxes, seed=self.task_seed)

    def entity_trials(self, split: str, n: int, boxes: int | None = None) -> list[EntityTrial]:
        """The first `n` entity-tracking trials of a split (of `boxes` boxes, default the study's),
        drawn beside the study's validation and test sets as its runs draw theirs."""
        if split not in ("train", "val", "test"):
            raise ParameterError(f"split={split!r} is not accepted: accepted values are 'train', 'val', 'test'")
        task = self.entity_task if boxes is None else EntityConfig(n_boxes=boxes, seed=self.task_seed)
        sizes = {"train": 0, "val": self.et_n_val, "test": self.et_n_test}
        sizes[split] = max(sizes[split], n)
        return entity.make_splits(task, sizes["train"], sizes["val"], sizes["test"])[split][:n]

    def entity_config(self, arm: str, n_train: int | None = None, seed: int | None = None) -> RunConfig:
        """An entity-tracking run of `arm` (``fine-tuned``: the pretrained source taught the task;
        ``scratch``: the same architecture from scratch), at `n_train` trials (default the largest
        size: the run the analyses read), one learning rate per arm, the study's stopping rule with
        ``et_min_delta`` (on a task the model has learned, the validation loss keeps falling by ever
        smaller amounts and a run with ``min_delta = 0`` would only stop at its cap)."""
        if arm not in ARMS:
            raise ParameterError(f"arm={arm!r} is not accepted: accepted values are {list(ARMS)}")
        lr = self.et_lr_finetune if arm == "fine-tuned" else self.et_lr_scratch
        return RunConfig(source=self.sources[arm], task=self.entity_task, lr=float(lr),
                         n_train=int(max(self.et_train_sizes) if n_train is None else n_train),
                         max_steps=self.et_max_steps, eval_every=self.eval_every, patience=self.patience,
                         min_delta=float(self.et_min_delta), batch_size=self.batch_size, n_val=self.et_n_val,
                         n_test=self.et_n_test, bf16=self.bf16, seed=int(self.et_seeds[0] if seed is None else seed))

    def entity_curve_runs(self, arm: str, train: bool = False) -> list[Run]:
        """The arm's entity-tracking runs at every size and seed (chapter 9 trains them)."""
        cfgs = [self.entity_config(arm, n, s) for n in self.et_train_sizes for s in self.et_seeds]
        return self._needs_runs(lambda: [get_run(c, train=train) for c in cfgs], train, chapter="09")

    def entity_curve(self, arm: str, train: bool = False) -> pd.DataFrame:
        """One row per entity-tracking run of the arm (:func:`helpers.training.experiments.run_row`)."""
        return pd.DataFrame([experiments.run_row(r) for r in self.entity_curve_runs(arm, train)])

    def entity_run(self, arm: str, train: bool = False) -> Run:
        """The arm's entity-tracking run at the largest size, first seed; the fine-tuned one is the
        book's entity-tracking **base**."""
        cfg = self.entity_config(arm)
        return self._needs_runs(lambda: get_run(cfg, train=train), train, chapter="09")

    def entity_base(self, train: bool = False) -> EntityModel:
        """The entity-tracking **base** chapters 9-10 analyse: the model source ``et_base_source``
        when the profile names one (Prakash et al.'s Llama-7B in ``paper``), else the fine-tuned
        run (:meth:`entity_run`)."""
        if self.et_base_source is not None:
            return EntityModel("base", self.et_base_source, analogue="Llama-7B")
        run = self.entity_run("fine-tuned", train)
        return EntityModel("base", run.source, run, analogue="Llama-7B")

    def entity_variants(self, train: bool = False) -> dict[str, EntityModel]:
        """Chapter 10's variants of the base: the model sources of ``et_variant_sources`` when the
        profile names any (each stands beside the model of Prakash et al.'s table of the same name,
        if there is one), else the runs of ``et_variants`` (:meth:`variant_runs`; chapter 10
        trains them)."""
        if self.et_variant_sources:
            return {name: EntityModel(name, src, analogue=name if name in VARIANT_ANALOGUES.values() else None)
                    for name, src in self.et_variant_sources.items()}
        return {name: EntityModel(name, run.source, run, analogue=VARIANT_ANALOGUES.get(name))
                for name, run in self.variant_runs(train).items()}

    def entity_sources(self) -> list[str]:
        """The model sources chapters 9-10 load beyond the study's two arms (checked before they run)."""
        return ([self.et_base_source] if self.et_base_source is not None else []) + list(self.et_variant_sources.values())

    def variant_config(self, variant: str, seed: int | None = None) -> RunConfig:
        """Chapter 10's variant `variant` (:data:`VARIANTS`) of the entity-tracking base: the base
        (``run:<key>``, or the source ``et_base_source``) fine-tuned further on ``et_variant_n_train`` entity-tracking trials of
        ``et_analysis_boxes`` boxes; on ``arith_n_train`` arithmetic trials, every weight; the
        same with rank-``lora_rank`` LoRA adapters only; or, the control, every weight on the same
        expressions answered by random digits (:class:`ArithmeticConfig` ``shuffled``), so that
        what any further fine-tuning on this format does is told from what learning arithmetic does.
        The arithmetic runs (the control too) track entity tracking on ``et_n_val`` validation
        prompts of ``et_analysis_boxes`` boxes at every evaluation (the dose-response).  The study's stopping rule, cap and
        ``et_min_delta``; validation and test sizes of the entity-tracking runs (the entity variant's
        test set is then the analysis prompts' test set, which its training never sees).  `seed`:
        the training seed, one of ``et_seeds`` (default the first: the variant the analyses read)."""
        if seed is not None and seed not in self.et_seeds:
            raise ParameterError(f"seed={seed!r} is not accepted: the variants' seeds are et_seeds {list(self.et_seeds)}")
        if variant not in VARIANTS:
            raise ParameterError(f"variant={variant!r} is not accepted: accepted values are {list(VARIANTS)}")
        base = self.entity_base()
        common = dict(source=base.source, max_steps=self.et_max_steps, eval_every=self.eval_every,
                      patience=self.patience, min_delta=float(self.et_min_delta), batch_size=self.batch_size,
                      n_val=self.et_n_val, n_test=self.et_n_test, bf16=self.bf16,
                      seed=int(self.et_seeds[0] if seed is None else seed))
        if variant == "more entity tracking":
            return RunConfig(task=EntityConfig(n_boxes=self.et_analysis_boxes, seed=self.task_seed),
                             n_train=int(self.et_variant_n_train), lr=float(self.et_lr_finetune), **common)
        arith = ArithmeticConfig(n_terms=int(self.arith_terms), max_operand=int(self.arith_max_operand),
                                 seed=self.task_seed)
        # entity tracking on validation prompts of the analysed box count, watched at every
        # evaluation (never trained on, never stopping the run): the dose-response of chapter 10
        common.update(track_task=EntityConfig(n_boxes=self.et_analysis_boxes, seed=self.task_seed),
                      n_track=int(self.et_n_val))
        if variant == "arithmetic":
            return RunConfig(task=arith, n_train=int(self.arith_n_train), lr=float(self.arith_lr), **common)
        if variant == CONTROL:
            return RunConfig(task=replace(arith, shuffled=True), n_train=int(self.arith_n_train),
                             lr=float(self.arith_lr), **common)
        return RunConfig(task=arith, n_train=int(self.arith_n_train), lr=float(self.lora_lr),
                         lora_rank=int(self.lora_rank), **common)

    def variant_runs(self, train: bool = False) -> dict[str, Run]:
        """The variants ``et_variants`` (of :data:`VARIANTS`) as finished runs of the first seed
        (the ones the analyses read; chapter 10 trains them)."""
        return self._needs_runs(lambda: {v: get_run(self.variant_config(v), train=train) for v in self.et_variants},
                                train, chapter="10")

    def variant_seed_runs(self, train: bool = False) -> dict[str, list[Run]]:
        """Every seed of ``et_seeds`` of each variant as finished runs, first seed first: the unit
        of the claim that fine-tuning further improves entity tracking (a claim about training).
        Empty when the profile gives the variants as model sources (``et_variant_sources``)."""
        if self.et_variant_sources:
            return {}
        return self._needs_runs(lambda: {v: [get_run(self.variant_config(v, int(s)), train=train) for s in self.et_seeds]
                                         for v in self.et_variants}, train, chapter="10")

    def run_keys(self) -> set[str]:
        """The keys of every run this study can read or train (its grids and learning curves, for
        every grid learning rate, since the curves take the grid's winner; the entity-tracking runs;
        the variants of the base when the base's key is known): what ``clean --runs`` keeps."""
        keys = set()
        for arm in ARMS:
            base = self.arm_base(arm)
            for lr in self.grid_lrs[arm]:
                keys.add(base.replace(lr=float(lr)).key())
                keys |= {base.replace(lr=float(lr), n_train=int(n), seed=int(s)).key()
                         for n in self.train_sizes for s in self.seeds}
            keys |= {self.entity_config(arm, int(n), int(s)).key() for n in self.et_train_sizes for s in self.et_seeds}
        if not self.et_variant_sources:
            for v in self.et_variants:
                try:
                    keys |= {self.variant_config(v, int(s)).key() for s in self.et_seeds}
                except MissingRun:              # the base is not trained: no variant of it can be
                    pass
        return keys

    def missing_entity_runs(self) -> list[str]:
        """The entity-tracking runs chapters after 9 read that are not trained, in words."""
        return [f"entity tracking, {arm} N={c.n_train} lr={c.lr:g} seed={c.seed}"
                for arm in ARMS for c in [self.entity_config(arm)] if not run_path(c).exists()]

    # ---- models --------------------------------------------------------------------------------

    @property
    def device(self):
        return default_device()

    def load(self, name: str, runs: dict[str, Run] | None = None):
        """``(model, tokenizer)`` of an analysed model on the book's device, in eval mode:
        ``'pretrained'`` (the source before fine-tuning), ``'fine-tuned'`` or ``'scratch'`` (the
        selected runs; pass `runs` to reuse ones already looked up)."""
        if name == "pretrained":
            model, tok = load_source(self.pretrained_source)
        elif name in ARMS:
            run = (runs or {}).get(name) or self.selected_run(name)
            model, tok = run.load_model()
        else:
            raise ParameterError(f"unknown model {name!r}: accepted values are {list(ANALYSED_MODELS)}")
        return model.to(self.device).eval(), tok

    # ---- how to build what is missing ----------------------------------------------------------

    def command(self, chapter: str = "02") -> str:
        """The command that runs `chapter` of this study (its profile and overrides)."""
        parts = ["python", "-m", "helpers", "run", chapter, "--profile", self.profile]
        for k, v in self.overrides.items():
            parts += ["-p", k, json.dumps(v)]
        return " ".join(shlex.quote(p) for p in parts)

    def _needs_runs(self, fn, train: bool, chapter: str = "02"):
        try:
            return fn()
        except MissingRun as e:
            if train:
                raise
            raise MissingRun(f"{e}. The analysis chapters only read trained runs; chapter {int(chapter)} trains "
                             f"them: {self.command(chapter)}") from None
