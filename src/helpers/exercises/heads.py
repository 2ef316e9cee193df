"""Chapter 3's and chapter 7's exercises on attention heads, on tiny random GPT-2 and Llama models
(2 layers, 4 heads; the Llama has 2 key/value heads shared by its 4 query heads).

* ``03-zero-head``: ``zero_head(z, head) -> z``: the hook function for the book's ``z`` point
  (each head's output before the output projection, ``(batch, pos, n_heads, d_head)``) that
  zero-ablates one head.
* ``03-hook-removed``: ``logits_without_head(arch, ids, layer, head) -> logits``: the same ablation
  with a raw PyTorch forward pre-hook on ``arch.out_proj(layer)`` (its input is
  ``(batch, pos, n_heads * d_head)``), removed afterwards, *also when the model raises*.
* ``07-patch-head``: ``patch_head(arch, clean_ids, cf_ids, layer, head, position) -> logits``: the
  clean run's logits at the last position with one head's ``z`` at one position taken from the
  counterfactual run (activation patching of one head).
* ``04-attention`` and ``08-cmap-head``: see :func:`check_attention_pattern`, :func:`check_cmap_head`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

import torch

from helpers.exercises.checking import FunctionRaised, Result, call, hook_snapshot, leftover_hooks, remove_new_hooks, where_different

MODELS = ("tiny-gpt2", "tiny-llama")
LAYER, HEAD = 1, 2


def _arch(name: str):
    return _arch_seeded(name, 7)


def _ids(seed: int, batch: int = 3, pos: int = 6) -> torch.Tensor:
    return torch.randint(0, 1000, (batch, pos), generator=torch.Generator().manual_seed(seed))


def _logits(arch, ids, fns=None) -> torch.Tensor:
    with torch.no_grad(), arch.hooks(fns or {}):
        return arch.model(input_ids=ids).logits


def _zeroed(z, head):
    z = z.clone()
    z[:, :, head] = 0
    return z


def check_zero_head(fn) -> Result:
    name = "03-zero-head"
    z = torch.randn(2, 5, 4, 3, generator=torch.Generator().manual_seed(0))
    got = call(fn, z.clone(), HEAD)
    want = _zeroed(z, HEAD)
    if got is None:
        return Result(name, False, "your function returned None: return the edited tensor (a hook's return "
                                   "value replaces the activation)")
    got = torch.as_tensor(got)
    if not torch.equal(got, want):
        return Result(name, False, _zero_head_mistake(got, z))
    for model in MODELS:            # and as a hook inside both architectures
        arch = _arch(model)
        ids = _ids(1)
        diff = where_different(_logits(arch, ids, {("z", LAYER): lambda t: fn(t, HEAD)}),
                               _logits(arch, ids, {("z", LAYER): lambda t: _zeroed(t, HEAD)}),
                               ("batch", "position", "vocab"))
        if diff:
            return Result(name, False, f"as a hook in {model}: {diff}")
    return Result(name, True, f"zeroes exactly head {HEAD} at every position, and as a hook on layer {LAYER} of "
                              f"tiny GPT-2 and tiny Llama gives the library's logits")


def _zero_head_mistake(got, z) -> str:
    """What a wrong `zero_head` output on `z` matches."""
    if got.shape == z.shape and torch.equal(got, _position_zeroed(z, HEAD)):
        return (f"you zeroed position {HEAD}, not head {HEAD}: z is (batch, pos, n_heads, d_head), so the head axis "
                "is the third: z[:, :, head]")
    for h in (HEAD - 1, HEAD + 1):
        if got.shape == z.shape and torch.equal(got, _zeroed(z, h)):
            return f"you zeroed head {h}, asked head {HEAD}: heads are numbered from 0"
    if got.shape == z.shape and torch.equal(got, z):
        return f"nothing changed: head {HEAD}'s output is still there"
    return "on a random z: " + where_different(got, _zeroed(z, HEAD), ("batch", "position", "head", "dim"))


def _position_zeroed(z, pos):
    z = z.clone()
    z[:, pos] = 0
    return z


def check_hook_removed(fn) -> Result:
    name = "03-hook-removed"
    for model in MODELS:
        arch = _arch(model)
        ids = _ids(2)
        before = hook_snapshot(arch.model)
        got = call(fn, arch, ids, LAYER, HEAD)
        left = leftover_hooks(arch.model, before)
        if left:
            remove_new_hooks(arch.model, before)
            return Result(name, False, f"in {model}, {left}: remove the handle "
                                       "(handle.remove()) once the forward pass is done")
        diff = where_different(got, _logits(arch, ids, {("z", LAYER): lambda t: _zeroed(t, HEAD)}),
                               ("batch", "position", "vocab"))
        if diff:
            plain = where_different(got, _logits(arch, ids), ("batch", "position", "vocab"))
            hint = " (these are the logits without any ablation: did the hook return the edited input as a tuple?)" \
                if plain is None else ""
            return Result(name, False, f"in {model}: {diff}{hint}")
        bad = torch.full_like(ids, arch.model.config.vocab_size + 5)     # the embedding raises IndexError
        try:
            call(fn, arch, bad, LAYER, HEAD)
        except FunctionRaised:            # expected: the model raised on the bad ids
            pass
        left = leftover_hooks(arch.model, before)
        if left:
            remove_new_hooks(arch.model, before)
            return Result(name, False, f"in {model}, when the model raised (token ids out of range), {left}: "
                                       "remove the handle in a `finally:` block, so that an error cannot leave "
                                       "the model ablated for every later run")
    return Result(name, True, "gives the library's ablated logits in tiny GPT-2 and tiny Llama and leaves no hook "
                              "behind, also when the model raises")


def check_patch_head(fn) -> Result:
    from helpers.interventions.patching import Component, generic_patch
    name = "07-patch-head"
    position, layer = 3, 0          # layer 0: position 3's output reaches the last position through layer 1
    for model in MODELS:
        arch = _arch(model)
        clean, cf = _ids(3), _ids(4)
        got = call(fn, arch, clean, cf, layer, HEAD, position)

        def patched(heads, positions, patch=True):
            entry = [Component("z", layer, heads, positions)] if patch else []
            return torch.as_tensor(generic_patch(arch, clean, cf, [entry], lambda logits: logits)[0])
        want = patched((HEAD,), position)
        assert where_different(want, patched(None, None, patch=False), ("prompt", "vocab"), atol=1e-4), \
            "the check would be vacuous: patching this head does not move the logits"
        diff = where_different(got, want, ("prompt", "vocab"), atol=1e-4)
        if not diff:
            continue
        if got is not None and not where_different(got, patched((HEAD,), None), ("prompt", "vocab"), atol=1e-4):
            why = f"you patched head {HEAD} at every position; patch only position {position}"
        elif got is not None and not where_different(got, patched(None, position), ("prompt", "vocab"), atol=1e-4):
            why = f"you patched every head of layer {layer}; patch only head {HEAD}"
        elif got is not None and any(not where_different(got, patched((h,), position), ("prompt", "vocab"), atol=1e-4)
                                     for h in (HEAD - 1, HEAD + 1)):
            why = "you patched a neighbouring head: heads are numbered from 0"
        elif got is not None and not where_different(got, patched(None, None, patch=False), ("prompt", "vocab"),
                                                     atol=1e-4):
            why = "these are the clean run's logits: the counterfactual's activation never reached the clean run"
        else:
            why = diff
        return Result(name, False, f"in {model}: {why}")
    return Result(name, True, f"equals helpers.interventions.patching.generic_patch (head {HEAD} of layer {layer} at "
                              f"position {position}) in tiny GPT-2 and tiny Llama")


def _pattern(q, k):
    d = q.shape[-1]
    scores = q @ k.T / d ** 0.5
    causal = torch.ones(len(q), len(k), dtype=torch.bool).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def check_attention_pattern(fn) -> Result:
    """``04-attention``: ``attention_pattern(q, k) -> (pos, pos)`` of one head from its queries and
    keys ``(pos, d_head)`` (after the rotary embedding in Llama): compared with the attention
    probabilities the model itself returns (:func:`helpers.readouts.attention.attention_patterns`)."""
    from helpers.readouts.attention import attention_patterns
    name = "04-attention"
    for model in MODELS:
        arch = _arch(model)
        ids = _ids(5, batch=1, pos=7)
        with torch.no_grad():
            hidden = arch.residual_streams(ids)[LAYER]
            q, k, _ = arch.qkv(LAYER, hidden)
            want = attention_patterns(arch.model, ids)[LAYER, 0, HEAD]
        q, k = q[0, :, HEAD], k[0, :, HEAD]
        got = call(fn, q.clone(), k.clone())
        diff = where_different(got, want, ("query position", "key position"), atol=1e-5)
        if not diff:
            continue
        got = torch.as_tensor(got).float()
        if torch.allclose(got, (q @ k.T / q.shape[-1] ** 0.5).softmax(-1), atol=1e-5):
            why = "each position attends to later positions too: mask the keys after the query (causal attention)"
        elif torch.allclose(got, (q @ k.T).masked_fill(~torch.ones(7, 7, dtype=torch.bool).tril(),
                                                       float("-inf")).softmax(-1), atol=1e-5):
            why = "the scores are not scaled: divide q·k by sqrt(d_head) before the softmax"
        elif got.shape == want.shape and torch.allclose(got.sum(0), torch.ones(7), atol=1e-4) \
                and not torch.allclose(got.sum(1), torch.ones(7), atol=1e-4):
            why = "your columns sum to 1: the softmax runs over the keys (the last axis), one row per query"
        else:
            why = diff
        return Result(name, False, f"in {model}, layer {LAYER} head {HEAD}: {why}")
    return Result(name, True, "equals the attention probabilities of tiny GPT-2 and tiny Llama (rotary embedding, "
                              "grouped key/value heads) for one head")


def check_cmap_head(fn) -> Result:
    """``08-cmap-head``: ``cmap_head(a, b, ids, layer, head) -> logits``: model A's logits at the last
    position with one head's output ``z`` (every position) taken from model B on the same prompts
    (cross-model activation patching), compared with
    :func:`helpers.interventions.patching.generic_patch` fed B's recorded activations."""
    from helpers.interventions.patching import Component, generic_patch, record
    name = "08-cmap-head"
    layer = 0
    for model in MODELS:
        a = _arch(model)
        b = _arch_seeded(model, 8)
        ids = _ids(6)

        def cmap(source, heads, patch=True):
            entry = [Component("z", layer, heads, None)] if patch else []
            return torch.as_tensor(generic_patch(a, ids, record(source, ids, {("z", layer)}), [entry],
                                                 lambda logits: logits)[0])
        want = cmap(b, (HEAD,))
        got = call(fn, a, b, ids, layer, HEAD)
        diff = where_different(got, want, ("prompt", "vocab"), atol=1e-4)
        if not diff:
            continue
        if got is not None and not where_different(got, cmap(a, (HEAD,)), ("prompt", "vocab"), atol=1e-4):
            why = "these are model A's own logits: the head's output must come from model B's run"
        elif got is not None and not where_different(got, cmap(b, None), ("prompt", "vocab"), atol=1e-4):
            why = f"you patched every head of layer {layer}; patch only head {HEAD}"
        elif got is not None and any(not where_different(got, cmap(b, (h,)), ("prompt", "vocab"), atol=1e-4)
                                     for h in (HEAD - 1, HEAD + 1)):
            why = "you patched a neighbouring head: heads are numbered from 0"
        else:
            why = diff
        return Result(name, False, f"in {model}: {why}")
    return Result(name, True, "equals generic_patch with model B's recorded activations, in tiny GPT-2 and tiny Llama")


