"""Activations of the analysed models: residual streams at chosen layers and positions, and each
head's output ``z``, collected in one forward pass per batch through the architecture adapter.

**Which residual stream.**  :func:`collect_hidden_states` returns, for each trial, the residual
stream at every requested layer and token position: index ``0`` is the stream entering the first
decoder layer (token + position embeddings), index ``l`` (1 <= l <= L) is the **raw output of
decoder layer l-1**.  The *last layer* of the analyses is index ``L``, the output of the last
decoder layer *before* the final norm (GPT-2's ``ln_f``, Llama's ``norm``).

This is deliberately not Hugging Face's ``output_hidden_states[-1]``: in transformers 5, for both
GPT-2 and Llama, the last element of ``hidden_states`` has the final norm already applied (it is
``last_hidden_state``), while elements ``0 .. L-1`` are raw streams.  We read the raw last stream
with a pre-hook on the final norm (found through :class:`helpers.models.arch.Arch`), so every index is
the same kind of object; ``final_norm=True`` gives Hugging Face's convention for index ``L``
instead.  ``tests/test_representations.py`` checks both against a manual run of the layers.

**Positions.**  The task's prompts have the same token length within one tokenizer (every number
is written with a sign and two decimals), so positions align across trials and position ``-1`` is
the answer position (the prompt's last token, ``:`` of ``Answer:``, where the model's choice is
read).  A set of prompts of different lengths raises ``ValueError``.

Their geometry (UMAP, silhouettes) is in :mod:`helpers.readouts.geometry`; the landmarks of
:func:`landmark_states` come from :func:`helpers.tasks.tokens.landmark_positions`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from helpers.models.arch import Arch
from helpers.models.scoring import encode_prompts
from helpers.core.device import autocast, model_device
from helpers.tasks.decision import Trial


# ---- tokens and positions ----------------------------------------------------------------------

def encode_equal_length(tokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """Token ids (n, T) of prompts that must all have the same token length."""
    seqs = encode_prompts(tokenizer, list(prompts))
    lengths = sorted({len(s) for s in seqs})
    if len(lengths) != 1:
        examples = {n: next(p for p, s in zip(prompts, seqs) if len(s) == n) for n in lengths[:3]}
        raise ValueError(
            f"the prompts have different token lengths {lengths} in this tokenizer, so token "
            f"positions do not align across trials (examples: {examples}); the analyses need "
            "prompts of one token length")
    return torch.tensor(seqs, dtype=torch.long)


def token_labels(tokenizer, prompt) -> list[str]:
    """A readable label per token position, e.g. ``['Context', ':', ' color', '.', ...]``.

    `prompt` may also be a list of prompts (of one token length): a position whose token differs
    across them shows the distinct tokens joined by ``|`` when there are two (``' motion| color'``)
    and ``#`` otherwise (the digits and signs of the numbers)."""
    if isinstance(prompt, str):
        return [tokenizer.decode([i]) for i in encode_prompts(tokenizer, [prompt])[0]]
    ids = encode_equal_length(tokenizer, prompt).numpy()
    out = []
    for col in ids.T:
        distinct = list(dict.fromkeys(col.tolist()))
        if len(distinct) == 1:
            out.append(tokenizer.decode([distinct[0]]))
        elif len(distinct) == 2:
            out.append("|".join(tokenizer.decode([i]) for i in distinct))
        else:
            out.append("#")
    return out


def _positions(spec, T: int) -> list[int]:
    if isinstance(spec, str):
        if spec == "all":
            return list(range(T))
        if spec == "last":
            return [T - 1]
        raise ValueError(f"positions={spec!r} is not accepted: use 'all', 'last', an int or a list of ints")
    idx = [spec] if isinstance(spec, (int, np.integer)) else list(spec)
    out = []
    for p in idx:
        if not -T <= p < T:
            raise ValueError(f"position {p} is out of range for prompts of {T} tokens")
        out.append(int(p) % T)
    return out


def _layers(spec, L: int) -> list[int]:
    """Indices into the L+1 residual streams (0 = embeddings, L = last layer's output)."""
    if spec is None:
        return list(range(L + 1))
    idx = [spec] if isinstance(spec, (int, np.integer)) else list(spec)
    out = []
    for l in idx:
        if not -(L + 1) <= l <= L:
            raise ValueError(f"layer {l} is out of range: accepted are 0..{L} (0 = embeddings, "
                             f"{L} = output of the last layer) or negative indices")
        out.append(int(l) % (L + 1))
    return out


# ---- collecting activations ------------------------------------------------------------------

