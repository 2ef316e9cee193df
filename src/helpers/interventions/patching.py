"""Activation patching: one generic engine, in the shape of TransformerLens's
``generic_activation_patch``, and thin specialisations.

A run on the *clean* prompts has some of its activations replaced by those of a *source* run (the
counterfactual prompts, or another model on the same prompts: :mod:`.cmap`), and a metric
(:mod:`.metrics`) is read from the logits at each prompt's last position.

* What to patch is a :class:`Component`: a hook point of :class:`~helpers.models.arch.Arch`
  (``z``, ``q``, ``k``, ``v`` per head; ``resid_pre``, ``attn_out`` for the whole stream), a
  layer, the heads (head points only; default all) and the positions, **per prompt** (role
  positions differ between prompts): ``None`` (every position), an int (that position in every
  prompt), ``(batch,)`` ints (one position per prompt), ``(batch, k)`` ints (k per prompt) or a
  ``(batch, pos)`` boolean mask.  A position of the clean run takes the source's value *at the
  same position*, so clean and source prompts must have the same token length.
* :func:`generic_patch` takes a list of *patches*, each a component or a list of components
  patched together in one run, and returns the metric per patch and prompt;
  :func:`heads_components` builds the components of a set of heads.
* Specialisations: :func:`patch_heads` (each head's ``z``, ``q``, ``k`` or ``v`` alone, at all
  given positions or position by position), :func:`patch_resid` (the residual stream entering each
  layer, position by position).

Speed, with the same numbers as one forward per patch: the clean residual stream entering every
layer is computed once and a patch whose first component is at layer ``l`` only runs layers
``l..``; several patches run at once, stacked in the batch dimension (``max_rows`` rows per pass);
logits are computed at the last positions only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from helpers.core.errors import ParameterError
from helpers.models.arch import HOOK_POINTS, Arch

HEAD_POINTS = ("z", "q", "k", "v")


@dataclass(frozen=True, eq=False)
class Component:
    """A hook point at one layer, some heads (head points only; None: all) and some positions
    (see the module docstring)."""
    point: str
    layer: int
    heads: int | Sequence[int] | None = None
    positions: object = None

    def __post_init__(self):
        if self.point not in HOOK_POINTS:
            raise ParameterError(f"unknown hook point {self.point!r}: accepted points are {HOOK_POINTS}")
        if self.heads is not None and self.point not in HEAD_POINTS:
            raise ParameterError(f"heads={self.heads!r} given for {self.point!r}, which is not per head: "
                                 f"heads apply to {HEAD_POINTS}")

    @property
    def key(self) -> tuple[str, int]:
        return self.point, self.layer


def position_mask(positions, batch: int, n_pos: int, device=None) -> torch.Tensor:
    """A ``(batch, pos)`` boolean mask from any accepted form of `positions`."""
    if positions is None:
        return torch.ones(batch, n_pos, dtype=torch.bool, device=device)
    if isinstance(positions, (int, np.integer)):
        p = int(positions)
        if not -n_pos <= p < n_pos:
            raise ParameterError(f"position {p} is out of range: the prompts have {n_pos} positions")
        m = torch.zeros(batch, n_pos, dtype=torch.bool, device=device)
        m[:, p] = True
        return m
    t = torch.as_tensor(positions, device=device)
    if t.dtype == torch.bool:
        if tuple(t.shape) != (batch, n_pos):
            raise ParameterError(f"a position mask must have shape (batch, pos) = {(batch, n_pos)}; "
                                 f"got {tuple(t.shape)}")
        return t
    t = t.long()
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2 or t.shape[0] != batch:
        raise ParameterError(f"positions of shape {tuple(torch.as_tensor(positions).shape)} do not fit {batch} "
                             "prompts: give (batch,) or (batch, k) ints, or a (batch, pos) boolean mask")
    if (t < 0).any() or (t >= n_pos).any():
        raise ParameterError(f"positions {t.min().item()}..{t.max().item()} are out of range: the prompts "
                             f"have positions 0..{n_pos - 1}")
    m = torch.zeros(batch, n_pos, dtype=torch.bool, device=device)
    m.scatter_(1, t, True)
    return m


def _head_mask(arch: Arch, heads, device=None) -> torch.Tensor:
    m = torch.zeros(arch.n_heads, dtype=torch.bool, device=device)
    if heads is None:
        m[:] = True
        return m
    hs = [heads] if isinstance(heads, (int, np.integer)) else list(heads)
    bad = [h for h in hs if not 0 <= int(h) < arch.n_heads]
    if bad:
        raise ParameterError(f"heads {bad} are out of range: accepted heads are 0..{arch.n_heads - 1}")
    m[[int(h) for h in hs]] = True
    return m


def _last(ids: torch.Tensor, last) -> torch.Tensor:
    if last is None:
        return torch.full((ids.shape[0],), ids.shape[1] - 1, dtype=torch.long, device=ids.device)
    return torch.as_tensor(last, device=ids.device).long()


@torch.no_grad()
def record(arch: Arch, ids: torch.Tensor, keys) -> dict[tuple[str, int], torch.Tensor]:
    """The activations ``{(point, layer): tensor}`` of one forward pass on `ids`."""
    out: dict = {}

    def grab(key):
        def fn(x):
            out[key] = x.detach().clone()
        return fn
    keys = sorted(set(tuple(k) for k in keys), key=lambda k: (k[1], k[0]))
    with arch.hooks({k: grab(k) for k in keys}):
        arch.base(input_ids=ids)
    return out


def last_logits(arch: Arch, final_stream: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Logits at each row's position `last` from the stream after the last layer."""
    return arch.unembed(final_stream[torch.arange(final_stream.shape[0], device=final_stream.device), last])


