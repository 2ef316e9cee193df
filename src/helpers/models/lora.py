"""LoRA (Hu et al. 2022) through ``peft``: adapters trained on the book's models, saved as their own
small artifacts, and loaded onto their base model (Goat-7B is such an adapter on Llama-7B).

* :func:`add_lora` puts rank-`rank` adapters on every attention projection (:data:`TARGETS`: GPT-2's
  ``c_attn`` and ``attn.c_proj``; Llama's ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``), with
  ``lora_alpha = 2 * rank``, no dropout, and freezes every other weight.  It returns the ``peft``
  wrapper (to save the adapter) and the model it modified in place (a plain transformers model with
  the adapters inside, which the book's training and analysis code calls as any other).
* :func:`save_adapter` writes ``adapter_config.json`` and ``adapter_model.safetensors`` (peft's
  format: only the adapter's weights).
* :func:`apply_adapter` loads an adapter folder (or a Hugging Face hub id) onto a base model and by
  default merges it (``W + B A * alpha / rank``), so every tool of the book sees a plain model of
  the base's architecture; ``merge=False`` keeps the adapter as separate layers (the test that
  merged and unmerged agree uses it).

``peft`` is a well-kept library (Hugging Face) and the format Goat's adapter is published in, so
the book uses it rather than its own LoRA layers.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from helpers.core.errors import ParameterError, SourceUnavailable

TARGETS = {"gpt2": r".*\.attn\.(c_attn|c_proj)$",
           "llama": r".*\.self_attn\.(q_proj|k_proj|v_proj|o_proj)$"}


def _peft():
    try:
        import peft
    except ImportError:   # pragma: no cover - peft is in requirements.txt
        raise SourceUnavailable("LoRA needs the PyPI package 'peft' (pip install -r requirements.txt; "
                                "`make setup` does it)") from None
    return peft


def _family(model) -> str:
    kind = getattr(model.config, "model_type", None)
    if kind not in TARGETS:
        raise ParameterError(f"LoRA is set up for model types {sorted(TARGETS)}; this model is {kind!r}")
    return kind


def add_lora(model, rank: int, seed: int = 0):
    """``(peft_model, model)``: rank-`rank` adapters on `model`'s attention projections (module
    docstring), initialised from `seed` (B = 0, so the model computes the same function as before)."""
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= 1024:
        raise ParameterError(f"lora_rank={rank!r} is out of range: accepted values are integers 1..1024")
    peft = _peft()
    family = _family(model)
    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, bias="none",
                             target_modules=TARGETS[family],
                             fan_in_fan_out=family == "gpt2")     # GPT-2's Conv1D stores (in, out)
    torch.manual_seed(seed)
    with warnings.catch_warnings():   # peft calls a transformers method deprecated for v6
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = peft.get_peft_model(model, config)
    return wrapped, wrapped.get_base_model()


def save_adapter(peft_model, folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        peft_model.save_pretrained(str(folder), safe_serialization=True)


def apply_adapter(model, adapter: str | Path, merge: bool = True):
    """`model` with the adapter at `adapter` (a folder, or a hub id in the Hugging Face cache or
    reachable), merged into its weights unless ``merge=False`` (then the peft wrapper)."""
    peft = _peft()
    _family(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            wrapped = peft.PeftModel.from_pretrained(model, str(adapter))
    except (OSError, ValueError) as e:
        raise SourceUnavailable(f"cannot load the LoRA adapter {str(adapter)!r}: {e}. Give a folder with "
                                "adapter_config.json and adapter_model.safetensors, or a hub id whose files are "
                                "in the Hugging Face cache") from None
    wrapped.eval()
    return wrapped.merge_and_unload() if merge else wrapped