@torch.no_grad()
def collect_activations(model, tokenizer, trials: Sequence[Trial], streams: dict | None = None,
                        heads_position: int | None = None, batch_size: int = 32, bf16: bool = False,
                        final_norm: bool = False) -> dict[str, np.ndarray]:
    """Several selections of activations from one forward pass per batch.

    ``streams = {name: (layers, positions)}`` gives ``out[name]`` of shape
    (n_trials, n_layers_selected, n_positions_selected, d_model) (see :func:`collect_hidden_states`
    for the meaning of the indices).  ``heads_position`` (e.g. ``-1``) adds ``out['z']``: every
    head's attention output ``z`` at that position, (n_trials, n_layers, n_heads, d_head), read
    through the adapter's typed ``z`` hook point.  Everything is returned as float32 numpy.
    """
    arch = Arch(model)
    L = arch.n_layers
    streams = streams or {}
    ids = encode_equal_length(tokenizer, [t.prompt for t in trials])
    n, T = ids.shape
    sel = {k: (_layers(ls, L), _positions(ps, T)) for k, (ls, ps) in streams.items()}
    out = {k: np.zeros((n, len(ls), len(ps), arch.d_model), dtype=np.float32) for k, (ls, ps) in sel.items()}
    if heads_position is not None:
        hp = _positions(heads_position, T)[0]
        out["z"] = np.zeros((n, L, arch.n_heads, arch.d_head), dtype=np.float32)
    device = model_device(model)
    was_training = model.training
    model.eval()
    grabbed: dict = {}

    def grab_z(layer):
        def fn(z):
            grabbed[("z", layer)] = z[:, hp].float().cpu()
        return fn

    def grab_last(module, args):
        grabbed["raw_last"] = args[0].float().cpu()

    hooks = {("z", l): grab_z(l) for l in range(L)} if heads_position is not None else {}
    handle = arch.final_norm().register_forward_pre_hook(grab_last)
    try:
        with arch.hooks(hooks):
            for start in range(0, n, batch_size):
                b = ids[start:start + batch_size].to(device)
                with autocast(device, bf16):
                    hs = arch.base(input_ids=b, output_hidden_states=bool(sel)).hidden_states
                if sel:
                    stack = [h.float().cpu() for h in hs[:L]]
                    stack.append(hs[L].float().cpu() if final_norm else grabbed["raw_last"])
                    for k, (ls, ps) in sel.items():
                        out[k][start:start + len(b)] = torch.stack([stack[l][:, ps] for l in ls], 1).numpy()
                if heads_position is not None:
                    out["z"][start:start + len(b)] = torch.stack([grabbed[("z", l)] for l in range(L)], 1).numpy()
                grabbed.clear()
    finally:
        handle.remove()
        model.train(was_training)
    return out


def collect_hidden_states(model, tokenizer, trials: Sequence[Trial], layers=None, positions="all",
                          batch_size: int = 32, bf16: bool = False, final_norm: bool = False) -> np.ndarray:
    """Residual streams, (n_trials, n_layers_selected, n_positions_selected, d_model), float32.

    `layers`: indices into the ``L + 1`` streams (``None`` = all; ``0`` = embeddings, ``l`` = raw
    output of decoder layer ``l - 1``, ``L`` or ``-1`` = the last layer's output *before* the final
    norm; ``final_norm=True`` applies the final norm to index ``L``, i.e. Hugging Face's
    ``hidden_states[-1]``).  `positions`: ``'all'``, ``'last'`` (the answer position), an int or
    a list of ints (negative counts from the end).
    """
    return collect_activations(model, tokenizer, trials, {"h": (layers, positions)},
                               batch_size=batch_size, bf16=bf16, final_norm=final_norm)["h"]


# ---- figure -------------------------------------------------------------------------------------


def landmark_states(model, tokenizer, trials: Sequence[Trial], bf16: bool = False) -> dict[str, np.ndarray]:
    """The last layer's residual stream (before the final norm) at each landmark of the task's
    prompts (:func:`helpers.tasks.tokens.landmark_positions`, found on the first prompt: they have
    one token length), in one pass: landmark name -> (n_trials, d_model)."""
    from helpers.tasks.tokens import landmark_positions
    landmarks = landmark_positions(tokenizer, trials[0].prompt)
    H = collect_hidden_states(model, tokenizer, trials, layers=[-1], positions=list(landmarks.values()),
                              bf16=bf16)[:, 0]
    return {lm: H[:, i] for i, lm in enumerate(landmarks)}
