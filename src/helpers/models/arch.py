"""One small adapter over the architectures the book analyses (GPT-2 and Llama-style models).

Analyses never touch ``model.transformer.h`` or ``model.model.layers`` directly; they ask an
:class:`Arch` for layers, heads and typed hook points, and the adapter knows where each lives:

===============  ==========================================  =================================
hook point       meaning                                     shape
===============  ==========================================  =================================
``resid_pre``    residual stream entering layer ``l``          (batch, pos, d_model)
``z``            each head's attention output, before the      (batch, pos, n_heads, d_head)
                 output projection (TransformerLens' hook_z)
``attn_out``     the attention block's output (all heads)      (batch, pos, d_model)
``q``            each query head's query, the input of the     (batch, pos, n_heads, d_head)
                 attention scores: after the projection and
                 the rotary embedding (Llama), before the
                 1/sqrt(d_head) scaling (TransformerLens'
                 hook_q, with hook_rot_q's rotation)
``k``            the key each query head reads: after the      (batch, pos, n_heads, d_head)
                 projection and rotary embedding, *repeated
                 per query head* (grouped key/value heads)
``v``            the value each query head reads, repeated     (batch, pos, n_heads, d_head)
                 per query head like ``k``
===============  ==========================================  =================================

Grouped key/value heads (Llama-style, e.g. SmolLM2: 9 query heads share 3 key/value heads): ``k``
and ``v`` are given **per query head**, after the key/value head has been repeated for each query
head of its group (``repeat_kv``: query head ``h`` reads key/value head ``h // (n_heads /
n_kv_heads)``).  Patching head ``h``'s ``k`` or ``v`` therefore changes what query head ``h`` reads
and nothing else, even though its key/value head is shared: the other query heads of the group keep
their copy (TransformerLens's "ungrouped" view).  Reading ``k``/``v`` gives equal copies for the
heads of one group.  To do this, hooks on ``q``/``k``/``v`` switch the model, for the body of the
``with`` only, to an attention function registered with transformers' ``AttentionInterface``
(:data:`PATCHABLE_ATTENTION`): layers with such hooks repeat k/v per query head, call the hooks and
run ``torch.nn.functional.scaled_dot_product_attention``; layers without them run transformers'
SDPA attention unchanged.  The model's own implementation is restored on exit.

Hooks are installed by :meth:`Arch.hooks`, a context manager that always removes them, also when
the body raises.  :meth:`Arch.run_from` runs the layers from ``l`` on, starting from a cached
residual stream, which is what makes the head-ablation sweep cheap.
"""
from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

HOOK_POINTS = ("resid_pre", "z", "attn_out", "q", "k", "v")
QKV_POINTS = ("q", "k", "v")