@lru_cache(maxsize=None)
def _arch_seeded(name: str, seed: int):
    from helpers.models.arch import Arch
    from helpers.models.sources import load_source
    model, _ = load_source(name, seed=seed)
    return Arch(model.eval())


def check_path_patch(fn) -> Result:
    """``07-path-patch``: ``path_patch_sender(arch, clean_ids, cf_ids, layer, head, position) ->
    logits``: the clean run's last-position logits with **every head of every layer frozen to its
    clean output** at every position, except head `head` of `layer` at `position`, which takes its
    counterfactual output; MLPs recompute (path patching to the logits, one sender).  Compared, as
    one token's logit per prompt, with :func:`helpers.interventions.path_patching.path_patch_naive`."""
    from helpers.interventions.patching import Component, generic_patch
    from helpers.interventions.path_patching import path_patch_naive
    name = "07-path-patch"
    layer = 0
    for model in MODELS:
        arch = _arch(model)
        clean, cf = _ids(8), _ids(9)
        position = clean.shape[1] - 1
        rows = torch.arange(clean.shape[0])
        token = torch.randint(0, 1000, (clean.shape[0],), generator=torch.Generator().manual_seed(10))

        def logit(logits):                  # the metric: one token's logit per prompt (a probability is ~1e-5 here)
            return logits[rows, token]
        res = path_patch_naive(arch, clean, cf, token, torch.full((clean.shape[0],), position),
                               senders=[(layer, HEAD)], metric=logit)
        want = torch.as_tensor(res.patched[layer, HEAD]).float()
        got = call(fn, arch, clean, cf, layer, HEAD, position)
        if got is None:
            return Result(name, False, "your function returned None: return the logits at the last position")
        got = torch.as_tensor(got).float()
        if got.shape != (clean.shape[0], arch.model.config.vocab_size):
            return Result(name, False, f"the logits have shape {tuple(got.shape)}, expected "
                                       f"{(clean.shape[0], arch.model.config.vocab_size)} (prompt, vocab) at the last "
                                       "position")
        if torch.allclose(logit(got), want, atol=1e-4, rtol=1e-4):
            continue
        act = torch.as_tensor(generic_patch(arch, clean, cf, [[Component("z", layer, (HEAD,), position)]],
                                            lambda logits: logits)[0]).float()
        plain = torch.as_tensor(generic_patch(arch, clean, cf, [[]], lambda logits: logits)[0]).float()
        if torch.allclose(got, plain, atol=1e-4):
            why = "these are the clean run's logits: the sender must take its output from the counterfactual run"
        elif torch.allclose(got, act, atol=1e-4):
            why = ("these are activation-patching logits: the later heads recomputed from the patched stream. Freeze "
                   "every other head's z to its clean value, so that the sender reaches the logits only directly "
                   "(and through the MLPs)")
        else:
            why = ("the checked token's logit differs from path_patch_naive's: "
                   + where_different(logit(got), want, ("prompt",), atol=1e-4))
        return Result(name, False, f"in {model}: {why}")
    return Result(name, True, "equals path_patch_naive (every other head frozen, MLPs recomputed) in tiny GPT-2 and "
                              "tiny Llama")