def _as_entries(patches) -> list[tuple[Component, ...]]:
    entries = []
    for p in patches:
        e = (p,) if isinstance(p, Component) else tuple(p)
        if not all(isinstance(c, Component) for c in e):
            raise ParameterError("each patch must be a Component or a list of Components")
        entries.append(e)
    return entries


def _source_cache(arch: Arch, ids: torch.Tensor, source, keys) -> dict:
    if isinstance(source, dict):
        missing = sorted(set(keys) - set(source))
        if missing:
            raise ParameterError(f"the source activations lack {missing}: record them with patching.record")
        cache = source
    else:
        src = torch.as_tensor(source, device=ids.device)
        if src.shape != ids.shape:
            raise ParameterError(f"source prompts of shape {tuple(src.shape)} do not align with the clean "
                                 f"prompts {tuple(ids.shape)}: positions are patched one to one, so both need "
                                 "the same batch size and token length")
        cache = record(arch, src, keys)
    for k in keys:
        if cache[k].shape[:2] != ids.shape:
            raise ParameterError(f"source activation {k} has shape {tuple(cache[k].shape)}; the clean prompts "
                                 f"are {tuple(ids.shape)}")
    return cache


def _edit(mask: torch.Tensor, src: torch.Tensor) -> Callable:
    def fn(x):
        return torch.where(mask, src, x)
    return fn