@dataclass
class Arch:
    model: torch.nn.Module

    def __post_init__(self):
        mt = self.model.config.model_type
        if mt == "gpt2":
            self.family = "gpt2"
        elif mt in ("llama", "mistral", "qwen2"):
            self.family = "llama"
        else:
            raise ValueError(f"architecture {mt!r} is not supported: accepted model types are "
                             "gpt2, llama, mistral, qwen2")
        c = self.model.config
        self.n_layers = c.num_hidden_layers
        self.n_heads = c.num_attention_heads
        self.n_kv_heads = getattr(c, "num_key_value_heads", None) or self.n_heads
        self.d_model = c.hidden_size
        self.d_head = getattr(c, "head_dim", None) or self.d_model // self.n_heads

    # ---- where things live -------------------------------------------------------------------
    @property
    def base(self):
        return self.model.base_model

    def layers(self):
        return self.base.h if self.family == "gpt2" else self.base.layers

    def attention(self, layer: int):
        block = self.layers()[layer]
        return block.attn if self.family == "gpt2" else block.self_attn

    def out_proj(self, layer: int):
        """The attention output projection; its input is the concatenation of the heads' z."""
        attn = self.attention(layer)
        return attn.c_proj if self.family == "gpt2" else attn.o_proj

    def final_norm(self):
        return self.base.ln_f if self.family == "gpt2" else self.base.norm

    def unembed(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.get_output_embeddings()(self.final_norm()(h))

    def head_weights_out(self, layer: int) -> torch.Tensor:
        """W_O as (n_heads, d_head, d_model): head h writes z_h @ W_O[h] into the residual."""
        proj = self.out_proj(layer)
        w = proj.weight if self.family == "gpt2" else proj.weight.T     # Conv1D stores (in, out)
        return w.reshape(self.n_heads, self.d_head, self.d_model)

    # ---- running pieces of the model -----------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The residual stream entering layer 0."""
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        if self.family == "gpt2":
            return self.base.drop(self.base.wte(ids) + self.base.wpe(pos))
        return self.base.embed_tokens(ids)

    def _layer_kwargs(self, hidden: torch.Tensor) -> dict:
        from transformers.masking_utils import create_causal_mask
        pos = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        mask = create_causal_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=None,
                                  past_key_values=None, position_ids=pos)
        kw = {"attention_mask": mask, "position_ids": pos}
        if self.family == "llama":
            kw["position_embeddings"] = self.base.rotary_emb(hidden, position_ids=pos)
        return kw

    def run_layers(self, hidden: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Residual stream after layers ``start .. stop-1``, from the stream entering ``start``."""
        stop = self.n_layers if stop is None else stop
        kw = self._layer_kwargs(hidden)
        for layer in self.layers()[start:stop]:
            out = layer(hidden, **kw)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def run_from(self, hidden: torch.Tensor, start: int, last: torch.Tensor) -> torch.Tensor:
        """Logits at each row's position ``last``, running layers ``start..`` from `hidden`."""
        h = self.run_layers(hidden, start)
        return self.unembed(h[torch.arange(h.shape[0], device=h.device), last]).float()

    def last_layer_at(self, hidden: torch.Tensor, last: torch.Tensor, z_edit: Callable | None = None) -> torch.Tensor:
        """The residual stream after the last layer, computed at each row's position ``last``
        only (its attention still reads every earlier position): ``(batch, d_model)``.

        A metric read at the last position needs nothing else from the last layer, so this saves
        that layer's work at every other position.  ``z_edit(z)`` may change the last layer's head
        outputs ``z`` (shape ``(batch, 1, n_heads, d_head)``) before the output projection.
        """
        import torch.nn.functional as F
        attn = self.attention(self.n_layers - 1)
        B, T, _ = hidden.shape
        rows = torch.arange(B, device=hidden.device)
        q, k, v = (t.transpose(1, 2) for t in self.qkv(self.n_layers - 1, hidden))   # (B, H, T, d_head)
        q_last = q[rows, :, last].unsqueeze(2)                            # (B, H, 1, d_head)
        visible = torch.arange(T, device=hidden.device)[None, :] <= last[:, None]
        dropout = attn.attn_dropout.p if (self.family == "gpt2" and self.model.training) else 0.0
        z = F.scaled_dot_product_attention(q_last, k, v, attn_mask=visible[:, None, None, :],
                                           dropout_p=dropout, scale=attn.scaling)  # (B, H, 1, d_head)
        z = z.transpose(1, 2)                                             # (B, 1, H, d_head)
        if z_edit is not None:
            z = z_edit(z)
        out = self.out_proj(self.n_layers - 1)(z.reshape(B, 1, self.n_heads * self.d_head))[:, 0]
        if self.family == "gpt2":
            out = attn.resid_dropout(out)
        return self.mlp_block(self.n_layers - 1, hidden[rows, last] + out)

    def qkv(self, layer: int, hidden: torch.Tensor, position_ids: torch.Tensor | None = None):
        """The ``q``, ``k``, ``v`` hook-point values of `layer` computed from `hidden`, the residual
        stream entering the layer (``(batch, pos, d_model)``): three ``(batch, pos, n_heads,
        d_head)`` tensors, k and v repeated per query head, the rotary embedding (Llama) applied at
        `position_ids` (``(batch, pos)``; default ``0..pos-1``), so a few rows of a stream can be
        projected at their own positions."""
        attn = self.attention(layer)
        B, T, _ = hidden.shape
        norm1 = self.layers()[layer].ln_1 if self.family == "gpt2" else self.layers()[layer].input_layernorm
        x = norm1(hidden)
        if self.family == "gpt2":
            q, k, v = (t.view(B, T, self.n_heads, self.d_head) for t in attn.c_attn(x).split(self.d_model, dim=2))
            return q, k, v
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
        q = attn.q_proj(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        k = attn.k_proj(x).view(B, T, self.n_kv_heads, self.d_head).transpose(1, 2)
        v = attn.v_proj(x).view(B, T, self.n_kv_heads, self.d_head).transpose(1, 2)
        if position_ids is None:
            position_ids = torch.arange(T, device=hidden.device).unsqueeze(0)
        cos, sin = self.base.rotary_emb(hidden, position_ids=position_ids)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        rep = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def mlp_block(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """The rest of `layer` after its attention: ``h + mlp(norm(h))``, where `h` is the residual
        stream with the attention output already added (any shape ending in d_model; MLPs act on
        each position alone)."""
        block = self.layers()[layer]
        norm2 = block.ln_2 if self.family == "gpt2" else block.post_attention_layernorm
        return h + block.mlp(norm2(h))

    def answer_states(self, ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The final (normed) residual stream at each row's position `last`: what the unembedding
        reads there, without computing the last layer at any other position."""
        h = self.run_layers(self.embed(ids), 0, self.n_layers - 1)
        return self.final_norm()(self.last_layer_at(h, last))

    @torch.no_grad()
    def residual_streams(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """The stream entering every layer, plus the final stream (n_layers + 1 tensors)."""
        streams = [self.embed(ids)]
        kw = self._layer_kwargs(streams[0])
        for layer in self.layers():
            out = layer(streams[-1], **kw)
            streams.append(out[0] if isinstance(out, tuple) else out)
        return streams

    # ---- hooks -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def hooks(self, fns: dict[tuple[str, int], Callable]) -> Iterator[None]:
        """Install hooks ``{(point, layer): fn}`` for the body of the ``with``; always removed.

        ``fn(tensor)`` receives the activation in the shape of the table above and may return a
        replacement (same shape) or None to leave it unchanged.
        """
        handles = []
        original = _attn_implementation(self.model)
        switched = False
        try:
            for (point, layer), fn in fns.items():
                if point not in HOOK_POINTS:
                    raise ValueError(f"unknown hook point {point!r}: accepted points are {HOOK_POINTS}")
                if not 0 <= layer < self.n_layers:
                    raise ValueError(f"layer {layer} is out of range: accepted layers are 0..{self.n_layers - 1}")
            if any(point in QKV_POINTS for point, _ in fns) and original != PATCHABLE_ATTENTION:
                _register_patchable_attention()
                switched = True
                _set_attn_implementation(self.model, PATCHABLE_ATTENTION)
            for (point, layer), fn in fns.items():
                handles.append(self._install(point, layer, fn))
            yield
        finally:
            for h in handles:
                h.remove()
            if switched:
                _set_attn_implementation(self.model, original or "sdpa")

    def _install(self, point: str, layer: int, fn: Callable):
        if point in QKV_POINTS:
            return _QKVHandle(self.attention(layer), point, fn)
        if point == "z":
            H, D = self.n_heads, self.d_head

            def pre(module, args):
                x = args[0]
                z = x.reshape(*x.shape[:-1], H, D)
                new = fn(z)
                if new is None:
                    return None
                return (new.reshape(x.shape),) + tuple(args[1:])
            return self.out_proj(layer).register_forward_pre_hook(pre)
        if point == "resid_pre":
            def pre_layer(module, args, kwargs):
                new = fn(args[0])
                if new is None:
                    return None
                return (new,) + tuple(args[1:]), kwargs
            return self.layers()[layer].register_forward_pre_hook(pre_layer, with_kwargs=True)

        def post(module, args, output):      # attn_out
            out = output[0] if isinstance(output, tuple) else output
            new = fn(out)
            if new is None:
                return None
            return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new
        return self.attention(layer).register_forward_hook(post)


# ---- attention implementation -------------------------------------------------------------------

def _attn_implementation(model) -> str | None:
    return getattr(model.config, "_attn_implementation", None)


def _set_attn_implementation(model, impl: str | None) -> None:
    if impl is None:
        return
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(impl)
    else:  # older transformers: every submodule's config reads this attribute
        for m in model.modules():
            cfg = getattr(m, "config", None)
            if cfg is not None and hasattr(cfg, "_attn_implementation"):
                cfg._attn_implementation = impl


@contextlib.contextmanager
def eager_attention(model) -> Iterator[None]:
    """Eager attention for the body; the model's original implementation (SDPA by default) is
    restored afterwards, also when the body raises.

    Eager attention can return its probabilities (chapter 4), and on the CPU its backward pass is
    faster than SDPA's at this book's short prompts (training uses it; see helpers.training)."""
    original = _attn_implementation(model)
    try:
        if original != "eager":
            _set_attn_implementation(model, "eager")
        yield
    finally:
        if original is not None and _attn_implementation(model) != original:
            _set_attn_implementation(model, original)


# ---- the patchable attention function (q/k/v hook points) ----------------------------------------

PATCHABLE_ATTENTION = "helpers_patchable"
_QKV_HOOKS: "weakref.WeakKeyDictionary[torch.nn.Module, list]" = weakref.WeakKeyDictionary()


class _QKVHandle:
    """One q/k/v hook on one attention module; ``remove()`` takes it off (idempotent)."""

    def __init__(self, module: torch.nn.Module, point: str, fn: Callable):
        self.module, self.entry = module, (point, fn)
        _QKV_HOOKS.setdefault(module, []).append(self.entry)

    def remove(self) -> None:
        entries = _QKV_HOOKS.get(self.module)
        if entries is None:
            return
        if self.entry in entries:
            entries.remove(self.entry)
        if not entries:
            _QKV_HOOKS.pop(self.module, None)


def _patchable_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                         scaling: float | None = None, **kwargs):
    """transformers' attention-function signature: query (B, H, T, d), key/value (B, H_kv, T, d).

    Without q/k/v hooks on `module` this is transformers' SDPA attention.  With hooks, key and value
    are repeated per query head, the hooks see and may replace ``(B, T, H, d)`` views of q, k and v,
    and attention runs on the (possibly edited) per-query-head tensors."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    entries = _QKV_HOOKS.get(module)
    if not entries:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    import torch.nn.functional as F
    rep = query.shape[1] // key.shape[1]
    if rep > 1:
        key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    t = {"q": query.transpose(1, 2), "k": key.transpose(1, 2), "v": value.transpose(1, 2)}
    for point, fn in list(entries):
        new = fn(t[point])
        if new is not None:
            if new.shape != t[point].shape:
                raise ValueError(f"a {point!r} hook returned shape {tuple(new.shape)}; expected "
                                 f"{tuple(t[point].shape)} (batch, pos, n_heads, d_head)")
            t[point] = new
    q, k, v = (t[p].transpose(1, 2) for p in QKV_POINTS)
    if attention_mask is not None:
        attention_mask = attention_mask[:, :, :, : k.shape[-2]]
    is_causal = attention_mask is None and q.shape[2] > 1 and getattr(module, "is_causal", True)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=dropout,
                                         scale=scaling, is_causal=is_causal)
    return out.transpose(1, 2).contiguous(), None


def _register_patchable_attention() -> None:
    """Register :data:`PATCHABLE_ATTENTION` (and SDPA's mask format for it) once per process."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    if PATCHABLE_ATTENTION not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(PATCHABLE_ATTENTION, _patchable_attention)
    if PATCHABLE_ATTENTION not in ALL_MASK_ATTENTION_FUNCTIONS:
        ALL_MASK_ATTENTION_FUNCTIONS.register(PATCHABLE_ATTENTION, sdpa_mask)
