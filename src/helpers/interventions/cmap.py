"""Cross-model activation patching (CMAP, Prakash et al. 2024): run model A on the prompts and
replace some of its activations by model B's on the *same* prompts (head outputs ``z``; or a
head's ``q``/``k``/``v`` input, e.g. q at the head's position and k, v at the earlier positions).

Both models must have the same shape (family, layers, heads, key/value heads, head size, width,
vocabulary): :func:`check_same_shape` raises :class:`~helpers.core.errors.ParameterError` naming
the first mismatch.  The components are :class:`~.patching.Component` s; B's activations of them
are recorded on the prompts and patched in by :func:`~.patching.generic_patch`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from helpers.core.errors import ParameterError
from helpers.interventions.patching import Component, _as_entries, _last, generic_patch, last_logits, record
from helpers.interventions.patching import heads_components  # noqa: F401  (re-exported for CMAP users)
from helpers.models.arch import Arch


def _shape(arch: Arch) -> dict:
    return {"family": arch.family, "n_layers": arch.n_layers, "n_heads": arch.n_heads,
            "n_kv_heads": arch.n_kv_heads, "d_head": arch.d_head, "d_model": arch.d_model,
            "vocab_size": arch.model.get_output_embeddings().weight.shape[0]}


def check_same_shape(a: Arch, b: Arch) -> None:
    sa, sb = _shape(a), _shape(b)
    for k in sa:
        if sa[k] != sb[k]:
            raise ParameterError(f"cross-model patching needs models of the same shape: {k} is {sa[k]!r} in "
                                 f"model A and {sb[k]!r} in model B")


def moved_share(patched, a, b):
    """The share of B's advantage over A that a patch moves into A: ``(mean(patched) - mean(a)) /
    (mean(b) - mean(a))``, means over the last axis (per-prompt outcomes; leading axes, such as
    bootstrap resamples, are kept).  The one rule of the book for no advantage: NaN wherever B is
    not better than A (``mean(b) - mean(a) <= 0``), since there is nothing to move.  A float for
    1-d inputs, else an array."""
    patched, a, b = (np.asarray(x, float) for x in (patched, a, b))
    gap = b.mean(-1) - a.mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(gap > 0, (patched.mean(-1) - a.mean(-1)) / np.where(gap > 0, gap, 1.0), np.nan)
    return float(out) if np.ndim(out) == 0 else out


@dataclass
class CMAPResult:
    a: np.ndarray            # (batch,) metric of model A
    b: np.ndarray            # (batch,) metric of model B
    patched: np.ndarray      # (batch,) metric of A with B's components patched in

    @property
    def moved(self) -> float:
        """Share of B's advantage moved into A (:func:`moved_share`); NaN when B is not better."""
        return moved_share(self.patched, self.a, self.b)


@torch.no_grad()
def cmap(a: Arch, b: Arch, ids: torch.Tensor, components: Component | Sequence[Component], metric: Callable,
         last=None) -> CMAPResult:
    """Model A on `ids` with `components` (patched together) taken from model B on the same `ids`."""
    check_same_shape(a, b)
    (entry,) = _as_entries([components])
    last = _last(ids, last)
    cache = record(b, ids, {c.key for c in entry})
    metric_a = metric(last_logits(a, a.residual_streams(ids)[-1], last)).float().cpu().numpy()
    metric_b = metric(last_logits(b, b.residual_streams(ids)[-1], last)).float().cpu().numpy()
    patched = generic_patch(a, ids, cache, [entry], metric, last)[0]
    return CMAPResult(metric_a, metric_b, patched)

