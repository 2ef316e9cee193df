"""Chapter parameters: one typed spec per name, checked before any compute.

Every chapter's ``parameters`` cell may declare only names listed in :data:`SPECS`, and a profile
(``profiles/<name>.yaml``) may set only names that some chapter declares.  Values are checked
against the spec (type and range) by :func:`check_value`, whose error names the parameter and
the accepted values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from helpers.core.errors import ParameterError
from helpers.models.sources import validate_source


@dataclass(frozen=True)
class Spec:
    kind: str                      # "int", "float", "bool", "str", "source", "list[int]", ...
    doc: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None

    def accepted(self) -> str:
        if self.choices:
            prefix = "a non-empty list of values from " if self.kind.startswith("list[") else "one of "
            return f"{prefix}{list(self.choices)}"
        rng = ""
        if self.lo is not None or self.hi is not None:
            rng = f" in [{self.lo if self.lo is not None else '-inf'}, {self.hi if self.hi is not None else 'inf'}]"
        if self.kind == "source":
            return "a model source name (see `python -m helpers models`)"
        if self.kind == "list[source]":
            return "a non-empty list of model source names (see `python -m helpers models`)"
        if self.kind == "source?":
            return "a model source name (see `python -m helpers models`) or null"
        if self.kind == "dict[source]":
            return ("a mapping of names to model source names (see `python -m helpers models`), "
                    "or {} (empty)")
        if self.kind.startswith("list["):
            return f"a non-empty list of {self.kind[5:-1]}s{rng}"
        article = "an" if self.kind[0] in "aeiou" else "a"
        return f"{article} {self.kind}{rng}"


SPECS: dict[str, Spec] = {
    "profile": Spec("str", "name of the profile that produced this chapter"),
    "show_solutions": Spec("bool", "show each exercise's solution, folded under it (false: a course build, for students)"),
    "executor": Spec("str", "where the chapter's missing training runs train: local (this process, one after "
                     "another) or ray (one Ray task per run; a local Ray cluster, or the one RAY_ADDRESS names)",
                     choices=("local", "ray")),
    # the task
    "task_seed": Spec("int", "seed of the task generator (train/val/test trials)", 0, 2**31 - 1),
    "n_samples": Spec("int", "noisy samples shown per evidence stream", 1, 16),
    "noise": Spec("float", "standard deviation of each sample around the stream's mean", 0.0, 1.0),
    # model sources
    "pretrained_source": Spec("source", "the pretrained model that is fine-tuned"),
    "scratch_source": Spec("source", "the same architecture trained from scratch (scratch:<source>)"),
    "tokenizer_sources": Spec("list[source]", "sources whose tokenizers chapter 1 compares"),
    # chapter 1
    "n_examples": Spec("int", "example prompts shown", 1, 50),
    "n_balance": Spec("int", "trials drawn to measure balance and baselines", 100, 1_000_000),
    # chapter 2: training
    "grid_lrs_finetune": Spec("list[float]", "learning rates searched for the fine-tuned arm", 1e-7, 1.0),
    "grid_lrs_scratch": Spec("list[float]", "learning rates searched for the scratch arm", 1e-7, 1.0),
    "grid_n_train": Spec("int", "training-set size of the grid search (one of train_sizes)", 1, 10**6),
    "train_sizes": Spec("list[int]", "training-set sizes of the learning curves", 1, 10**6),
    "seeds": Spec("list[int]", "training seeds per learning-curve point (the first trains the runs the analyses "
                  "read); a claim about training is decided only with at least 3", 0, 2**31 - 1),
    "et_seeds": Spec("list[int]", "training seeds of the entity-tracking learning curves and variants (the first "
                     "trains the base and the variants the analyses read)", 0, 2**31 - 1),
    "max_steps": Spec("int", "step cap: a run whose validation loss still improves stops here", 1, 10**7),
    "eval_every": Spec("int", "optimiser steps between evaluations of the validation loss (at most max_steps)",
                       1, 10**6),
    "patience": Spec("int", "a run stops after this many evaluations in a row without a lower validation loss",
                     1, 10**4),
    "batch_size": Spec("int", "trials per optimiser step", 1, 4096),
    "n_val": Spec("int", "validation trials (grid search)", 10, 10**6),
    "n_test": Spec("int", "held-out test trials (every reported number)", 10, 10**6),
    "bf16": Spec("bool", "bf16 autocast for training and evaluation on CPU"),
    # chapters 3-6: analyses of the selected runs
    "n_analysis": Spec("int", "held-out test trials analysed (the first n of the test set)", 8, 100_000),
    "n_ablation": Spec("int", "held-out test trials of the head-ablation sweeps (the costliest analysis)", 8, 100_000),
    "n_reference": Spec("int", "reference trials for mean-ablation and baselines (validation set)", 8, 100_000),
    "ablation_kinds": Spec("list[str]", "head ablations to run", choices=("zero", "mean")),
    "analysis_bf16": Spec("bool", "bf16 autocast in the analyses (fp32 when false)"),
    "n_explorer_prompts": Spec("int", "test prompts embedded in chapter 4's kernel-free attention explorer "
                               "(every layer and head of each model; the last are dropped if over its byte budget)",
                               1, 50),
    "umap_neighbors": Spec("int", "UMAP n_neighbors", 2, 200),
    "cv_folds": Spec("int", "cross-validation folds of the decoders", 2, 20),
    "n_shuffles": Spec("int", "label shuffles for the chance baselines", 1, 1000),
    # chapters 7-8: the decision task's circuit and cross-model patching
    "n_circuit_pairs": Spec("int", "counterfactual pairs per kind for the path-patching search (validation trials)",
                            4, 10_000),
    "n_resid_pairs": Spec("int", "counterfactual pairs of the residual-stream patching map", 2, 10_000),
    "resid_layer_step": Spec("int", "the residual-stream map patches every k-th layer (and the last)", 1, 100),
    "circuit_keep": Spec("int", "at most this many heads kept per path-patching group (Prakash et al.'s fixed count)",
                         1, 1000),
    "circuit_min_share": Spec("float", "a kept head's path carries at least this share of the counterfactual's flip "
                              "of the logit difference", 0.0, 1.0),
    "n_circuit_eval": Spec("int", "held-out test trials on which circuits and CMAP are evaluated", 8, 100_000),
    "n_random_circuits": Spec("int", "random circuits (and random head sets for CMAP) of the circuit's size", 1, 1000),
    "n_dcm_pairs": Spec("int", "DCM pairs per desideratum (split 50/25/25: train, choose, test)", 8, 100_000),
    "dcm_epochs": Spec("int", "DCM training epochs", 1, 100),
    # chapters 9-10: entity tracking (study parameters: the task taught and its runs)
    "et_boxes": Spec("int", "boxes per context of the entity-tracking task the book teaches and analyses", 2, 26),
    "et_train_sizes": Spec("list[int]", "training-set sizes (trials) of the entity-tracking learning curves; the "
                           "largest trains the base", 1, 10**6),
    "et_lr_finetune": Spec("float", "learning rate of the pretrained model taught entity tracking", 1e-7, 1.0),
    "et_lr_scratch": Spec("float", "learning rate of the same architecture trained on entity tracking from scratch",
                          1e-7, 1.0),
    "et_max_steps": Spec("int", "step cap of the entity-tracking runs (they stop early like every run)", 1, 10**7),
    "et_min_delta": Spec("float", "an entity-tracking run's validation loss improves only when it drops by more than "
                         "this (a model that has learned the task lowers it by ever smaller amounts)", 0.0, 10.0),
    "et_n_val": Spec("int", "entity-tracking validation trials (early stopping)", 10, 10**6),
    "et_n_test": Spec("int", "entity-tracking held-out test trials", 10, 10**6),
    # chapter 9
    "et_box_counts": Spec("list[int]", "box counts at which the pretrained model is measured zero-shot", 2, 26),
    "n_zero_shot": Spec("int", "test trials per box count of the zero-shot measurement", 10, 100_000),
    "n_et_pairs": Spec("int", "counterfactual pairs of the entity-tracking path-patching search", 4, 10_000),
    "et_keep": Spec("int", "at most this many heads kept per entity-tracking group (Prakash et al.'s fixed count)",
                    1, 1000),
    "n_et_eval": Spec("int", "held-out trials on which the entity-tracking circuit is evaluated", 8, 100_000),
    # chapters 9-10: the analysis and the variants of the base (study parameters)
    "et_analysis_boxes": Spec("int", "boxes of the prompts on which the base's circuit is found and the variants are "
                              "compared (where the base is near Llama-7B's level, so that a variant can improve)",
                              3, 26),
    "et_variant_n_train": Spec("int", "training trials of the variant fine-tuned further on entity tracking (of "
                               "et_analysis_boxes boxes)", 1, 10**6),
    "arith_n_train": Spec("int", "training trials of the variants fine-tuned further on arithmetic", 1, 10**6),
    "arith_terms": Spec("int", "operands per arithmetic expression of the arithmetic variants", 2, 6),
    "arith_max_operand": Spec("int", "largest operand of the arithmetic expressions (operands 0..this)", 9, 999),
    "arith_lr": Spec("float", "learning rate of the arithmetic variant that trains every weight", 1e-7, 1.0),
    "lora_rank": Spec("int", "rank of the LoRA adapters of the arithmetic LoRA variant", 1, 1024),
    "lora_lr": Spec("float", "learning rate of the LoRA variant (adapters only)", 1e-7, 1.0),
    "et_variants": Spec("list[str]", "the variants chapter 10 trains (when et_variant_sources is empty)",
                        choices=("more entity tracking", "arithmetic", "arithmetic (LoRA)",
                                 "shuffled arithmetic (control)")),
    "et_base_source": Spec("source?", "a model source analysed as the entity-tracking base instead of the run "
                           "chapter 9 trains (e.g. Prakash et al.'s Llama-7B); null: the run"),
    "et_variant_sources": Spec("dict[source]", "chapter 10's variants as model sources, name: source (e.g. "
                               "Prakash et al.'s Vicuna-7B, Goat-7B, FLoat-7B) instead of the three it trains; "
                               "{}: the trained ones"),
    # chapter 10
    "n_et_dcm_pairs": Spec("int", "DCM pairs per group and desideratum (split 50/25/25)", 8, 100_000),
    "et_dcm_epochs": Spec("int", "DCM training epochs on entity tracking", 1, 100),
}


# the parameters of the Study (task, model sources, training): set by the profile, overridable per
# run; every other parameter belongs to the chapter that declares it
STUDY_PARAMETERS = ("task_seed", "n_samples", "noise", "pretrained_source", "scratch_source",
                    "grid_lrs_finetune", "grid_lrs_scratch", "grid_n_train", "train_sizes", "seeds",
                    "max_steps", "eval_every", "patience", "batch_size", "n_val", "n_test", "bf16",
                    "et_boxes", "et_train_sizes", "et_seeds", "et_lr_finetune", "et_lr_scratch", "et_max_steps", "et_min_delta", "et_n_val",
                    "et_n_test", "et_analysis_boxes", "et_variant_n_train", "arith_n_train", "arith_terms",
                    "arith_max_operand", "arith_lr", "lora_rank",
                    "lora_lr", "et_variants", "et_base_source", "et_variant_sources")


# parameters that say how a chapter computes, not what: they change no number, so they are not part
# of a build folder's name nor of the overrides its verdicts record
RUNTIME_PARAMETERS = ("executor",)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _in_range(spec: Spec, v) -> bool:
    return (spec.lo is None or v >= spec.lo) and (spec.hi is None or v <= spec.hi)


def absolute_sources(name: str, value: Any) -> Any:
    """`value` with the local folders its model sources name made absolute (for a parameter whose
    kind is a source, a list or a mapping of them; other values as given): the command line
    resolves them against the user's folder before a chapter's kernel starts in another one."""
    from helpers.models.sources import absolute_source
    kind = SPECS[name].kind if name in SPECS else ""
    if kind in ("source", "source?"):
        return absolute_source(value)
    if kind == "list[source]" and isinstance(value, list):
        return [absolute_source(v) for v in value]
    if kind == "dict[source]" and isinstance(value, dict):
        return {k: absolute_source(v) for k, v in value.items()}
    return value


def check_value(name: str, value: Any) -> None:
    """Raise ValueError naming the parameter and its accepted values if `value` does not fit."""
    if name not in SPECS:
        raise ParameterError(f"unknown parameter {name!r}: accepted parameters are {sorted(SPECS)}")
    spec = SPECS[name]
    bad = ParameterError(f"parameter {name}={value!r} is not accepted: expected {spec.accepted()} ({spec.doc})")
    scalar: dict[str, Callable[[Any], bool]] = {
        "int": lambda v: _is_int(v) and _in_range(spec, v),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and _in_range(spec, v),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str) and (not spec.choices or v in spec.choices),
    }
    def check_source(v) -> None:
        if not isinstance(v, str):
            raise bad
        try:
            validate_source(v)
        except ValueError as e:
            raise ParameterError(f"parameter {name}: {e}") from None
    if spec.kind in scalar:
        if not scalar[spec.kind](value):
            raise bad
    elif spec.kind == "source":
        check_source(value)
    elif spec.kind == "source?":
        if value is not None:
            check_source(value)
    elif spec.kind == "dict[source]":
        if not isinstance(value, dict) or not all(isinstance(k, str) and k.strip() for k in value):
            raise bad
        for v in value.values():
            check_source(v)
    elif spec.kind.startswith("list["):
        inner = spec.kind[5:-1]
        if not isinstance(value, (list, tuple)) or not value:
            raise bad
        for v in value:
            if inner == "source":
                check_source(v)
            elif not scalar[inner](v):
                raise bad
    else:  # pragma: no cover - a spec typo
        raise AssertionError(f"spec {name} has unknown kind {spec.kind}")


def check_relations(params: dict[str, Any]) -> None:
    """Constraints between parameters of one chapter."""
    if "eval_every" in params and "max_steps" in params and params["eval_every"] > params["max_steps"]:
        raise ParameterError(f"parameter eval_every={params['eval_every']} must be at most "
                             f"max_steps={params['max_steps']} (a run evaluates at least once before its cap)")
    if "grid_n_train" in params and "train_sizes" in params and params["grid_n_train"] not in params["train_sizes"]:
        raise ParameterError(f"parameter grid_n_train={params['grid_n_train']} must be one of "
                         f"train_sizes={params['train_sizes']} (the grid's best run is reused by the curve)")
    if "base" in (params.get("et_variant_sources") or {}):
        raise ParameterError("parameter et_variant_sources: 'base' names the entity-tracking base; give the "
                             "variants other names")
    if "eval_every" in params and "et_max_steps" in params and params["eval_every"] > params["et_max_steps"]:
        raise ParameterError(f"parameter eval_every={params['eval_every']} must be at most "
                             f"et_max_steps={params['et_max_steps']} (a run evaluates at least once before its cap)")