def check_dcm_mix(fn) -> Result:
    """``10-dcm-mix``: ``dcm_mix(z_base, z_source, mask) -> z``: DCM's intervention on a group of `k`
    heads, each head's output ``m * z(base) + (1 - m) * z(source)`` with ``z_*`` ``(batch, k,
    d_head)`` and `mask` ``(k,)``, compared with :func:`helpers.interventions.dcm.mask_mix`."""
    from helpers.interventions.dcm import mask_mix
    name = "10-dcm-mix"
    g = torch.Generator().manual_seed(11)
    zb, zs = torch.randn(3, 4, 6, generator=g), torch.randn(3, 4, 6, generator=g)
    mask = torch.tensor([1.0, 0.0, 0.3, 0.8])
    got = call(fn, zb.clone(), zs.clone(), mask.clone())
    want = mask_mix(zb, zs, mask)
    diff = where_different(got, want, ("prompt", "head", "dim"))
    if not diff:
        return Result(name, True, "equals helpers.interventions.dcm.mask_mix: m = 1 keeps the base's output, m = 0 "
                                  "writes the source's, per head")
    got = torch.as_tensor(got)
    if got.shape == want.shape and torch.allclose(got, mask_mix(zs, zb, mask)):
        why = "the roles are swapped: m = 1 must leave the base run alone (m * z_base + (1 - m) * z_source)"
    elif got.shape == want.shape and torch.allclose(got, mask_mix(zb, zs, mask.round())):
        why = "you rounded the mask: DCM trains the continuous mask (it is rounded only to read which heads it selected)"
    else:
        why = diff + " (the mask has one value per head: broadcast it over the head axis, mask[None, :, None])"
    return Result(name, False, why)


