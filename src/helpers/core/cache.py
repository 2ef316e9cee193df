"""Analysis results cached on disk, keyed by their full config (like training runs, smaller).

A chapter's expensive analysis (a circuit search, an ablation sweep) that a later chapter reads
again is computed once per config: :func:`cached` stores a nested dict of numpy arrays and JSON
values in ``<data>/analyses/<kind>-<key>/`` (``arrays.npz`` + ``values.json`` + ``config.json``),
written atomically and verified on every read (:mod:`helpers.core.artifacts`).  The config must
name everything the result depends on (the run's key, the trials, the settings): a different
config is a different folder, never a stale hit.

>>> res = cached("circuit", {"run": run.key, "n": 32}, lambda: {"scores": np.zeros((2, 3)), "heads": [[1, 2]]})  # doctest: +SKIP
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from helpers.core import artifacts
from helpers.core.paths import data_dir

SEP = "/"


def analyses_dir() -> Path:
    d = data_dir() / "analyses"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _split(tree: dict, prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays, values = {}, {}
    for k, v in tree.items():
        if SEP in str(k):
            raise ValueError(f"key {k!r} contains {SEP!r}, which cached() uses to nest keys")
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            a, j = _split(v, name + SEP)
            arrays.update(a)
            values.update(j)
            if not v:
                values[name] = {}
        elif isinstance(v, np.ndarray):
            arrays[name] = v
        else:
            json.dumps(v)                      # raises TypeError on what JSON cannot hold
            values[name] = v
    return arrays, values


def _join(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for name, v in flat.items():
        *parents, leaf = name.split(SEP)
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def path_of(kind: str, config: dict) -> Path:
    return analyses_dir() / f"{kind}-{artifacts.config_key(config)}"


def cached(kind: str, config: dict, compute: Callable[[], dict]) -> dict:
    """The result of `compute()` for `config`: read from disk when this config was computed
    before, else computed and stored.  Results are nested dicts (string keys) of numpy arrays
    and JSON values (numbers, strings, lists)."""
    final = path_of(kind, config)
    if final.exists():
        artifacts.verify_dir(final)
        with np.load(final / "arrays.npz") as z:
            arrays = {k: z[k] for k in z.files}
        values = json.loads((final / "values.json").read_text())
        return _join({**values, **arrays})
    result = compute()
    arrays, values = _split(result)
    staging = artifacts.new_staging_dir(final)
    np.savez(staging / "arrays.npz", **arrays)
    (staging / "values.json").write_text(json.dumps(values))
    (staging / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True, default=str))
    artifacts.commit_dir(staging, final)
    return result
