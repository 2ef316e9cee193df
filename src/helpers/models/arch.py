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
===============  ==========================================  =================================

Hooks are installed by :meth:`Arch.hooks`, a context manager that always removes them, also when
the body raises.  :meth:`Arch.run_from` runs the layers from ``l`` on, starting from a cached
residual stream, which is what makes the head-ablation sweep cheap.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

HOOK_POINTS = ("resid_pre", "z", "attn_out")


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
        layer = self.layers()[-1]
        attn = self.attention(self.n_layers - 1)
        B, T, _ = hidden.shape
        rows = torch.arange(B, device=hidden.device)
        norm1 = layer.ln_1 if self.family == "gpt2" else layer.input_layernorm
        x = norm1(hidden)
        if self.family == "gpt2":
            q, k, v = attn.c_attn(x).split(self.d_model, dim=2)
            q = q.view(B, T, self.n_heads, self.d_head).transpose(1, 2)
            k = k.view(B, T, self.n_heads, self.d_head).transpose(1, 2)
            v = v.view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        else:
            q = attn.q_proj(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
            k = attn.k_proj(x).view(B, T, self.n_kv_heads, self.d_head).transpose(1, 2)
            v = attn.v_proj(x).view(B, T, self.n_kv_heads, self.d_head).transpose(1, 2)
            from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
            cos, sin = self._layer_kwargs(hidden)["position_embeddings"]
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
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
        h = hidden[rows, last] + out
        norm2 = layer.ln_2 if self.family == "gpt2" else layer.post_attention_layernorm
        return h + layer.mlp(norm2(h))

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
        try:
            for (point, layer), fn in fns.items():
                if point not in HOOK_POINTS:
                    raise ValueError(f"unknown hook point {point!r}: accepted points are {HOOK_POINTS}")
                if not 0 <= layer < self.n_layers:
                    raise ValueError(f"layer {layer} is out of range: accepted layers are 0..{self.n_layers - 1}")
                handles.append(self._install(point, layer, fn))
            yield
        finally:
            for h in handles:
                h.remove()

    def _install(self, point: str, layer: int, fn: Callable):
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