@torch.no_grad()
def generic_patch(arch: Arch, ids: torch.Tensor, source, patches, metric: Callable, last=None,
                  max_rows: int = 128) -> np.ndarray:
    """The metric of the clean run on `ids` with each patch applied: ``(n_patches, batch)`` (plus
    any trailing axes a metric returns: ``lambda logits: logits`` gives the last-position logits).

    `source`: the source prompts (same shape as `ids`; their activations are recorded), or a dict
    ``{(point, layer): activation}`` from :func:`record` (e.g. another model's).  `patches`: a
    list whose items are a :class:`Component` or a list of them (patched together; an empty list
    patches nothing and gives the clean run).  `last`: each prompt's last position (default: the
    final one).  `metric`: see :mod:`.metrics`."""
    entries = _as_entries(patches)
    B, T = ids.shape
    last = _last(ids, last)
    keys = sorted({c.key for e in entries for c in e}, key=lambda k: (k[1], k[0]))
    for point, layer in keys:
        if not 0 <= layer < arch.n_layers:
            raise ParameterError(f"layer {layer} is out of range: accepted layers are 0..{arch.n_layers - 1}")
    cache = _source_cache(arch, ids, source, keys)
    streams = arch.residual_streams(ids)
    starts = [min((c.layer for c in e), default=arch.n_layers) for e in entries]
    out = None
    masks: dict[int, torch.Tensor] = {}                  # id(component) -> (B, T, H or 1)

    def comp_mask(c: Component) -> torch.Tensor:
        if id(c) not in masks:
            pm = position_mask(c.positions, B, T, ids.device)
            masks[id(c)] = (pm[:, :, None] & _head_mask(arch, c.heads, ids.device)[None, None]
                            if c.point in HEAD_POINTS else pm[:, :, None])
        return masks[id(c)]

    per_pass = max(1, max_rows // B)
    order = sorted(range(len(entries)), key=lambda i: starts[i])
    i = 0
    while i < len(order):
        start = starts[order[i]]
        chunk = [order[i]]
        while (i + len(chunk) < len(order) and len(chunk) < per_pass
               and starts[order[i + len(chunk)]] == start):
            chunk.append(order[i + len(chunk)])
        i += len(chunk)
        n = len(chunk)
        fns = {}
        for key in {c.key for j in chunk for c in entries[j]}:
            width = arch.n_heads if key[0] in HEAD_POINTS else 1
            mask = torch.zeros(n * B, T, width, dtype=torch.bool, device=ids.device)
            for k, j in enumerate(chunk):
                for c in entries[j]:
                    if c.key == key:
                        mask[k * B:(k + 1) * B] |= comp_mask(c)
            src = cache[key]
            src = src.repeat(n, *([1] * (src.dim() - 1)))
            fns[key] = _edit(mask[..., None] if key[0] in HEAD_POINTS else mask, src)
        hidden = streams[start].repeat(n, 1, 1)
        with arch.hooks(fns):
            final = arch.run_layers(hidden, start) if start < arch.n_layers else hidden
        logits = last_logits(arch, final, last.repeat(n))
        values = metric(logits.reshape(n, B, -1)).float().cpu().numpy()
        if out is None:                       # (n_patches, batch) or a metric's own trailing axes
            out = np.zeros((len(entries),) + values.shape[1:])
        out[chunk] = values
    return out


def heads_components(heads: Sequence[tuple[int, int]], point: str = "z", positions=None) -> list[Component]:
    """One :class:`Component` per layer of `heads` (``[(layer, head), ...]``), at `point` and
    `positions`: what patching a set of heads together (a circuit, a group) takes."""
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(int(l), []).append(int(h))
    return [Component(point, l, tuple(hs), positions) for l, hs in sorted(by_layer.items())]


def patch_heads(arch: Arch, ids: torch.Tensor, source, metric: Callable, point: str = "z",
                layers: Sequence[int] | None = None, positions=None, by_position: bool = False,
                last=None, max_rows: int = 128) -> np.ndarray:
    """Each head's `point` (``z``, ``q``, ``k`` or ``v``) patched alone.

    ``by_position=False``: at `positions` (default all): ``(n_layers, n_heads, batch)``.
    ``by_position=True``: at each position alone: ``(n_layers, pos, n_heads, batch)``
    (TransformerLens's ``get_act_patch_attn_head_out_by_pos``: ``[layer, pos, head]`` of a scalar metric)."""
    if point not in HEAD_POINTS:
        raise ParameterError(f"point={point!r} is not a head hook point: accepted points are {HEAD_POINTS}")
    layers = list(range(arch.n_layers)) if layers is None else list(layers)
    H, T = arch.n_heads, ids.shape[1]
    if by_position:
        if positions is not None:
            raise ParameterError("by_position=True patches every position in turn; leave positions=None")
        patches = [Component(point, l, h, t) for l in layers for t in range(T) for h in range(H)]
        shape = (len(layers), T, H, ids.shape[0])
    else:
        patches = [Component(point, l, h, positions) for l in layers for h in range(H)]
        shape = (len(layers), H, ids.shape[0])
    return generic_patch(arch, ids, source, patches, metric, last, max_rows).reshape(shape)


def patch_resid(arch: Arch, ids: torch.Tensor, source, metric: Callable, layers: Sequence[int] | None = None,
                last=None, max_rows: int = 128) -> np.ndarray:
    """The residual stream entering each layer patched at each position alone: ``(n_layers, pos,
    batch)`` (TransformerLens's ``get_act_patch_resid_pre``)."""
    layers = list(range(arch.n_layers)) if layers is None else list(layers)
    T = ids.shape[1]
    patches = [Component("resid_pre", l, None, t) for l in layers for t in range(T)]
    return generic_patch(arch, ids, source, patches, metric, last, max_rows).reshape(len(layers), T, ids.shape[0])