def check_answer_mass(fn) -> Result:
    """``04-answer-mass``: ``answer_mass(pattern, types, kind) -> float``: the attention the answer
    position (the last row of one head's ``(pos, pos)`` pattern) puts on the tokens of type `kind`
    (one of :data:`helpers.tasks.tokens.TOKEN_TYPES`), as
    :func:`helpers.readouts.attention.answer_mass` measures chapter 4's "attends to the numbers"."""
    from helpers.readouts.attention import answer_mass
    from helpers.tasks.tokens import TOKEN_TYPES
    name = "04-answer-mass"
    g = torch.Generator().manual_seed(12)
    T = 9
    pattern = torch.randn(T, T, generator=g).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(),
                                                         float("-inf")).softmax(-1)
    types = ["other", "context word", "motion numbers", "motion numbers", "punctuation", "color numbers",
             "color numbers", "punctuation", "other"]
    for kind in ("motion numbers", "color numbers", "context word"):
        got = call(fn, pattern.clone(), list(types), kind)
        want = float(answer_mass(pattern[None, None, None], [types])[0, 0, 0, TOKEN_TYPES.index(kind)])
        got_f = float(got)
        if np.isclose(got_f, want, atol=1e-6):
            continue
        cols = [i for i, t in enumerate(types) if t == kind]
        if np.isclose(got_f, float(pattern[:, cols].sum()), atol=1e-6) or np.isclose(
                got_f, float(pattern[:, cols].sum(0).mean()), atol=1e-6):
            why = ("that sums a column (attention the tokens receive from every position): the answer position's "
                   "attention is the last row, pattern[-1]")
        elif np.isclose(got_f, float(pattern[-1, cols].mean()), atol=1e-6):
            why = "that is the mean over the tokens of that type; the mass is their sum"
        elif np.isclose(got_f, float(pattern[0, cols].sum()), atol=1e-6):
            why = "that is the first row; the answer position is the last one"
        else:
            why = f"expected {want:.4f}"
        return Result(name, False, f"for {kind!r} you return {got_f:.4f}: {why}")
    return Result(name, True, "equals helpers.readouts.attention.answer_mass for three token types")
